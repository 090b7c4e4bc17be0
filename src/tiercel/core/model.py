"""Typed identities, states and the immutable description of a job."""

from __future__ import annotations

import enum
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import accumulate
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


AFTER_KINDS = ("ok", "any", "notok", "corr")
FAILED_OUTCOMES = frozenset({"failed", "timeout"})  # the outcomes of a task that failed (Outcome.counts_as_failure)


@dataclass(frozen=True, slots=True)
class After:
    """A dependency on an earlier job: start once it ended well (ok), ended at all (any), ended
    badly (notok), or, for corr, task i once that job's task i is done."""

    job: JobId
    kind: str = "ok"

    def text(self) -> str:
        return str(self.job) if self.kind == "ok" else f"{self.job}:{self.kind}"


@dataclass(frozen=True, slots=True)
class Parent:
    """What the shell knows of a job another depends on, when the engine does not hold it live:
    how it ended, and for corr which of its tasks are done and which failed for good."""

    state: JobState | None = None  # None: unfinished (the engine holds it)
    done: frozenset[int] = frozenset()
    failed: frozenset[int] = frozenset()


class Entries:
    """What each task of a sweep over data gets (``--each-line``, ``--each-json``): task i the i-th entry.

    Compact for millions of them: the entries as one UTF-8 blob, joined by newlines (an entry holds
    none), and where each starts (one array, made at the first lookup), never a str per entry.
    There is at least one entry: an empty blob is one empty entry.
    """

    __slots__ = ("_starts", "blob")

    def __init__(self, blob: bytes) -> None:
        self.blob = blob
        self._starts: array[int] | None = None

    @classmethod
    def of(cls, items: Iterable[str]) -> Entries:
        return cls("\n".join(items).encode())

    def _where(self) -> array[int]:
        if self._starts is None:  # the start of each entry, and one past the end of the last
            self._starts = array("Q", accumulate(map(len, self.blob.split(b"\n")), lambda at, n: at + n + 1,
                                                 initial=0))
        return self._starts

    def __len__(self) -> int:
        return len(self._starts) - 1 if self._starts is not None else self.blob.count(b"\n") + 1

    def __getitem__(self, i: int) -> str:
        starts = self._where()
        if not 0 <= i < len(starts) - 1:
            raise IndexError(f"no entry {i} (there are {len(starts) - 1})")
        return self.blob[starts[i]:starts[i + 1] - 1].decode()

    def __iter__(self) -> Iterator[str]:
        return iter(self.blob.decode().split("\n"))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Entries) and other.blob == self.blob

    def __hash__(self) -> int:
        return hash(self.blob)

    def __repr__(self) -> str:
        return f"Entries({len(self)} entries, {len(self.blob)} bytes)"


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
    # task i's entry (TaskRef.entry): kept by the store apart from the spec, never sent with it to workers
    entries: Entries | None = None
    stdout: str | None = None  # a file pattern ({index}, {job}) the worker writes each task's stdout to
    stderr: str | None = None  # the same for stderr; None: the store's copy only
    after: tuple[After, ...] = ()  # jobs it waits for
    on_dependency_failure: str = "cancel"  # or "wait": a dependency that failed may still be retried
    # caps it shares with other jobs: (key, at most this many of their tasks at once), e.g. a workflow's
    limits: tuple[tuple[str, int], ...] = ()
    # files in a shared file system (core/data.py): URLs, a pattern with {index} a file per task
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    on_missing_input: str = "fail"  # or "refuse": checked at submit
    # the managers a forwarded job came through (core.federation): set, it runs here and goes no further
    hops: tuple[str, ...] = ()

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
    data_node: str | None = None  # the file-system node (Gfarm's host name) it runs on or next to

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
    entry: str | None = field(default=None, compare=False)  # the task's entry, when its job has entries


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
    cpu: float | None = None  # CPU seconds the task's processes used (user + system); None: not measured


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
    cpu: float | None = None  # CPU seconds of its attempts so far, when any was measured
