"""EASY backfill: hold a start time for the first blocked group; later work may start
now only if it ends before then (by its walltime estimate) or uses slots the held
group will not need.

A task runs on one place, so the start time is worked out place by place: the held
group gets the place where one of its tasks can start earliest, and only that place
is held; the others stay open to later work.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from tiercel.core.policies.args import unknown_args
from tiercel.core.policy import BLOCKING, Group, Hold, Place, Snapshot
from tiercel.core.problems import Problem


class Backfill:
    name = "backfill"

    @staticmethod
    def create(args: Mapping[str, Any]) -> Backfill | Problem:
        return unknown_args(args, "backfill", ()) or Backfill()

    def reserve(self, group: Group, places: list[Place], free: Mapping[str, int],
                started: Mapping[str, list[tuple[float, int]]], snap: Snapshot) -> Hold:
        best: tuple[float, int, str] | None = None
        for place in places:
            found = shadow(group.cpus, free[place.id], [*place.releases, *started[place.id]], snap.now)
            if found is not None and (best is None or found[0] < best[0]):
                best = (found[0], found[1], place.id)
        if best is None:  # no promise can be made (work without walltimes): hold them all
            return Hold(group.job, frozenset(p.id for p in places), BLOCKING, 0, self.name)
        until, spare, place_id = best
        return Hold(group.job, frozenset({place_id}), until, spare, self.name)


def shadow(need: int, free: int, releases: list[tuple[float, int]], now: float) -> tuple[float, int] | None:
    """When ``need`` slots are free on one place, and how many more are free then; None if never known."""
    if free >= need:
        return now, free - need
    avail = free
    ordered = sorted(releases)
    for i, (when, slots) in enumerate(ordered):
        if math.isinf(when):
            return None
        avail += slots
        if avail >= need and (i + 1 == len(ordered) or ordered[i + 1][0] > when):
            return max(when, now), avail - need
    return None
