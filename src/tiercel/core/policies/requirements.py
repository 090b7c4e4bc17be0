"""Requirements: a place on the job's site, with every required tag, enough slots and memory, and time left.

A peer (another manager, core.federation) is a place of its own site that may also take a job bound to a
local site: the tasks the local places leave waiting overflow there, unless the job must stay home.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tiercel.core.policies.args import unknown_args
from tiercel.core.policy import OK, Group, Place, Snapshot, Status, never, wait
from tiercel.core.problems import Problem
from tiercel.core.sites import peer_of_worker


class Requirements:
    name = "requirements"

    @staticmethod
    def create(args: Mapping[str, Any]) -> Requirements | Problem:
        return unknown_args(args, "requirements", ()) or Requirements()

    def filter(self, group: Group, place: Place, snap: Snapshot) -> Status:
        peer = peer_of_worker(place.id)
        if peer is not None and group.stay:
            return never(self.name, f"peer {peer}: this job stays on this manager (forwarded here, pinned to a "
                                    "site, a sweep over data or a reservation's)")
        if group.site is not None and place.site != group.site and (peer is None or group.site.startswith("peer:")):
            return wait(self.name, f"{place.shown} is on site {place.site}; the job runs on site {group.site}")
        if place.reservation is not None and group.reservation != place.reservation:
            return wait(self.name, f"{place.shown} runs only the work of reservation {place.reservation}")
        if group.reservation is not None and place.reservation is None and any(
                v.name == group.reservation and v.own_places for v in snap.reservations):
            return wait(self.name, f"reservation {group.reservation} runs on the pilots started inside its "
                                   f"mirror, not on {place.shown}")
        if place.ends_at is not None and group.walltime is not None and snap.now + group.walltime > place.ends_at:
            return wait(self.name, f"{place.shown} ends in {max(0.0, place.ends_at - snap.now):.0f}s; "
                                   f"a task may run {group.walltime:g}s")
        missing = group.requires - place.tags
        if missing:
            return never(self.name, f"{place.shown} lacks tag(s) {', '.join(sorted(missing))}")
        if group.cpus > place.total:
            return never(self.name, f"{place.shown} has {place.total} slot(s); a task needs {group.cpus}")
        if group.memory_mb and place.memory_mb and group.memory_mb > place.memory_mb:
            return never(self.name, f"{place.shown} has {place.memory_mb} MB; a task needs {group.memory_mb} MB")
        return OK
