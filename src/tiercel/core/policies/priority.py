"""Priority with ageing: higher priority first; waiting raises a job's priority over time."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tiercel.core.policies.args import arg_float, unknown_args
from tiercel.core.policy import Group, Snapshot
from tiercel.core.problems import Problem


@dataclass(frozen=True)
class Priority:
    per_hour: float = 1.0  # priority points a job gains for each hour it waits
    name: str = "priority"

    @staticmethod
    def create(args: Mapping[str, Any]) -> Priority | Problem:
        bad = unknown_args(args, "priority", ("per_hour",))
        if bad:
            return bad
        per_hour = arg_float(args, "priority", "per_hour", 1.0)
        return per_hour if isinstance(per_hour, Problem) else Priority(per_hour)

    def key(self, group: Group, snap: Snapshot) -> float:
        age_hours = max(0.0, snap.now - group.submitted) / 3600
        return -(group.priority + self.per_hour * age_hours)
