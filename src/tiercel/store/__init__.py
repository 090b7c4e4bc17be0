"""Durable state. SQLite (WAL, group commit) is the embedded default."""

from tiercel.store.base import (
    AddJob,
    AttemptRow,
    EndJob,
    ForgetWorker,
    JobRow,
    Loaded,
    Record,
    SaveToken,
    SeenWorker,
    Store,
    WriteOp,
)
from tiercel.store.sqlite import SqliteStore

__all__ = [
    "AddJob", "AttemptRow", "EndJob", "ForgetWorker", "JobRow", "Loaded", "Record",
    "SaveToken", "SeenWorker", "SqliteStore", "Store", "WriteOp",
]
