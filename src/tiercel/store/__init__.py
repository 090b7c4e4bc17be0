"""Durable state. SQLite (WAL, group commit) is the embedded default."""

from tiercel.store.base import (
    AddJob,
    AttemptRow,
    DeleteReservation,
    DeleteSiteJob,
    DeleteToken,
    EndJob,
    ForgetWorker,
    JobRow,
    Loaded,
    Record,
    SaveReservation,
    SaveSiteJob,
    SaveToken,
    SeenWorker,
    Store,
    TokenRow,
    TouchToken,
    WriteOp,
)
from tiercel.store.sqlite import SqliteStore

__all__ = [
    "AddJob", "AttemptRow", "DeleteReservation", "DeleteSiteJob", "DeleteToken",
    "EndJob", "ForgetWorker", "JobRow", "Loaded", "Record",
    "SaveReservation", "SaveSiteJob", "SaveToken", "SeenWorker", "SqliteStore", "Store", "TokenRow", "TouchToken",
    "WriteOp",
]
