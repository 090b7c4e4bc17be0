"""Overflow: work leaves home for a peer manager only after it has waited ``after`` (default 5 minutes).

Without it a queue sends to peers whatever its local places cannot take now. With it, a job's
tasks go to a peer (core.federation) only once the job has waited ``after`` since it was
submitted, so short bursts stay home; a job that no local site can run at all (bound to a peer's
site) goes at once, since waiting would not bring it home.

    [queues.batch]
    policies = ["requirements", "overflow", "fcfs"]
    [queues.batch.overflow]
    after = "5m"
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tiercel.core.policies.args import arg_duration, unknown_args
from tiercel.core.policy import OK, Group, Place, Snapshot, Status, wait
from tiercel.core.problems import Problem
from tiercel.core.sites import peer_of_worker


@dataclass(frozen=True)
class Overflow:
    after: float = 300.0
    name: str = "overflow"

    @staticmethod
    def create(args: Mapping[str, Any]) -> Overflow | Problem:
        bad = unknown_args(args, "overflow", ("after",))
        if bad:
            return bad
        after = arg_duration(args, "overflow", "after", 300.0)
        return after if isinstance(after, Problem) else Overflow(after)

    def filter(self, group: Group, place: Place, snap: Snapshot) -> Status:
        peer = peer_of_worker(place.id)
        if peer is None or group.site == place.site:
            return OK
        waited = snap.now - group.submitted
        if waited >= self.after:
            return OK
        return wait(self.name, f"peer {peer}: work leaves home after waiting {self.after:g}s "
                               f"(this job has waited {max(0.0, waited):.0f}s)")
