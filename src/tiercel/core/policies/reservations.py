"""Reservation-aware permit: reserved slots go only to the reservation's work.

A group submitted with a reservation starts only inside the window, only for an
allowed user, and only within the reservation's slots. Other work leaves the
reserved slots alone: during a window, and also before one if it might still be
running when the window opens (it may use them only if its walltime provably
ends before the start).

A reservation holds slots of one site. Work bound to another site is not held
back by it; work not yet bound to a site (the simulator's single machine) is
weighed against every reservation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from tiercel.core.policies.args import unknown_args
from tiercel.core.policy import OK, Cycle, Group, ReservationView, Snapshot, Status, never, wait
from tiercel.core.problems import Problem
from tiercel.core.reservations import when


def peak_kept(views: tuple[ReservationView, ...], now: float, ends: float, started: Mapping[str, int]) -> int:
    """The most slots reserved and not in use at any instant of [now, ends)."""
    live = [v for v in views if v.start < ends and now < v.end]
    if not live:
        return 0
    moments = sorted({now, *(v.start for v in live if v.start > now)})
    return max(
        sum(max(0, v.slots - v.used - started.get(v.name, 0)) for v in live if v.start <= t < v.end)
        for t in moments
    )


class Reservations:
    name = "reservations"

    @staticmethod
    def create(args: Mapping[str, Any]) -> Reservations | Problem:
        return unknown_args(args, "reservations", ()) or Reservations()

    def permit(self, group: Group, n: int, cycle: Cycle, snap: Snapshot) -> tuple[int, Status]:
        views = snap.reservations
        if group.reservation is not None:
            return self._inside(group, n, cycle, snap, views)
        if group.site is not None:
            views = tuple(v for v in views if v.site == group.site)
        if not views:
            return n, OK
        ends = snap.now + group.walltime if group.walltime is not None else math.inf
        if not any(v.start < ends and snap.now < v.end for v in views):
            return n, OK
        # Even with every reserved slot in use by its own work now, other work may take only
        # real free slots: a task queued ahead on a worker (prefetch) would start in a reserved
        # slot the moment the reservation's own task there ends.
        kept = peak_kept(views, snap.now, ends, cycle.by_reservation)
        # Real slots, not a worker's queue: a task queued ahead on a worker will hold a slot too.
        places = snap.places if group.site is None else [p for p in snap.places if p.site == group.site]
        started = cycle.started_slots if group.site is None else cycle.by_site.get(group.site, 0)
        free = sum(p.total - (p.total - p.free if p.busy is None else p.busy) for p in places) - started
        room = max(0, free - kept) // group.cpus
        if room >= n:
            return n, OK
        names = ", ".join(r.name for r in views if r.start < ends and snap.now < r.end)
        return room, wait(self.name, f"{kept} free slot(s) are reserved ({names})")

    def _inside(self, group: Group, n: int, cycle: Cycle, snap: Snapshot,
                views: tuple[ReservationView, ...]) -> tuple[int, Status]:
        r = next((v for v in views if v.name == group.reservation), None)
        if r is None:
            return 0, never(self.name, f"reservation {group.reservation} does not exist (any more)")
        if group.owner not in r.users:
            return 0, never(self.name, f"{group.owner} may not use reservation {r.name}")
        if snap.now < r.start:
            return 0, wait(self.name, f"reservation {r.name} opens at {when(r.start)}")
        if snap.now >= r.end:
            return 0, never(self.name, f"reservation {r.name} ended at {when(r.end)}")
        if group.walltime is None or snap.now + group.walltime > r.end:
            # Work in a reservation must provably end with its window, or it would eat into
            # whatever comes after (another reservation, say).
            limit = "no walltime" if group.walltime is None else f"a walltime of {group.walltime:g}s"
            return 0, wait(self.name, f"with {limit} it would run past the end of reservation {r.name}")
        room = max(0, r.slots - r.used - cycle.by_reservation.get(r.name, 0)) // group.cpus
        if room >= n:
            return n, OK
        return room, wait(self.name, f"reservation {r.name} has all {r.slots} slot(s) in use")
