"""Advance reservations: slots of a site held for some users over a window of time.

Admission is pure: a new reservation is refused, with the reason, when its window
is in the past or empty, when it asks for more slots than the site has, or when at
some instant it and the reservations overlapping it would hold more than the site.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Sequence
from dataclasses import dataclass

from tiercel.core.problems import MISSING, Problem


@dataclass(frozen=True, slots=True)
class Reservation:
    name: str
    site: str
    slots: int
    start: float
    end: float
    users: frozenset[str]
    owner: str = ""
    mirror: str | None = None  # the batch system's own reservation that holds the slots there too

    def active(self, now: float) -> bool:
        return self.start <= now < self.end

    def allows(self, user: str) -> bool:
        return user in self.users


def when(t: float) -> str:
    """A time as people typed it (local time), not as seconds since the epoch."""
    try:
        return datetime.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S")
    except (OverflowError, OSError, ValueError):
        return f"{t:.0f}"


def admit(new: Reservation, existing: Sequence[Reservation], capacity: int, now: float) -> Problem | None:
    for field, value in (("start", new.start), ("end", new.end)):
        if not math.isfinite(value):
            return Problem(field, value, "must be a finite time")
    if new.end <= new.start:
        return Problem("end", when(new.end), f"must be after the start ({when(new.start)})")
    if new.end <= now:
        return Problem("end", when(new.end), "is in the past: a reservation must end in the future")
    if new.slots < 1:
        return Problem("slots", new.slots, "must be at least 1")
    if new.slots > capacity:
        return Problem("slots", new.slots, f"is more than site {new.site} has ({capacity})")
    if not new.users:
        return Problem("users", MISSING, "must name at least one user")
    if any(r.name == new.name for r in existing):
        return Problem("name", new.name, "is taken by another reservation")
    same_site = [r for r in existing if r.site == new.site and r.start < new.end and new.start < r.end]
    # The peak of held slots over the new window is reached at some reservation's start.
    for t in sorted({new.start, *(r.start for r in same_site if r.start > new.start)}):
        held = new.slots + sum(r.slots for r in same_site if r.start <= t < r.end)
        if held > capacity:
            names = ", ".join(r.name for r in same_site if r.start <= t < r.end)
            return Problem("slots", new.slots, f"would oversubscribe site {new.site}: with {names} "
                                               f"{held} of its {capacity} slots would be held at {when(t)}")
    return None
