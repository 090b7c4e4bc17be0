"""The manager's side of XMPP workers: the worker protocol carried in stanzas, and presence.

It feeds the same Manager methods as the WebSocket channel (``worker_connected`` for a
hello, ``worker_message`` for every other message, ``worker_disconnected``), so neither the
manager's bookkeeping nor the core knows which transport a worker uses. What XMPP adds is
presence, which the server keeps for us:

- a worker announces itself with directed presence to the manager's bare JID; the manager
  answers with directed presence to the worker's full JID. From then on the server tells
  each side at once when the other goes away, even after ``kill -9``;
- ``unavailable`` from a worker: its tasks are re-queued at once;
- ``away``, ``xa`` or ``dnd``: busy, it gets no new tasks until it is available again;
- a worker that hangs without going offline falls silent (no results, no heartbeats); once
  silent for ``ping_interval`` it is pinged (XEP-0199), and two pings in a row unanswered
  declare it lost, long before the silence time-out would.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgpack
import slixmpp
from slixmpp.exceptions import IqError, IqTimeout

from tiercel.core.model import WorkerId
from tiercel.gateways.xmpp.link import send_frame
from tiercel.manager.sessions import Session
from tiercel.manager.shell import Manager
from tiercel.wire.codec import HelloError, WireError, decode_from_worker, decode_hello, encode, pack
from tiercel.wire.messages import Bye, Drain, Error, ManagerMessage, Reconnect, Welcome

if TYPE_CHECKING:
    from tiercel.gateways.xmpp.config import XmppConfig

log = logging.getLogger("tiercel.xmpp.workers")

BUSY = ("away", "xa", "dnd")
PING_MISSES = 2  # unanswered pings in a row (with nothing else heard) before a worker is declared lost


@dataclass
class Peer:
    """What the XMPP transport keeps of one worker's session (the session's ``link``), by its full JID."""

    jid: str
    conn: Session
    outbox: list[ManagerMessage] = field(default_factory=list)
    flush_scheduled: bool = False
    busy: bool = False
    draining: bool = False
    closed: bool = False
    heard: float = field(default_factory=time.monotonic)  # when it last sent anything
    misses: int = 0  # pings in a row that went unanswered while it stayed silent


class XmppWorkers:
    def __init__(self, manager: Manager, client: slixmpp.ClientXMPP, config: XmppConfig) -> None:
        self.manager = manager
        self.client = client
        self.config = config
        self.peers: dict[str, Peer] = {}
        self.shows: dict[str, str] = {}  # last presence show of each worker full JID

    # ---- frames ------------------------------------------------------------

    def refuse(self, sender: slixmpp.JID) -> None:
        """A JID that may not run tasks sent a frame: tell it why (its worker stops with this)."""
        self._send_now(str(sender), Error(f"{sender.bare} is not allowed to run tasks here: "
                                          "add it to workers in the manager's [xmpp] table"))

    def on_frame(self, sender: slixmpp.JID, frame: bytes) -> None:
        full = str(sender)
        if not self.config.may_work(str(sender.bare)):
            self.refuse(sender)
            return
        try:
            msg = msgpack.unpackb(frame, raw=False, strict_map_key=False)
        except (TypeError, ValueError, msgpack.UnpackException):
            log.warning("dropped a frame from %s that is not msgpack", full)
            return
        if not isinstance(msg, dict):
            return
        kind = msg.get("t")
        if kind == "hello":
            self._hello(full, msg)
            return
        peer = self.peers.get(full)
        if peer is None:  # we forgot it (our own reconnect): it starts over with a hello
            self._send_now(full, Reconnect())
            return
        peer.heard = time.monotonic()
        peer.misses = 0
        try:
            message = decode_from_worker(msg)
        except WireError as exc:
            log.warning("XMPP worker %s sent %s; dropped", peer.conn.info.name, exc)
            return
        if isinstance(message, Drain):
            peer.draining = True
        elif isinstance(message, Bye):
            self._drop(peer)
        self.manager.worker_message(peer.conn, message, take_credit=not peer.busy)

    def _hello(self, full: str, msg: dict[str, Any]) -> None:
        try:
            hello = decode_hello(msg)
        except HelloError as exc:
            self._send_now(full, Error(f"hello: {exc}"))
            return
        worker_id, info = hello.worker, hello.info
        old = self.peers.pop(full, None)
        if old is not None:
            old.closed = True
            if old.conn.worker != worker_id:
                self.manager.worker_disconnected(old.conn)
        peer = Peer(full, Session(worker_id, info, lambda m: None, self.manager.clock(), transport="xmpp",
                                  principal=f"xmpp:{slixmpp.JID(full).bare}"))
        peer.conn.send = lambda m, p=peer: self._queue(p, m)  # type: ignore[misc]
        peer.conn.link = peer
        self.peers[full] = peer
        peer.conn.send(Welcome(self.manager.settings.heartbeat))
        busy = self.shows.get(full) in BUSY
        # A busy worker's free slots are not counted: it is sent nothing until it is available.
        if not self.manager.worker_connected(peer.conn, dataclasses.replace(hello, credit=0) if busy else hello):
            if old is not None and old.conn.worker == worker_id:
                self.manager.worker_disconnected(old.conn)  # its session is over too: nothing is sent there
            return  # the error frame drops the new peer
        log.info("XMPP worker %s (%s, %d slots) connected as %s", info.name, worker_id, info.slots, full)
        if busy:
            self._pause(peer)

    # ---- sending -----------------------------------------------------------

    def _queue(self, peer: Peer, msg: ManagerMessage) -> None:
        if peer.closed:
            return
        peer.outbox.append(msg)
        if not peer.flush_scheduled:
            peer.flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush, peer)

    def _flush(self, peer: Peer) -> None:
        peer.flush_scheduled = False
        batch, peer.outbox = peer.outbox, []
        if not batch or peer.closed:
            return
        send_frame(self.client, peer.jid, pack([encode(m) for m in batch]))
        if any(isinstance(m, Error) for m in batch):
            self._drop(peer)
            self.manager.worker_disconnected(peer.conn)

    def _send_now(self, full: str, msg: ManagerMessage) -> None:
        send_frame(self.client, full, pack([encode(msg)]))

    def _drop(self, peer: Peer) -> None:
        peer.closed = True
        if self.peers.get(peer.jid) is peer:
            del self.peers[peer.jid]

    # ---- presence ----------------------------------------------------------

    def on_presence(self, presence: Any) -> None:
        sender = presence["from"]
        full, bare = str(sender), str(sender.bare)
        if not self.config.may_work(bare):
            return
        kind = presence["type"]
        if kind == "unavailable":
            self.shows.pop(full, None)
            peer = self.peers.get(full)
            if peer is not None:
                log.warning("XMPP worker %s went offline: re-queueing its tasks", peer.conn.info.name)
                self._drop(peer)
                self.manager.worker_left(peer.conn.worker)
            return
        if kind not in ("available", *BUSY, "chat"):
            return
        show = presence["show"] or "available"
        self.shows[full] = show
        if full in self.peers:
            self.peers[full].heard = time.monotonic()
        # Answer every time: a worker looks for us with presence whenever it starts a session,
        # and our answer (directed presence) is what makes the server tell it when we go.
        self.client.send_presence(pto=sender)
        peer = self.peers.get(full)
        if peer is None:
            return
        if show in BUSY and not peer.busy:
            self._pause(peer)
        elif show not in BUSY and peer.busy:
            self._resume(peer)

    def _pause(self, peer: Peer) -> None:
        log.info("XMPP worker %s is busy (%s): no new tasks", peer.conn.info.name, self.shows.get(peer.jid))
        peer.busy = True
        self.manager.drain(peer.conn.worker)

    def _resume(self, peer: Peer) -> None:
        peer.busy = False
        if peer.draining:
            return
        log.info("XMPP worker %s is available again", peer.conn.info.name)
        # Its free slots are counted afresh by a new hello: ask it to start over.
        peer.conn.send(Reconnect())

    def on_offline(self) -> None:
        """Our own XMPP session is gone: every worker is disconnected, not lost (they may come back)."""
        for peer in list(self.peers.values()):
            self._drop(peer)
            self.manager.worker_disconnected(peer.conn)
        self.shows.clear()

    # ---- pings -------------------------------------------------------------

    async def ping_forever(self) -> None:
        """Ping the workers that have been silent for a ping interval; busy ones speak for themselves.

        A worker is declared lost after PING_MISSES unanswered pings in a row with nothing else
        heard from it meanwhile, so that a slow moment (a loaded machine, a thousand logins at
        once) is not mistaken for a hang.
        """
        interval = self.config.ping_interval
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            silent = [p for p in self.peers.values() if now - p.heard >= interval]
            for peer, outcome in zip(silent, await asyncio.gather(*(self._ping(p) for p in silent),
                                                                  return_exceptions=True), strict=True):
                if isinstance(outcome, Exception):  # a bug with one worker must not stop the pings of all
                    log.error("ping of XMPP worker %s failed", peer.jid, exc_info=outcome)

    async def _ping(self, peer: Peer) -> None:
        sent = time.monotonic()
        try:
            await self.client.plugin["xep_0199"].ping(slixmpp.JID(peer.jid), timeout=self.config.ping_timeout)
        except IqTimeout:
            if peer.heard >= sent:  # it spoke meanwhile: only the answer was slow
                return
            peer.misses += 1
            if peer.misses < PING_MISSES:
                return
            reason = f"{peer.misses} pings in a row unanswered ({self.config.ping_timeout:g}s each)"
        except IqError as exc:
            if exc.condition not in ("service-unavailable", "recipient-unavailable", "item-not-found"):
                return  # it answered, if only with an error
            reason = f"the server says it is gone ({exc.condition})"
        except Exception as exc:  # not connected: our own reconnect handles it
            log.debug("ping of %s failed: %s", peer.jid, exc)
            return
        else:
            peer.heard = time.monotonic()
            peer.misses = 0
            self.manager.heard(peer.conn.worker)
            return
        if self.peers.get(peer.jid) is peer:
            log.warning("XMPP worker %s: %s; re-queueing its tasks", peer.conn.info.name, reason)
            self._drop(peer)
            self.manager.worker_left(peer.conn.worker)
            # Should it wake up, it learns at once that it must start over with a fresh hello.
            self._send_now(peer.jid, Reconnect())

    def worker_ids(self) -> set[WorkerId]:
        return {p.conn.worker for p in self.peers.values()}
