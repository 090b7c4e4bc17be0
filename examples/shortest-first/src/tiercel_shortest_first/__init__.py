"""Shortest walltime estimate first."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tiercel.core.policy import Group, Snapshot
from tiercel.core.problems import Problem


@dataclass(frozen=True)
class ShortestFirst:
    """Jobs with the shortest walltime estimate go first."""

    unknown_last: bool = True
    name: str = "shortest-first"

    @classmethod
    def create(cls, args: Mapping[str, Any]) -> ShortestFirst | Problem:
        extra = sorted(set(args) - {"unknown_last"})
        if extra:
            return Problem(f"shortest-first.{extra[0]}", args[extra[0]],
                           "is not an argument of shortest-first (allowed: unknown_last)")
        unknown_last = args.get("unknown_last", True)
        if not isinstance(unknown_last, bool):
            return Problem("shortest-first.unknown_last", unknown_last, "must be true or false")
        return cls(unknown_last)

    def key(self, group: Group, snap: Snapshot) -> float:
        if group.walltime is None:
            return math.inf if self.unknown_last else 0.0
        return group.walltime
