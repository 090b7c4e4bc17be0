"""One configured peer as this manager knows it: its links, what it last said, what went wrong with it.

The service (service.py) keeps one per ``[peers.NAME]`` table; origin.py and inbound.py read and
update it for the ranges going each way.
"""

from __future__ import annotations

import collections

from tiercel.core.federation import SiteSummary
from tiercel.federation import link
from tiercel.peerconfig import Peer

REFUSALS_KEPT = 20


class PeerState:
    """One configured peer: its links, what it last said, and what went wrong with it."""

    def __init__(self, cfg: Peer, now: float) -> None:
        self.cfg = cfg
        self.name = cfg.name
        self.cfg_user = cfg.user
        self.conns: list[link.Conn] = []
        self.remote_id: str | None = None
        self.link_state = "connecting" if cfg.url else "waiting for it to connect"
        self.link_why: str | None = None
        self.down_since: float | None = now
        self.rtt: float | None = None
        self.last_heard: float | None = None
        self.summary_at: float | None = None
        self.sites: tuple[SiteSummary, ...] = ()
        self.running_ours = 0
        self.started: dict[str, int] = {}
        self.refusals: collections.deque[tuple[float, str]] = collections.deque(maxlen=REFUSALS_KEPT)
        self.refused = 0  # what we refused of it
        self.refused_by_it = 0  # what it refused of ours
        self.pause_until = 0.0
        self.forwarded_tasks = 0
        self.messages_in = 0
        self.messages_out_before = 0  # on links since closed

    @property
    def silent_since(self) -> float | None:
        """Since when nothing was heard from it (summaries come each interval while all is well)."""
        return self.last_heard if self.last_heard is not None else self.down_since

    @property
    def up(self) -> bool:
        return any(not c.closed and c.remote is not None for c in self.conns)

    def conn(self) -> link.Conn | None:
        live = [c for c in self.conns if not c.closed and c.remote is not None]
        return min(live, key=lambda c: c.direction != "out") if live else None

    @property
    def messages_out(self) -> int:
        return self.messages_out_before + sum(c.sent_messages for c in self.conns)
