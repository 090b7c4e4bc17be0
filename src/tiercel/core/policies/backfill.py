"""EASY backfill: hold a start time for the first blocked group; later work may start
now only if it ends before then (by its walltime estimate) or uses slots the held
group will not need."""

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
        """The shadow time: when enough slots come free on the group's places for one task."""
        ids = frozenset(p.id for p in places)
        blocking = Hold(group.job, ids, BLOCKING, 0, self.name)
        need = group.cpus
        avail = sum(free[p.id] for p in places)
        if avail >= need:  # free slots exist but were held for earlier work
            return Hold(group.job, ids, snap.now, avail - need, self.name)
        releases = sorted([r for p in places for r in p.releases] + [r for pid in ids for r in started[pid]])
        for i, (when, slots) in enumerate(releases):
            if math.isinf(when):  # running work without a walltime: no start time can be promised
                return blocking
            avail += slots
            if avail >= need and (i + 1 == len(releases) or releases[i + 1][0] > when):
                return Hold(group.job, ids, when, avail - need, self.name)
        return blocking
