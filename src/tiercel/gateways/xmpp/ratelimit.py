"""A token bucket per sender, so that one chatty JID cannot flood the manager.

A sender may send ``burst`` messages at once, then ``per_minute`` a minute. Messages over
the limit are not read at all; the first of them in a row gets one reply saying so, the
rest get nothing, so that the answers cannot become a flood of their own.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

MAX_SENDERS = 10_000  # buckets kept; the least recently seen sender is forgotten first


@dataclass
class Bucket:
    tokens: float
    at: float
    warned: bool = False


class RateLimits:
    def __init__(self, burst: int, per_minute: float) -> None:
        self.burst = burst
        self.rate = per_minute / 60.0
        self.buckets: OrderedDict[str, Bucket] = OrderedDict()

    def take(self, sender: str, now: float) -> str:
        """``"ok"`` to read the message, ``"warn"`` to refuse it with a reply, ``"drop"`` to ignore it."""
        b = self.buckets.get(sender)
        if b is None:
            b = self.buckets[sender] = Bucket(float(self.burst), now)
            while len(self.buckets) > MAX_SENDERS:
                self.buckets.popitem(last=False)
        else:
            self.buckets.move_to_end(sender)
            b.tokens = min(float(self.burst), b.tokens + (now - b.at) * self.rate)
            b.at = now
        if b.tokens >= 1.0:
            b.tokens -= 1.0
            b.warned = False
            return "ok"
        if b.warned:
            return "drop"
        b.warned = True
        return "warn"
