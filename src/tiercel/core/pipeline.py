"""One scheduling cycle: a queue's policy chain over a snapshot, giving a plan.

The order of the steps matters and is fixed here, in one place:

1. sort: the whole queue once, so every later decision sees the same order;
2. filter before permit: a group no place can run is reported as such, not as
   "throttled", and uses up no permit;
3. permit before placing, so limits cap what a cycle starts;
4. places in score order, skipping capacity held for earlier blocked work;
5. a group left with tasks it could not place holds capacity (reserve) so the
   work behind it cannot starve it: with a backfill policy later work may still
   go around it if it provably does not delay it; without one, nothing may.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from operator import attrgetter

from tiercel.core.model import JobId
from tiercel.core.policy import (
    BLOCKING,
    OK,
    Code,
    Cycle,
    Filter,
    Group,
    Hold,
    Permit,
    Place,
    Reserver,
    Scorer,
    Snapshot,
    Sorter,
    Status,
    never,
    wait,
)

MAX_REASONS = 3  # places named in one "never" status
NO_ROOM = Status(Code.WAIT, "capacity", "waiting for free slots")


@dataclass(frozen=True)
class Chain:
    """A queue's policies sorted into extension points, in the order the queue lists them."""

    name: str
    sorters: tuple[Sorter, ...] = ()
    filters: tuple[Filter, ...] = ()
    scorers: tuple[Scorer, ...] = ()
    permits: tuple[Permit, ...] = ()
    reservers: tuple[Reserver, ...] = ()

    @staticmethod
    def of(name: str, policies: Sequence[object]) -> Chain:
        return Chain(
            name,
            tuple(p for p in policies if isinstance(p, Sorter)),
            tuple(p for p in policies if isinstance(p, Filter)),
            tuple(p for p in policies if isinstance(p, Scorer)),
            tuple(p for p in policies if isinstance(p, Permit)),
            tuple(p for p in policies if isinstance(p, Reserver)),
        )


@dataclass(frozen=True, slots=True)
class Placement:
    job: JobId
    place: str
    count: int


@dataclass
class Plan:
    placements: list[Placement] = field(default_factory=list)
    waiting: dict[JobId, Status] = field(default_factory=dict)  # why each unplaced group waits
    holds: list[Hold] = field(default_factory=list)
    rest: Status | None = None  # why every group not in placements or waiting waits

    def why(self, job: JobId) -> Status | None:
        return self.waiting.get(job, self.rest)


def order(groups: Sequence[Group], chain: Chain, snap: Snapshot) -> list[Group]:
    sorters = [s for s in chain.sorters if not getattr(s, "submission_order", False)]
    if not sorters:
        # First come, first served alone: a key the C sort reads directly, so the order of a
        # long queue costs no Python call per job (most cycles of a busy simulation).
        return sorted(groups, key=_SUBMISSION)

    def key(g: Group) -> tuple[float, ...]:
        return (*(s.key(g, snap) for s in sorters), g.submitted, g.job)

    return sorted(groups, key=key)


_SUBMISSION = attrgetter("submitted", "job")


