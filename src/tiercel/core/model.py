"""Typed identities, states and the immutable description of a job."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import NewType

from tiercel.core.ranges import IndexRanges

JobId = NewType("JobId", int)
MAX_JOB_ID = 2**63 - 1  # job ids are stored as signed 64-bit integers
WorkerId = NewType("WorkerId", str)
UserName = NewType("UserName", str)


class JobState(enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in (JobState.DONE, JobState.FAILED, JobState.CANCELLED)


class Outcome(enum.Enum):
    """How one attempt of a task ended."""

    DONE = "done"  # exit status 0
    FAILED = "failed"  # non-zero exit status, or the command could not start
    TIMEOUT = "timeout"  # killed for running past its walltime
    CANCELLED = "cancelled"  # killed because the job was cancelled
    LOST = "lost"  # the worker went away while running it

    @property
    def counts_as_failure(self) -> bool:
        return self in (Outcome.FAILED, Outcome.TIMEOUT)


@dataclass(frozen=True, slots=True)
class JobSpec:
    """What a user submitted. Validated before it reaches the core."""

    command: tuple[str, ...]
    indexes: IndexRanges
    shell: bool = False  # command[0] is a shell string run by /bin/sh -c
    name: str = ""
    requires: frozenset[str] = frozenset()
    cleanup: str | None = None
    retries: int = 0
    walltime: float | None = None
    env: tuple[tuple[str, str], ...] = ()
    cwd: str | None = None
    append_index: bool = True
    cpus: int = 1
    memory_mb: int = 0
    priority: int = 0
    queue: str = "default"
    reservation: str | None = None
    site: str | None = None  # pinned to this site; None: the scheduler chooses
    max_running: int | None = None  # at most this many of its tasks at once (Slurm's %N); None: no cap
    max_failures: int | None = None  # once this many tasks failed for good, the rest are cancelled
    held: bool = False  # no new task starts until it is released (running ones go on)

    @property
    def size(self) -> int:
        return len(self.indexes)


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """What a worker advertises when it connects."""

    name: str
    host: str
    slots: int
    tags: frozenset[str] = frozenset()
    cpus: int = 1
    memory_mb: int = 0
    site: str = "pool"  # the site it belongs to: "pool", or the batch site that started it as a pilot
    ends_at: float | None = None  # a pilot's end: it takes no task whose walltime would run past it
    reservation: str | None = None  # a pilot inside a reservation's batch-system mirror: it runs only that work

    def fits(self, spec: JobSpec) -> bool:
        """Requirement matching: every required tag present, resources suffice."""
        return (
            spec.requires <= self.tags
            and spec.cpus <= self.slots
            and (spec.memory_mb == 0 or self.memory_mb == 0 or spec.memory_mb <= self.memory_mb)
        )


@dataclass(frozen=True, slots=True)
class TaskRef:
    job: JobId
    index: int
    attempt: int
    seal: bytes = field(default=b"", compare=False)  # the manager's proof it handed out this attempt (core.seal)


@dataclass(slots=True)
class Report:
    """A worker's report of one finished attempt."""

    job: JobId
    index: int
    attempt: int
    outcome: Outcome
    exit_code: int | None = None
    started: float = 0.0
    ended: float = 0.0
    stdout: bytes = b""
    stderr: bytes = b""
    seal: bytes = b""  # the seal of the attempt, as the manager handed it out (core.seal)


@dataclass(slots=True)
class AttemptRecord:
    """A row to persist: one attempt's report, who ran it and whether it settled its task."""

    report: Report
    final: bool
    worker: WorkerId


@dataclass(slots=True)
class Counts:
    total: int
    queued: int = 0
    running: int = 0
    done: int = 0
    failed: int = 0
    cancelled: int = 0

    @property
    def finished(self) -> int:
        return self.done + self.failed + self.cancelled


@dataclass(slots=True)
class RestoredTask:
    """Attempts already recorded for a task that has not settled yet."""

    attempts: int
    failures: int


@dataclass(slots=True)
class Restored:
    """What the store knows of an unfinished job after a restart.

    ``settled`` holds the indexes whose task has a final attempt, as spans, so
    a large array restores without one object per finished task.
    """

    settled: list[tuple[int, int]] = field(default_factory=list)
    done: int = 0
    failed: int = 0
    unsettled: dict[int, RestoredTask] = field(default_factory=dict)
