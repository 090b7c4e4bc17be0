"""Federation, the pure part: forwarded ranges as leases, how much a peer is offered, when to take work back.

A manager forwards work to a peer (another manager) as *leases*: one job's tasks of one attempt,
as index spans, sent in one message however many tasks it holds. The attempt is the lease's
*epoch*: a range taken back (the peer refused it, stayed silent past its time-out, or accepted
it and never started it) waits again as the tasks' next attempt, so forwarding it again makes a
lease of the next epoch. The engine's own rules then settle every task once: a result counts
only for an attempt handed to the place that reports it (core.seal), and a task settles at its
first success.

Results of an older epoch are *accepted only for a task that has no result yet*, and that task is
not run again (its newer attempt is killed wherever it runs): the work was done, by a manager the
range was really given to, and the engine already treats a late success from a worker the same
way. A failure of an older epoch counts for nothing (the task's fate was decided when it was taken
back), and anything about a range never given to that peer is refused.

Nothing here does I/O or reads a clock: the shell (manager/federation.py) passes ``now``.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from tiercel.core.model import JobId, TaskRef
from tiercel.core.ranges import IndexRanges, Span, merge_spans

PREFETCH = 1.0  # a peer is offered this many tasks more than its slots (per slot), so its slots never wait
MAX_SLOTS = 1_000_000  # a summary claiming more slots than this on one site is nonsense
MAX_SITES = 1000


class LeaseState(enum.Enum):
    SENT = "sent"  # forwarded, not yet acknowledged
    ACCEPTED = "accepted"  # the peer stored it as a job of its own
    RETIRED = "retired"  # taken back: its tasks wait again (a late result of it may still count)

    @property
    def active(self) -> bool:
        return self is not LeaseState.RETIRED


@dataclass(slots=True)
class Lease:
    """One forwarded range: a job's tasks of one attempt (the epoch) at one peer."""

    id: str
    peer: str
    job: JobId
    epoch: int  # the attempt of every task in it
    spans: tuple[Span, ...]
    sent: float
    state: LeaseState = LeaseState.SENT
    started: int = 0  # tasks of it the peer has started or finished, as it last said
    settled: set[int] = field(default_factory=set)  # indexes whose results arrived
    why: str = ""  # why it left home, for explain
    retired_why: str = ""

    @property
    def size(self) -> int:
        return sum(b - a for a, b in self.spans)

    def __contains__(self, index: object) -> bool:
        return index in IndexRanges(self.spans)

    def refs(self) -> list[TaskRef]:
        return [TaskRef(self.job, i, self.epoch) for a, b in self.spans for i in range(a, b)]

    def open_refs(self) -> list[TaskRef]:
        """Its tasks whose results have not arrived."""
        return [TaskRef(self.job, i, self.epoch) for a, b in self.spans for i in range(a, b) if i not in self.settled]

    def text(self) -> str:
        return IndexRanges(self.spans).text()


def ranges(tasks: Iterable[TaskRef]) -> list[tuple[JobId, int, tuple[Span, ...]]]:
    """Tasks handed to a peer, cut into leases: one per job and attempt, its indexes as spans."""
    groups: dict[tuple[JobId, int], list[int]] = {}
    for t in tasks:
        groups.setdefault((t.job, t.attempt), []).append(t.index)
    out = []
    for (job, attempt), indexes in groups.items():
        out.append((job, attempt, merge_spans((i, i + 1) for i in sorted(indexes))))
    return out


@dataclass(frozen=True, slots=True)
class Offer:
    """What a peer said it can take, summed over its sites that could run forwarded work."""

    slots_total: int = 0
    slots_free: int = 0
    running_ours: int = 0  # tasks of ours it runs now
    queued: int = 0  # slots its own waiting work needs


def target(offer: Offer, prefetch: float = PREFETCH) -> int:
    """How many of our tasks a peer should hold at once: what it runs of ours and its free slots,
    plus prefetch so its slots have the next task at hand across a slow link."""
    room = max(0, offer.slots_free - offer.queued) + offer.running_ours
    return min(MAX_SLOTS, math.ceil(room * (1.0 + prefetch)))


def credit(offer: Offer, in_flight: int, prefetch: float = PREFETCH) -> int:
    """Slots to offer the peer's place now: its target less the tasks it already holds of ours."""
    return max(0, target(offer, prefetch) - in_flight)


