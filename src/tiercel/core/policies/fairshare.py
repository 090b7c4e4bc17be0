"""Fair share: users furthest below their share of recent usage go first.

Usage is slot-seconds decayed with a half-life (``decay``/``charge`` keep it,
outside the policy); a user's key is usage divided by their share, so with
equal shares the lightest recent user goes first.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from tiercel.core.model import UserName
from tiercel.core.policies.args import arg_float, unknown_args
from tiercel.core.policy import Group, Snapshot
from tiercel.core.problems import Problem


@dataclass(frozen=True)
class FairShare:
    half_life: float = 86400.0  # seconds
    shares: Mapping[str, float] = field(default_factory=dict)  # relative shares; a user not named has 1
    name: str = "fairshare"

    @staticmethod
    def create(args: Mapping[str, Any]) -> FairShare | Problem:
        bad = unknown_args(args, "fairshare", ("half_life", "shares"))
        if bad:
            return bad
        half_life = arg_float(args, "fairshare", "half_life", 86400.0, low=1.0)
        if isinstance(half_life, Problem):
            return half_life
        shares = args.get("shares", {})
        if not isinstance(shares, Mapping):
            return Problem("fairshare.shares", shares, "must be a table of user = share, e.g. { alice = 2 }")
        for user, share in shares.items():
            if isinstance(share, bool) or not isinstance(share, (int, float)) or share <= 0:
                return Problem(f"fairshare.shares.{user}", share, "must be a number above 0")
        return FairShare(half_life, {str(u): float(v) for u, v in shares.items()})

    def key(self, group: Group, snap: Snapshot) -> float:
        share = self.shares.get(group.owner) or snap.shares.get(group.owner, 1.0)
        return snap.usage.get(group.owner, 0.0) / max(share, 1e-9)


def decay(usage: Mapping[UserName, float], elapsed: float, half_life: float) -> dict[UserName, float]:
    factor = 0.5 ** (max(0.0, elapsed) / half_life)
    return {u: v * factor for u, v in usage.items() if v * factor > 1e-9}


class DecayedUsage(Mapping[UserName, float]):
    """Slot-seconds per user, decaying continuously with a half-life while running work adds to it.

    Between changes a user's usage follows dU/dt = -λU + slots, so it is exact at any
    instant and costs O(1) per start or end of work, however many users there are.
    Read it as a mapping at the instant set by ``at``.
    """

    def __init__(self, half_life: float) -> None:
        self.rate = math.log(2) / half_life
        self.now = 0.0
        self._users: dict[UserName, tuple[float, float, int]] = {}  # value, as of, running slots
        self._cache: dict[UserName, float] = {}  # values at self.now: a cycle reads each user many times

    def at(self, now: float) -> DecayedUsage:
        if now != self.now:
            self._cache.clear()
        self.now = now
        return self

    def _value(self, user: UserName, now: float) -> float:
        found = self._users.get(user)
        if found is None:
            return 0.0
        value, since, slots = found
        kept = math.exp(-self.rate * max(0.0, now - since))
        return value * kept + slots * (1.0 - kept) / self.rate

    def add_running(self, user: UserName, slots: int, now: float) -> None:
        _, _, running = self._users.get(user, (0.0, now, 0))
        self._users[user] = (self._value(user, now), now, max(0, running + slots))
        self._cache.pop(user, None)

    def __getitem__(self, user: UserName) -> float:
        cached = self._cache.get(user)
        if cached is None:
            if user not in self._users:
                raise KeyError(user)
            cached = self._cache[user] = self._value(user, self.now)
        return cached

    def __iter__(self) -> Iterator[UserName]:
        return iter(self._users)

    def __len__(self) -> int:
        return len(self._users)
