"""The store interface: writes are batched ops committed together, reads are plain calls.

A write returns a future that resolves once the batch holding it is durable;
the manager acknowledges a result to its worker, and answers a submission, only
after that. Keeping the interface this small is what lets PostgreSQL slot in
beside SQLite.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

from tiercel.core.model import AttemptRecord, Counts, Entries, JobId, JobSpec, JobState, Restored, UserName, WorkerId
from tiercel.core.reservations import Reservation

# ---- write ops ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AddJob:
    """A job, and its entries when it has some (kept as one blob of their own, beside its row)."""

    job: JobId
    owner: UserName
    spec: JobSpec
    submitted: float


@dataclass(frozen=True, slots=True)
class Record:
    records: list[AttemptRecord]


@dataclass(frozen=True, slots=True)
class EndJob:
    job: JobId
    state: JobState
    counts: Counts
    ended: float
    reason: str | None = None  # why it ended before all its tasks ran
    cpu: float | None = None  # CPU seconds of all its attempts, when any was measured


@dataclass(frozen=True, slots=True)
class SaveToken:
    digest: str
    user: UserName
    role: str
    label: str
    created: float


@dataclass(frozen=True, slots=True)
class DeleteToken:
    digest: str


@dataclass(frozen=True, slots=True)
class TouchToken:
    """When a token was last used (kept to the minute, not written at every request)."""

    digest: str
    used: float


@dataclass(frozen=True, slots=True)
class SeenWorker:
    worker: WorkerId
    name: str
    host: str
    seen: float


@dataclass(frozen=True, slots=True)
class ForgetWorker:
    worker: WorkerId


@dataclass(frozen=True, slots=True)
class SaveReservation:
    reservation: Reservation
    created: float


@dataclass(frozen=True, slots=True)
class DeleteReservation:
    name: str


@dataclass(frozen=True, slots=True)
class SaveWorkflow:
    """A workflow: its named jobs, written with them in one transaction (accepted whole or not at all)."""

    id: int
    owner: UserName
    name: str
    submitted: float
    jobs: tuple[tuple[str, JobId], ...]  # (its name in the workflow file, the job's id), in submission order


@dataclass(frozen=True, slots=True)
class SaveSiteJob:
    """A batch job a site submitted (a native array or pilots): found again after a restart."""

    site: str
    native_id: str
    payload: str  # the site's own JSON: what the batch job carries
    submitted: float


@dataclass(frozen=True, slots=True)
class DeleteSiteJob:
    site: str
    native_id: str


@dataclass(frozen=True, slots=True)
class UpdateJob:
    """A job's changeable fields changed (held, priority, cap, walltime): its stored spec replaced."""

    job: JobId
    spec: JobSpec


@dataclass(frozen=True, slots=True)
class ReopenTasks:
    """Settled tasks run again (`tiercel retry`): their final attempts stop being final, and an
    ended job is unfinished again, so a restart finds them waiting."""

    job: JobId
    indexes: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class AddPlaces:
    """Places (worker names, sites) where attempts of a job ran, kept with the job beside those it has."""

    job: JobId
    places: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ForgetOutputs:
    """Drop the outputs of a job's attempts with an index in [start, stop); the rows and counts stay.
    ``at`` is kept with the job: when its outputs were last dropped."""

    job: JobId
    start: int
    stop: int
    at: float


@dataclass(frozen=True, slots=True)
class SetSealKey:
    """The key of the seals (made with the store): set only by `tiercel store copy`, which moves it along."""

    key: bytes


WriteOp = (AddJob | Record | EndJob | SaveToken | DeleteToken | TouchToken | SeenWorker | ForgetWorker
           | SaveReservation | DeleteReservation | SaveSiteJob | DeleteSiteJob | SetSealKey | UpdateJob | ReopenTasks
           | SaveWorkflow | AddPlaces | ForgetOutputs)

# ---- read rows ---------------------------------------------------------------

STREAMS = ("stdout", "stderr")  # the outputs an attempt keeps


@dataclass(frozen=True, slots=True)
class JobRow:
    id: JobId
    owner: UserName
    spec: JobSpec
    submitted: float
    state: JobState | None  # None while unfinished: live counts come from the engine
    ended: float | None
    counts: Counts | None
    reason: str | None = None
    places: tuple[str, ...] = ()  # where its attempts ran (worker names, sites), sorted
    forgotten: float | None = None  # when its outputs were last dropped (`tiercel forget`)
    cpu: float | None = None  # CPU seconds of its attempts (once it ended), when measured


@dataclass(frozen=True, slots=True)
class AttemptRow:
    job: JobId
    index: int
    attempt: int
    outcome: str
    final: bool
    worker: str
    exit_code: int | None
    started: float
    ended: float
    stdout: bytes
    stderr: bytes