def shares(waiting: int, local_free: int, offers: dict[str, int]) -> dict[str, int]:
    """How ``waiting`` tasks split between home (``local_free`` slots) and peers offering slots: in
    proportion to the slots each offers, home's share first; what peers get, by name."""
    total = local_free + sum(max(0, n) for n in offers.values())
    if waiting <= 0 or total <= 0:
        return {p: 0 for p in offers}
    out: dict[str, int] = {}
    left = max(0, waiting - min(waiting, local_free))
    names = sorted(offers, key=lambda p: (-offers[p], p))
    away = sum(max(0, offers[p]) for p in names)
    given = 0
    for p in names:
        n = left * max(0, offers[p]) // away if away else 0
        out[p] = n
        given += n
    for p in names:  # the remainder of the division, one each, largest offers first
        if given >= left:
            break
        if offers[p] > 0:
            out[p] += 1
            given += 1
    return out


@dataclass(frozen=True, slots=True)
class Overdue:
    """What to take back from a peer now."""

    all: bool = False  # the peer is silent past its time-out: every active lease
    leases: tuple[str, ...] = ()  # accepted but not started past the start time-out
    why: str = ""


def overdue(leases: Sequence[Lease], now: float, silent_since: float | None, timeout: float,
            start_timeout: float) -> Overdue:
    """A peer silent for longer than ``timeout`` loses every active lease; one that accepted a lease
    and started none of its tasks for longer than ``start_timeout`` loses that lease."""
    active = [x for x in leases if x.state.active]
    if not active:
        return Overdue()
    if silent_since is not None and now - silent_since > timeout:
        return Overdue(True, tuple(x.id for x in active), f"silent for {now - silent_since:.0f}s "
                                                          f"(time-out {timeout:g}s)")
    stuck = tuple(x.id for x in active if x.started == 0 and not x.settled and now - x.sent > start_timeout)
    if stuck:
        return Overdue(False, stuck, f"accepted and started none of it in {start_timeout:g}s")
    return Overdue()


def verdict(lease: Lease | None, peer: str, indexes: Iterable[int]) -> str | None:
    """Whether a peer may report on these indexes of this lease: None, or why not."""
    if lease is None:
        return "a range it was not given"
    if lease.peer != peer:
        return f"range {lease.id}, which was given to peer {lease.peer}"
    outside = [i for i in indexes if i not in lease]
    if outside:
        return f"index(es) {', '.join(map(str, outside[:5]))} outside range {lease.id} ({lease.text()})"
    return None


@dataclass(frozen=True, slots=True)
class SiteSummary:
    """One site of a peer, as its summary describes it."""

    name: str
    kind: str
    slots_total: int
    slots_free: int
    max_cpus: int | None = None
    max_memory_mb: int | None = None
    max_walltime: float | None = None
    tags: frozenset[str] = frozenset()
    queued: int = 0  # slots its waiting work needs
    running: int = 0


def check_sites(sites: Sequence[SiteSummary]) -> str | None:
    """Why a summary's sites are nonsense (negative or impossible counts), or None."""
    if len(sites) > MAX_SITES:
        return f"{len(sites)} sites (at most {MAX_SITES})"
    for s in sites:
        for what, n in (("slots_total", s.slots_total), ("slots_free", s.slots_free), ("queued", s.queued),
                        ("running", s.running)):
            if not 0 <= n <= MAX_SLOTS:
                return f"site {s.name!r}: {what} {n} is not between 0 and {MAX_SLOTS}"
        if s.slots_free > s.slots_total:
            return f"site {s.name!r}: {s.slots_free} free slots of {s.slots_total}"
        for what, v in (("max_cpus", s.max_cpus), ("max_memory_mb", s.max_memory_mb),
                        ("max_walltime", s.max_walltime)):
            if v is not None and not 0 < v < 1e12:
                return f"site {s.name!r}: {what} {v} must be positive"
    return None


def offer_of(sites: Sequence[SiteSummary], running_ours: int) -> Offer:
    return Offer(sum(s.slots_total for s in sites), sum(s.slots_free for s in sites), running_ours,
                 sum(s.queued for s in sites))