def schedule(snap: Snapshot, chain: Chain) -> Plan:
    plan = Plan()
    free = {p.id: p.free for p in snap.places}
    started: dict[str, list[tuple[float, int]]] = {p.id: [] for p in snap.places}
    cycle = Cycle()
    usable = sum(free.values())  # free slots not under a hold that lets nothing through
    for group in order(snap.groups, chain, snap):
        if usable < group.cpus and plan.holds and not chain.filters:
            # Earlier work is blocked and holds its capacity, too few slots are free anywhere
            # else for one task, and no filter could name a better reason: the common case of a
            # long queue, answered without asking every policy, so a full queue costs O(queue)
            # per cycle and no more.
            if usable <= 0:
                plan.rest = NO_ROOM  # nothing at all can start: the rest wait for the same reason
                break
            plan.waiting[group.job] = NO_ROOM
            continue
        feasible, refusal = _feasible(group, snap, chain)
        if not feasible:
            plan.waiting[group.job] = refusal
            continue
        allowed, why = _permitted(group, cycle, snap, chain)
        if allowed <= 0:
            plan.waiting[group.job] = why
            continue
        placed = _place(group, allowed, feasible, free, started, plan, snap)
        if placed:
            cycle.record(group, placed)
            usable -= placed * group.cpus
        if placed < group.pending:
            if placed < allowed:  # capacity, not a limit, stopped it
                plan.waiting[group.job] = _hold(group, feasible, free, started, plan, snap, chain)
                hard = [h for h in plan.holds if h.until == BLOCKING]
                if hard:
                    usable = sum(n for pid, n in free.items() if not any(pid in h.places for h in hard))
            else:
                plan.waiting[group.job] = why
    return plan


def _feasible(group: Group, snap: Snapshot, chain: Chain) -> tuple[list[Place], Status]:
    feasible: list[Place] = []
    refusals: list[Status] = []
    for place in snap.places:
        for f in chain.filters:
            status = f.filter(group, place, snap)
            if not status.ok:
                refusals.append(status)
                break
        else:
            feasible.append(place)
    if chain.scorers and len(feasible) > 1:
        feasible.sort(key=lambda p: -sum(s.score(group, p, snap) for s in chain.scorers))
    return feasible, _refusal(refusals)


def _refusal(refusals: list[Status]) -> Status:
    """One status for a group no place takes: a passing reason first, else every distinct one."""
    if not refusals:
        return never("", "no place to run it")
    for status in refusals:
        if status.code is Code.WAIT:
            return status
    reasons = list(dict.fromkeys(r.reason for r in refusals))
    more = f"; and {len(reasons) - MAX_REASONS} more" if len(reasons) > MAX_REASONS else ""
    return never(refusals[0].policy, "; ".join(reasons[:MAX_REASONS]) + more)


def _permitted(group: Group, cycle: Cycle, snap: Snapshot, chain: Chain) -> tuple[int, Status]:
    allowed, why = group.pending, OK
    for p in chain.permits:
        n, status = p.permit(group, allowed, cycle, snap)
        if n < allowed:
            allowed, why = max(0, n), status
        if allowed <= 0:
            break
    return allowed, why


def _place(group: Group, allowed: int, feasible: list[Place], free: dict[str, int],
           started: dict[str, list[tuple[float, int]]], plan: Plan, snap: Snapshot) -> int:
    placed = 0
    ends = snap.now + group.walltime if group.walltime is not None else math.inf
    for place in feasible:
        if placed >= allowed:
            break
        n = min(allowed - placed, free[place.id] // group.cpus)
        for hold in plan.holds:
            if n > 0 and place.id in hold.places:
                n = hold.admits(group, n, snap.now)
        if n <= 0:
            continue
        for hold in plan.holds:
            if place.id in hold.places:
                hold.take(group, n, snap.now)
        free[place.id] -= n * group.cpus
        started[place.id].append((ends, n * group.cpus))
        plan.placements.append(Placement(group.job, place.id, n))
        placed += n
    return placed


def _hold(group: Group, feasible: list[Place], free: dict[str, int], started: dict[str, list[tuple[float, int]]],
          plan: Plan, snap: Snapshot, chain: Chain) -> Status:
    ids = frozenset(p.id for p in feasible)
    if any(h.places & ids for h in plan.holds):
        # Behind another held group on the same places: EASY holds for the first only.
        return wait("capacity", f"waiting for {group.cpus} free slot(s) behind earlier work")
    if chain.reservers:
        hold = chain.reservers[0].reserve(group, feasible, free, started, snap)
    else:
        hold = Hold(group.job, ids, BLOCKING, 0, "fcfs")
    plan.holds.append(hold)
    return wait("capacity", f"waiting for {group.cpus} free slot(s); later work is held behind it")
