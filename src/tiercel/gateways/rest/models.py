"""The REST API's bodies: what it answers and what it accepts (the job request is jobspec.request.JobRequest)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from tiercel.jobspec.request import Line
from tiercel.manager.auth import ROLES


class JobInfo(BaseModel):
    id: int
    name: str
    owner: str
    state: str = Field(description="queued, running, done, failed or cancelled")
    total: int
    queued: int
    running: int
    done: int
    failed: int
    cancelled: int
    submitted: float
    ended: float | None
    command: list[str]
    waiting: str | None = Field(None, description="why queued tasks are not running, when none are")
    reason: str | None = Field(None, description="why it ended before all its tasks ran")
    held: bool = Field(False, description="no new task starts until it is released")
    max_running: int | None = Field(None, description="at most this many of its tasks at once")
    max_failures: int | None = Field(None, description="once this many tasks failed, the rest are cancelled")
    priority: int = 0


class JobChanges(BaseModel):
    """PATCH /v1/jobs/ID: the fields of a job that may change after submission (absent: unchanged)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    priority: int | None = Field(None, ge=-1000, le=1000)
    walltime: str | float | None = Field(None, description="per task, only before any task started: 90s, 10m, 1h")
    max_running: int | None = Field(None, ge=1, le=100_000_000, description="the job's cap on running tasks")
    no_max_running: bool = Field(False, description="remove the job's cap")


class RetryRequest(BaseModel):
    """POST /v1/jobs/ID/retry: which ended tasks to run again (default: the failed ones)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    failed: bool = False
    cancelled: bool = False
    tasks: str | None = Field(None, max_length=10_000, pattern="^[0-9,:\\- ]*$",
                              description="task indexes, e.g. 3,7-9 (instead of failed/cancelled)")


class RetryAnswer(BaseModel):
    job: JobInfo
    tasks: int = Field(description="how many tasks run again")
    indexes: str = Field(description="their indexes as ranges")


class WorkerRow(BaseModel):
    id: str
    name: str
    host: str
    slots: int
    busy: int
    tags: list[str]
    connected: bool
    draining: bool  # takes no new tasks: leaving, or busy by its XMPP presence
    link: str  # websocket, xmpp or site; empty while disconnected
    last_seen: float | None = Field(description="when the manager last heard from it (epoch seconds); null for a "
                                                "native site's virtual worker, which is not a process that speaks")
    tasks_run: int
    refused: int = Field(0, description="reports about tasks it was never handed, dropped")


class TokenRow(BaseModel):
    id: str = Field(description="the start of the token's digest; the token itself is never kept")
    user: str
    role: str
    label: str
    created: float
    last_used: float | None


USER_NAME = r"^[A-Za-z0-9_.@-]+$"
UserField = Annotated[str, Field(min_length=1, max_length=64, pattern=USER_NAME)]


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    user: UserField
    role: str = Field("user", json_schema_extra={"enum": list(ROLES)},
                      description="user, admin or worker (a worker token only runs tasks)")


class ReservationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    name: str | None = Field(None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    site: Line = Field("pool", max_length=64, description="the site whose slots are reserved")
    slots: int = Field(ge=1, le=10_000_000)
    start: Line | float = Field(description="now, +10m, 2026-11-21T10:00 or epoch seconds")
    end: Line | float = Field(description="as start; or +DURATION after the start")
    users: list[UserField] = Field(default_factory=list, description="who may use it (default: whoever creates it)")
    mirror: bool = Field(False, description="also create it in the site's batch system (Slurm: scontrol create "
                                            "reservation), so the batch system keeps the cores free too")


class TaskAttempt(BaseModel):
    index: int
    attempt: int
    outcome: str
    final: bool
    worker: str
    exit_code: int | None
    started: float
    ended: float
