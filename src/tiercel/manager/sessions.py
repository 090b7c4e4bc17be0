"""One table of the places that run tasks, whatever carries their messages.

A place is a worker process that speaks the worker protocol (over WebSocket or XMPP),
or a batch site whose native arrays the manager drives itself; a peer manager joins as a
site's place too (tiercel.federation). Each has one session here, keyed by the engine's id for it: how to send to
it, who opened it, when it was last heard from, what it ran. A session outlives its
connection (``open`` is False) until the place is declared lost, so a worker that
reconnects finds its place again and a silent one is found by the liveness duty.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from tiercel.core.engine import KillTasks, SendTasks
from tiercel.core.model import WorkerId, WorkerInfo
from tiercel.wire.messages import ManagerMessage

Send = Callable[[ManagerMessage], None]


class PlaceKind(enum.Enum):
    WORKER = "worker"  # a worker process: pool workers, pilots, local workers
    SITE = "site"  # a batch system's native arrays: polled by the manager, never heard from


@dataclass
class Session:
    worker: WorkerId
    info: WorkerInfo
    send: Send
    opened: float
    transport: str = "websocket"  # websocket, xmpp, or site
    principal: str = ""  # who opened it (a token's digest, an XMPP bare JID): its worker id is theirs alone
    kind: PlaceKind = PlaceKind.WORKER
    ran: int = 0  # tasks handed to it
    last_seen: float = 0.0
    open: bool = True
    link: Any = None  # the transport's own state for it (an XMPP peer), opaque here
    # A site takes the engine's effects themselves (it turns them into batch jobs), not frames.
    deliver: Callable[[SendTasks | KillTasks], None] | None = None


def _nowhere(_: ManagerMessage) -> None:
    """Where messages to a closed session go: it hands in what it holds at its next hello."""


class Sessions:
    def __init__(self) -> None:
        self._table: dict[WorkerId, Session] = {}

    def __iter__(self) -> Iterator[Session]:
        return iter(list(self._table.values()))

    def __len__(self) -> int:
        return len(self._table)

    def get(self, worker: WorkerId) -> Session | None:
        return self._table.get(worker)

    def current(self, worker: WorkerId) -> Session | None:
        """The worker's session if its connection is open."""
        s = self._table.get(worker)
        return s if s is not None and s.open else None

    def holder(self, worker: WorkerId) -> str | None:
        """Who holds this worker id: its session's principal, open or not, until the place is lost.

        A closed session counts too: another's credentials taking the id of a worker that is only
        reconnecting would have its tasks re-queued under it.
        """
        s = self._table.get(worker)
        return None if s is None else s.principal

    def open(self, session: Session, now: float) -> Session | None:
        """Make ``session`` the worker's; returns the open session it replaces, if any."""
        old = self.current(session.worker)
        session.last_seen = now
        self._table[session.worker] = session
        return old if old is not None and old is not session else None

    def close(self, session: Session) -> bool:
        """The connection ended; the place stays (until lost). False if a newer session replaced it."""
        if self._table.get(session.worker) is not session:
            return False
        session.open = False
        session.send = _nowhere
        return True

    def drop(self, worker: WorkerId) -> Session | None:
        """The place is gone for good."""
        return self._table.pop(worker, None)

    def heard(self, worker: WorkerId, now: float) -> None:
        s = self._table.get(worker)
        if s is not None:
            s.last_seen = now

    def silent(self, now: float, timeout: float) -> list[Session]:
        """Worker sessions not heard from for longer than ``timeout`` (sites are polled, not heard)."""
        return [s for s in self._table.values() if s.kind is PlaceKind.WORKER and now - s.last_seen > timeout]

    def of_principal(self, principal: str) -> list[Session]:
        return [s for s in self._table.values() if s.open and s.principal == principal]

    def slots(self, kind: PlaceKind = PlaceKind.WORKER) -> int:
        """Slots of the open sessions of one kind."""
        return sum(s.info.slots for s in self._table.values() if s.open and s.kind is kind)
