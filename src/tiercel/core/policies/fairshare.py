"""Fair share: users furthest below their share of recent usage go first.

Usage is slot-seconds decayed with a half-life (``decay``/``charge`` keep it,
outside the policy); a user's key is usage divided by their share, so with
equal shares the lightest recent user goes first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tiercel.core.model import UserName
from tiercel.core.policies.args import arg_float, unknown_args
from tiercel.core.policy import Group, Snapshot
from tiercel.core.problems import Problem


@dataclass(frozen=True)
class FairShare:
    half_life: float = 86400.0  # seconds
    name: str = "fairshare"

    @staticmethod
    def create(args: Mapping[str, Any]) -> FairShare | Problem:
        bad = unknown_args(args, "fairshare", ("half_life",))
        if bad:
            return bad
        half_life = arg_float(args, "fairshare", "half_life", 86400.0, low=1.0)
        return half_life if isinstance(half_life, Problem) else FairShare(half_life)

    def key(self, group: Group, snap: Snapshot) -> float:
        share = snap.shares.get(group.owner, 1.0)
        return snap.usage.get(group.owner, 0.0) / max(share, 1e-9)


def decay(usage: Mapping[UserName, float], elapsed: float, half_life: float) -> dict[UserName, float]:
    factor = 0.5 ** (max(0.0, elapsed) / half_life)
    return {u: v * factor for u, v in usage.items() if v * factor > 1e-9}


def charge(usage: dict[UserName, float], running_slots: Mapping[UserName, int], elapsed: float,
           half_life: float) -> dict[UserName, float]:
    """Decay past usage over ``elapsed`` seconds and add what ran meanwhile."""
    out = decay(usage, elapsed, half_life)
    for user, slots in running_slots.items():
        if slots:
            out[user] = out.get(user, 0.0) + slots * elapsed
    return out
