"""Every message of the worker protocol, both ways, as a type.

Version 2: every task handed out carries its seal (core.seal), and comes back with it. A worker
of another version is refused at its hello, with a message saying so. Within a version, keys are
only ever added, optional: a ``tasks`` message's ``entries`` (each task's entry, for a sweep over
data) and a job's ``stdout`` and ``stderr`` file patterns.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tiercel.core.model import JobId, JobSpec, Report, TaskRef, WorkerId, WorkerInfo

PROTOCOL_VERSION = 2

# ---- worker → manager --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hello:
    """The first message of every session: who the worker is, what it still holds, what it finished
    that the manager has not acknowledged, and the jobs it owes a cleanup for."""

    worker: WorkerId
    info: WorkerInfo
    credit: int  # free slots (plus prefetch) it asks work for
    held: tuple[TaskRef, ...] = ()
    results: tuple[Report, ...] = ()
    ran: tuple[JobId, ...] = ()


@dataclass(frozen=True, slots=True)
class Results:
    """Finished attempts, and slots freed (credit)."""

    reports: list[Report]
    credit: int = 0


@dataclass(frozen=True, slots=True)
class Credit:
    credit: int


@dataclass(frozen=True, slots=True)
class Heartbeat:
    pass


@dataclass(frozen=True, slots=True)
class Drain:
    """Send nothing more: leaving, or busy."""


@dataclass(frozen=True, slots=True)
class Bye:
    """Leaving now: what it holds goes back to the queue."""


WorkerMessage = Hello | Results | Credit | Heartbeat | Drain | Bye

# ---- manager → worker --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Welcome:
    heartbeat: float  # how often to say it is alive


@dataclass(frozen=True, slots=True)
class Tasks:
    tasks: list[TaskRef]  # each with its entry when its job has entries (TaskRef.entry)
    specs: dict[JobId, JobSpec] = field(default_factory=dict)  # of jobs this worker has not been sent yet


@dataclass(frozen=True, slots=True)
class Ack:
    """These results are durable: the worker may forget them."""

    done: list[TaskRef]


@dataclass(frozen=True, slots=True)
class Kill:
    tasks: list[TaskRef]


@dataclass(frozen=True, slots=True)
class Cleanup:
    job: JobId


@dataclass(frozen=True, slots=True)
class Error:
    """The session ends: what is wrong."""

    message: str


@dataclass(frozen=True, slots=True)
class Reconnect:
    """The manager lost track of this worker: start over with a fresh hello."""


ManagerMessage = Welcome | Tasks | Ack | Kill | Cleanup | Error | Reconnect
