"""What the engine asks the shell to do: the effects its events return."""

from __future__ import annotations

from dataclasses import dataclass

from tiercel.core.model import AttemptRecord, Counts, JobId, JobSpec, JobState, TaskRef, UserName, WorkerId


@dataclass(frozen=True, slots=True)
class Persist:
    records: list[AttemptRecord]


@dataclass(frozen=True, slots=True)
class SendTasks:
    worker: WorkerId
    tasks: list[TaskRef]
    specs: dict[JobId, JobSpec]  # specs of jobs this worker has not been sent yet


@dataclass(frozen=True, slots=True)
class KillTasks:
    worker: WorkerId
    tasks: list[TaskRef]


@dataclass(frozen=True, slots=True)
class JobEnded:
    job: JobId
    owner: UserName
    state: JobState
    counts: Counts
    spec: JobSpec
    submitted: float
    reason: str | None = None
    cpu: float | None = None  # CPU seconds of all its attempts, when any was measured


@dataclass(frozen=True, slots=True)
class RunCleanup:
    worker: WorkerId
    job: JobId


@dataclass(frozen=True, slots=True)
class Refused:
    """A worker reported on attempts it was not handed: dropped, to be logged and not acknowledged."""

    worker: WorkerId
    tasks: list[TaskRef]




@dataclass(frozen=True, slots=True)
class Replicate:
    """Make a replica of a file on a file-system node (data-aware placement decided a copy wins);
    the shell reports back with ``Engine.replica_made``."""

    path: str
    node: str
    size: int


@dataclass(frozen=True, slots=True)
class Relocate:
    """Ask Gfarm again where these files are (replicas a task could not read, passed over long enough);
    the answer comes back as a ``DataView`` whose ``located`` names them."""

    paths: tuple[str, ...]


Effect = Persist | SendTasks | KillTasks | JobEnded | RunCleanup | Refused | Replicate | Relocate
