"""Throttle (as in CSF4): cap what one cycle starts, and running tasks per user and per queue."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tiercel.core.policies.args import arg_int, unknown_args
from tiercel.core.policy import OK, Cycle, Group, Snapshot, Status, wait
from tiercel.core.problems import Problem


@dataclass(frozen=True)
class Throttle:
    per_cycle: int | None = None
    per_user: int | None = None
    per_queue: int | None = None
    name: str = "throttle"

    @staticmethod
    def create(args: Mapping[str, Any]) -> Throttle | Problem:
        bad = unknown_args(args, "throttle", ("per_cycle", "per_user", "per_queue"))
        if bad:
            return bad
        values = {k: arg_int(args, "throttle", k, None, low=1) for k in ("per_cycle", "per_user", "per_queue")}
        for v in values.values():
            if isinstance(v, Problem):
                return v
        return Throttle(**values)  # type: ignore[arg-type]

    def permit(self, group: Group, n: int, cycle: Cycle, snap: Snapshot) -> tuple[int, Status]:
        allowed, why = n, OK
        if self.per_cycle is not None and self.per_cycle - cycle.started < allowed:
            allowed = self.per_cycle - cycle.started
            why = wait(self.name, f"at most {self.per_cycle} task(s) start per scheduling cycle")
        if self.per_user is not None:
            room = self.per_user - snap.running_by_user.get(group.owner, 0) - cycle.by_user.get(group.owner, 0)
            if room < allowed:
                allowed = room
                why = wait(self.name, f"{group.owner} already runs the most tasks allowed ({self.per_user})")
        if self.per_queue is not None:
            room = self.per_queue - snap.running_by_queue.get(group.queue, 0) - cycle.by_queue.get(group.queue, 0)
            if room < allowed:
                allowed = room
                why = wait(self.name, f"queue {group.queue} already runs the most tasks allowed ({self.per_queue})")
        return max(0, allowed), why
