"""What every batch-system adapter provides: pure builders and parsers.

An adapter never runs anything. It builds the command line (and the script or
submit description fed to it on stdin) for three operations — submit an array,
query the state of arrays, cancel an array or some of its elements — and parses
what the batch system prints back. ``sites.site.Site`` owns the
subprocesses, time-outs, retries and the one batched status poll per site.

Elements of a native array are numbered 1..count on every system (HTCondor's
0-based ``$(Process)`` is shifted by its adapter). The script an element runs
finds its number in ``$TIERCEL_ELEMENT``; the adapter's header sets it from the
system's own variable.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol, runtime_checkable


class NativeState(enum.Enum):
    """What the batch system says of one element, mapped from its own state codes."""

    PENDING = "pending"  # queued, held or not yet started
    RUNNING = "running"  # started (or suspended: it holds its allocation)
    DONE = "done"  # ended by itself; the element's own exit status is in its result file
    FAILED = "failed"  # ended with a non-zero status, or could not start
    CANCELLED = "cancelled"  # removed by a user or an admin
    TIMEOUT = "timeout"  # killed at its time limit
    LOST = "lost"  # node failure, preemption, boot failure: worth running again

    @property
    def terminal(self) -> bool:
        return self not in (NativeState.PENDING, NativeState.RUNNING)


@dataclass(frozen=True, slots=True)
class ArrayRequest:
    """One native array job: ``count`` elements that each run ``script``."""

    name: str  # job name in the batch system: letters, digits, '-', '_' and '.' only
    count: int  # elements 1..count
    script: str  # shell text each element runs; $TIERCEL_ELEMENT holds its number
    workdir: str  # absolute directory for the batch system's own output files
    walltime: float | None = None  # seconds per element
    cpus: int = 1
    memory_mb: int = 0  # per element; 0: the system's default
    queue: str | None = None  # partition (Slurm), queue (SGE, PBS, LSF); HTCondor has none
    account: str | None = None  # account or project to charge
    throttle: int | None = None  # at most this many elements running at once
    directives: tuple[str, ...] = ()  # extra header lines, written as given
    reservation: str | None = None  # the batch system's own reservation to run in (a mirrored one)


@dataclass(frozen=True, slots=True)
class Invocation:
    """A command to run: its argument vector, what to feed on stdin, and files to write first."""

    argv: tuple[str, ...]
    stdin: str | None = None
    files: tuple[tuple[str, str], ...] = ()  # (absolute path, content), written before running
    # A non-zero exit whose message holds this text still answers: the system only says that
    # some ids it was asked about are gone (purged after they ended); its stdout lists the rest.
    gone: str | None = None


@dataclass(frozen=True, slots=True)
class ElementState:
    """One row of a status query: an element of a native array (or the whole array when element is None)."""

    native_id: str
    element: int | None
    state: NativeState
    exit_code: int | None = None
    reason: str = ""  # the system's own state code or reason, for logs and `tiercel sites`


class ParseError(ValueError):
    """The batch system printed something the adapter cannot read; ``text`` is what it printed."""

    def __init__(self, message: str, text: str) -> None:
        super().__init__(message)
        self.text = text


class Adapter(Protocol):
    """A batch system's builders and parsers. Every method is pure."""

    kind: ClassVar[str]  # "slurm", "sge", "pbs", "lsf", "htcondor"
    commands: ClassVar[tuple[str, ...]]  # executables the site needs on PATH
    max_array: ClassVar[int]  # the system's default limit on elements per array

    def submit(self, req: ArrayRequest) -> Invocation:
        """Submit one array of ``req.count`` elements (a single job when count is 1 is still an array)."""
        ...

    def parse_submit(self, out: str) -> str:
        """The native id of the array just submitted, from the submit command's stdout."""
        ...

    def status(self, native_ids: Sequence[str]) -> Invocation:
        """One query for the state of all these arrays (the site's batched poll)."""
        ...

    def parse_status(self, out: str) -> list[ElementState]:
        """Rows of the status query. Arrays or elements the system no longer lists are simply absent."""
        ...

    def cancel(self, native_id: str, elements: Sequence[int] | None = None) -> Invocation:
        """Cancel the whole array (``elements`` None) or only these elements of it."""
        ...


@dataclass(frozen=True, slots=True)
class NativeReservation:
    """A Tiercel reservation as the batch system's own: ``cores`` held for ``users`` over [start, end)."""

    name: str
    start: float  # epoch seconds; at or before now: from now on
    end: float
    cores: int
    users: tuple[str, ...]  # the batch system's accounts allowed in (the one the manager submits as)
    queue: str | None = None  # partition


@runtime_checkable
class Reserving(Protocol):
    """An adapter that can mirror reservations into its batch system (Slurm's ``scontrol``)."""

    # what the delete command says when jobs still run in the reservation: try again once they end
    in_use: ClassVar[str]

    def reserve(self, r: NativeReservation, now: float) -> Invocation:
        """Create the reservation."""
        ...

    def parse_reserve(self, out: str) -> str:
        """The name the batch system gave the reservation, from the create command's output."""
        ...

    def unreserve(self, name: str) -> Invocation:
        """Delete the reservation."""
        ...