@dataclass(frozen=True, slots=True)
class TokenRow:
    digest: str
    user: UserName
    role: str
    label: str
    created: float
    last_used: float | None


@dataclass(frozen=True, slots=True)
class WorkflowRow:
    id: int
    owner: UserName
    name: str
    submitted: float
    jobs: tuple[tuple[str, JobId], ...]


@dataclass(slots=True)
class Loaded:
    """Everything the manager needs to resume after a restart."""

    next_job_id: int
    next_workflow_id: int = 1
    seal_key: bytes = b""  # the key of the seals on handed-out attempts (core.seal), made with the store
    unfinished: list[tuple[JobRow, Restored]] = field(default_factory=list)
    tokens: dict[str, tuple[UserName, str]] = field(default_factory=dict)
    workers: list[WorkerId] = field(default_factory=list)
    reservations: list[Reservation] = field(default_factory=list)
    site_jobs: list[SaveSiteJob] = field(default_factory=list)


class Store(Protocol):
    """What the manager needs of a store. ``export`` is for `tiercel store copy`: every row, as the
    writes that make it again, in batches of about ``chunk`` rows, read from one snapshot.

    The specs that ``job`` and ``jobs`` read have no entries (a sweep's can be millions); those of
    ``Loaded.unfinished`` and ``export`` have theirs, and ``entries`` reads one job's."""

    def open(self) -> Loaded: ...
    def close(self) -> None: ...
    def write(self, ops: list[WriteOp]) -> concurrent.futures.Future[None]: ...
    def job(self, job_id: JobId) -> JobRow | None: ...
    def jobs(self, owner: UserName | None, limit: int) -> list[JobRow]: ...
    def attempts(self, job_id: JobId, index: int | None, final_only: bool) -> list[AttemptRow]: ...
    def meta(self, key: str) -> str | None: ...
    def tokens(self) -> list[TokenRow]: ...
    def workflow(self, workflow_id: int) -> WorkflowRow | None: ...
    def workflows(self, owner: UserName | None, limit: int) -> list[WorkflowRow]: ...
    def export(self, chunk: int) -> Iterator[list[WriteOp]]: ...
    def entries(self, job_id: JobId) -> Entries | None: ...
    def task_outcomes(self, job_id: JobId) -> dict[int, tuple[str | None, int]]: ...
    def restored(self, job_id: JobId) -> Restored: ...
    # Reads for the day-to-day views (store/conformance tests hold their meaning):
    def attempts_page(self, job_id: JobId, after: int, limit: int, final_only: bool = False,
                      streams: tuple[str, ...] = STREAMS, within: tuple[tuple[int, int], ...] = (),
                      max_bytes: int | None = None) -> list[AttemptRow]:
        """Every attempt (only final ones with ``final_only``) of the first ``limit`` tasks with an index
        above ``after`` (and in one of the half-open spans ``within``, when given) that have such an
        attempt, by index then attempt; outputs not in ``streams`` read as empty. With ``max_bytes``, no
        task is begun once the outputs read reach it: a page holds whole tasks, and never much more."""
        ...

    def history(self, owner: UserName | None, since: float | None, states: tuple[JobState, ...],
                limit: int) -> list[JobRow]:
        """Ended jobs (of ``owner``, or everyone's), that ended at ``since`` or later, in ``states`` (any
        when empty), the last ended first, at most ``limit``."""
        ...

    def outputs_size(self, job_id: JobId) -> tuple[int, int]:
        """How many of the job's attempt rows hold an output, and the bytes those take as stored."""
        ...

    def settled_per_step(self, job_id: JobId, start: float, step: float) -> list[tuple[int, int]]:
        """How many of the job's final attempts ended in each span of ``step`` seconds from ``start``: (the
        span's number from 0, its count) for the spans with any, in order; one that ended before ``start``
        counts in span 0. Counted in the store (a throughput plot of 100,000 tasks reads a few hundred rows)."""
        ...


@dataclass(frozen=True)
class ManagerEntry:
    """One manager as `tiercel managers` shows it."""

    name: str
    url: str
    role: str  # active, standby, or gone (not seen for three leases)
    since: float | None  # when it took the lease (the active one), seconds since the epoch
    epoch: int | None  # the lease's epoch (the active one)
    seen: float | None  # seconds since it last said it runs
    this: bool  # the manager answering

    def as_json(self) -> dict[str, object]:
        return {"name": self.name, "url": self.url, "role": self.role, "since": self.since, "epoch": self.epoch,
                "seen": self.seen, "this": self.this}
