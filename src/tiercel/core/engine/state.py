"""The engine's live state: each unfinished job's tasks (waiting, running, settled) and each place's."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from tiercel.core.model import Counts, JobId, JobSpec, JobState, UserName, WorkerId, WorkerInfo
from tiercel.core.ranges import RangeQueue
from tiercel.core.sites import Choice

TaskKey = tuple[JobId, int]


@dataclass(slots=True)
class Running:
    worker: WorkerId
    attempt: int
    failures: int
    since: float


@dataclass(slots=True)
class JobRun:
    id: JobId
    spec: JobSpec
    owner: UserName
    submitted: float
    fresh: RangeQueue
    # index -> (attempt, failures), taken oldest first: an OrderedDict, as taking a plain dict's first
    # key again and again walks past every key taken before it (a corr job releases thousands here)
    retry: OrderedDict[int, tuple[int, int]] = field(default_factory=OrderedDict)
    running: dict[int, Running] = field(default_factory=dict)
    done: int = 0
    failed: int = 0
    cancelled: int = 0
    started: bool = False
    workers: set[WorkerId] = field(default_factory=set)
    choice: Choice | None = None  # the site its waiting tasks go to, once chosen
    reason: str | None = None  # why it ended before all its tasks ran (its waiting ones cancelled)
    cpu: float | None = None  # CPU seconds of its attempts reported so far (None: none measured)
    failed_idx: set[int] = field(default_factory=set)  # its tasks that failed for good (few, as a rule)
    waits: dict[JobId, str] = field(default_factory=dict)  # unfinished jobs it waits for -> kind (not corr)
    # corr: its tasks waiting for the same task of a parent, -> (attempt, failures) once released
    gated: dict[int, tuple[int, int]] = field(default_factory=dict)

    @property
    def site(self) -> str | None:
        return None if self.choice is None else self.choice.site

    @property
    def pending(self) -> int:
        return len(self.fresh) + len(self.retry)

    @property
    def startable(self) -> int:
        """Waiting tasks that may start now: none while held, and no more than its cap allows."""
        spec = self.spec
        if spec.held or self.waits:
            return 0
        if spec.max_running is None:
            return len(self.fresh) + len(self.retry)
        return max(0, min(len(self.fresh) + len(self.retry), spec.max_running - len(self.running)))

    @property
    def settled(self) -> int:
        return self.done + self.failed + self.cancelled

    def counts(self) -> Counts:
        return Counts(
            total=self.spec.size,
            queued=self.pending + len(self.gated),
            running=len(self.running),
            done=self.done,
            failed=self.failed,
            cancelled=self.cancelled,
        )

    def state(self) -> JobState:
        return JobState.RUNNING if self.started or self.settled else JobState.QUEUED

    def final_state(self) -> JobState:
        if self.cancelled:
            return JobState.CANCELLED
        return JobState.FAILED if self.failed else JobState.DONE


@dataclass(slots=True)
class WorkerRun:
    id: WorkerId
    info: WorkerInfo
    credit: int = 0
    connected: bool = True
    draining: bool = False  # leaving: finishes what it has, takes nothing new
    tasks: dict[TaskKey, int] = field(default_factory=dict)  # -> attempt
    known_jobs: set[JobId] = field(default_factory=set)
    refused: int = 0  # reports about attempts it was not given
    joined: int = 0  # its place in the engine's joining order


# ---- effects -------------------------------------------------------------
