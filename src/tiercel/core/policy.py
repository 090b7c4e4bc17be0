"""The scheduling-policy framework: extension points, statuses and the snapshot they read.

A queue loads an ordered chain of policies. Each policy implements only the
extension points it needs, named as verbs in pipeline order:

    sort     order the waiting work (chained: the first policy's key decides first,
             first come first served always breaks ties)
    filter   may this group run on this place at all?        -> Status
    score    which of the feasible places is best?           -> number, higher is better
    permit   how many of its tasks may start this cycle?     -> (count, Status)
    reserve  a group that cannot start now: what to hold for it so later work does
             not delay it (backfill)                         -> Hold

Every "no" is a Status naming the policy and the reason, so `explain` can say
why a job waits. Everything here is pure: a snapshot and `now` in, values out.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from tiercel.core.model import JobId, UserName


class Code(enum.Enum):
    OK = "ok"
    WAIT = "wait"  # not now: capacity, a limit, a reservation; the next cycle may differ
    NEVER = "never"  # no place in the snapshot can ever run it as it stands (requirements)


@dataclass(frozen=True, slots=True)
class Status:
    code: Code
    policy: str = ""
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.code is Code.OK


OK = Status(Code.OK)


def wait(policy: str, reason: str) -> Status:
    return Status(Code.WAIT, policy, reason)


def never(policy: str, reason: str) -> Status:
    return Status(Code.NEVER, policy, reason)


@dataclass(frozen=True, slots=True)
class Group:
    """A job's waiting tasks as the scheduler sees them (a rigid job is one task of many slots)."""

    job: JobId
    owner: UserName
    pending: int
    cpus: int = 1
    submitted: float = 0.0
    queue: str = "default"
    priority: int = 0
    walltime: float | None = None  # estimate per task; needed for backfill
    requires: frozenset[str] = frozenset()
    memory_mb: int = 0
    reservation: str | None = None
    site: str | None = None  # the site its tasks go to (chosen or pinned); None: any
    stay: bool = False  # may not leave this manager for a peer (pinned, forwarded here, a sweep, a reservation's)


@dataclass(frozen=True, slots=True)
class Place:
    """Somewhere tasks run: a worker, a site, or the simulator's machine."""

    id: str
    free: int
    total: int
    tags: frozenset[str] = frozenset()
    memory_mb: int = 0
    releases: Sequence[tuple[float, int]] = ()  # (time, slots) when running work should end
    name: str = ""  # what to call it in a reason, when the id is not for people
    busy: int | None = None  # slots its work holds now; None: total - free (free is not inflated by queueing)
    site: str = "pool"
    ends_at: float | None = None  # a pilot's end: no task may run past it
    reservation: str | None = None  # runs only the work of this reservation (a pilot inside its mirror)

    @property
    def shown(self) -> str:
        return self.name or self.id


@dataclass(frozen=True)
class ReservationView:
    """A reservation as one cycle sees it: its window and the slots its work holds now.

    Here rather than beside the reservations policy because the snapshot carries it and
    more than one policy reads it (requirements too).
    """

    name: str
    slots: int
    start: float
    end: float
    users: frozenset[str]
    used: int = 0
    site: str = "pool"
    own_places: bool = False  # mirrored on a pilot site: its work runs only on the pilots started inside it


@dataclass(frozen=True)
class Snapshot:
    now: float
    groups: tuple[Group, ...]
    places: tuple[Place, ...]
    running_by_user: Mapping[UserName, int] = field(default_factory=dict)
    running_by_queue: Mapping[str, int] = field(default_factory=dict)
    usage: Mapping[UserName, float] = field(default_factory=dict)  # decayed slot-seconds
    shares: Mapping[UserName, float] = field(default_factory=dict)  # relative shares (default 1)
    reservations: tuple[ReservationView, ...] = ()  # windows of reserved slots


@dataclass
class Cycle:
    """What this scheduling cycle has started so far (for permit policies)."""

    started: int = 0
    started_slots: int = 0
    by_user: dict[UserName, int] = field(default_factory=dict)
    by_queue: dict[str, int] = field(default_factory=dict)
    by_reservation: dict[str, int] = field(default_factory=dict)  # slots
    by_site: dict[str, int] = field(default_factory=dict)  # slots, for groups bound to a site

    def record(self, group: Group, n: int) -> None:
        self.started += n
        self.started_slots += n * group.cpus
        if group.reservation is not None:
            self.by_reservation[group.reservation] = self.by_reservation.get(group.reservation, 0) + n * group.cpus
        if group.site is not None:
            self.by_site[group.site] = self.by_site.get(group.site, 0) + n * group.cpus
        self.by_user[group.owner] = self.by_user.get(group.owner, 0) + n
        self.by_queue[group.queue] = self.by_queue.get(group.queue, 0) + n


@dataclass
class Hold:
    """Capacity held for a blocked group on the places it can use.

    Later work may use those places only if it ends by ``until`` or fits in
    ``spare`` slots (EASY backfill). A hold with ``until = -inf`` lets nothing
    through (plain first come, first served).
    """

    job: JobId
    places: frozenset[str]
    until: float
    spare: int
    policy: str

    def admits(self, group: Group, n: int, now: float) -> int:
        """How many of ``n`` tasks of ``group`` may start without delaying the held group."""
        if group.walltime is not None and now + group.walltime <= self.until:
            return n
        return min(n, max(0, self.spare) // group.cpus)

    def take(self, group: Group, n: int, now: float) -> None:
        if not (group.walltime is not None and now + group.walltime <= self.until):
            self.spare -= n * group.cpus


BLOCKING = -math.inf


# ---- extension points -------------------------------------------------------


@runtime_checkable
class Sorter(Protocol):
    name: str

    def key(self, group: Group, snap: Snapshot) -> float:
        """Lower sorts first. Keys of a chain compare in chain order."""
        ...


@runtime_checkable
class Filter(Protocol):
    name: str

    def filter(self, group: Group, place: Place, snap: Snapshot) -> Status:
        """OK lets the group use the place; WAIT or NEVER passes the place over, with the reason."""
        ...


@runtime_checkable
class Scorer(Protocol):
    name: str

    def score(self, group: Group, place: Place, snap: Snapshot) -> float:
        """Higher is better; scores of a chain add up. Places are filled best first."""
        ...


@runtime_checkable
class Permit(Protocol):
    name: str

    def permit(self, group: Group, n: int, cycle: Cycle, snap: Snapshot) -> tuple[int, Status]:
        """How many of ``n`` tasks may start now; below ``n``, the Status says why."""
        ...


@runtime_checkable
class Reserver(Protocol):
    name: str

    def reserve(self, group: Group, places: list[Place], free: Mapping[str, int],
                started: Mapping[str, list[tuple[float, int]]], snap: Snapshot) -> Hold:
        """Hold capacity for a group that cannot start now (``started``: this cycle's placements)."""
        ...


Policy = Sorter | Filter | Scorer | Permit | Reserver
