"""A worker that reaches its manager over XMPP instead of WebSocket (``tiercel worker --xmpp``).

The agent and its session are the WebSocket worker's, unchanged: only the link differs.
The worker logs in to its XMPP account and looks for the manager with directed presence
to the manager's bare JID (again every few seconds while it gets no answer); the manager
answers with directed presence to this session. From then on the XMPP server tells each
side at once when the other goes away, and a session (hello, tasks, results) runs over
``headline`` messages between the two full JIDs. When the manager goes offline the
session ends and the worker looks for it again, keeping its results until they are
acknowledged, exactly as after a lost WebSocket.

Its presence also says whether it takes work: ``kill -USR1`` sets it to do-not-disturb (busy:
the tasks it holds finish, the manager sends no new ones), ``kill -USR2`` makes it available
again. Every presence it sends the manager carries that state, so a new session starts busy
if the worker is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import msgpack
import slixmpp

from tiercel.gateways.xmpp.link import Assembler, AuthRefused, Connector, Endpoint, make_client, on_frames, send_frame
from tiercel.worker.agent import Agent
from tiercel.worker.options import WorkerOptions

log = logging.getLogger("tiercel.worker.xmpp")

PROBE_EVERY = 3.0  # seconds between looks for a manager that has not answered yet


@dataclass(frozen=True)
class XmppSettings:
    jid: str  # the worker's account; a resource is added from the worker's name unless given
    password: str
    manager_jid: str  # bare JID of the manager
    endpoint: Endpoint


class XmppLink:
    """One session with the manager's full JID: frames out as stanzas, frames in from a queue."""

    def __init__(self, client: slixmpp.ClientXMPP, peer: slixmpp.JID) -> None:
        self.client = client
        self.peer = peer
        self.closed = False
        self.frames: asyncio.Queue[bytes | None] = asyncio.Queue()

    async def send(self, message: bytes, /) -> None:
        if not self.closed:  # like a closed WebSocket: what is not acknowledged is sent again later
            send_frame(self.client, self.peer, message)

    async def close(self) -> None:
        self.end()

    def end(self) -> None:
        if not self.closed:
            self.closed = True
            self.frames.put_nowait(None)

    def feed(self, frame: bytes) -> None:
        if not self.closed:
            self.frames.put_nowait(frame)

    def __aiter__(self) -> AsyncIterator[str | bytes]:
        return self._frames()

    async def _frames(self) -> AsyncIterator[str | bytes]:
        while True:
            frame = await self.frames.get()
            if frame is None:
                return
            yield frame


class XmppAgent(Agent):
    busy_by_drain = False  # busy is presence (do-not-disturb), which the manager tracks

    def __init__(self, opts: WorkerOptions, xs: XmppSettings) -> None:
        super().__init__(opts)
        self.xs = xs
        jid = slixmpp.JID(xs.jid)
        if not jid.resource:
            jid = slixmpp.JID(f"{jid.bare}/{self.name}")
        self.client = make_client(str(jid), xs.password, xs.endpoint, xep_0030={}, xep_0199={})
        self.client.auto_authorize = None  # the manager never needs to subscribe: presence is directed
        self.client.auto_subscribe = False
        self.connector = Connector(self.client, xs.endpoint, backoff_max=opts.backoff_max, on_refused=lambda: None)
        self.manager_bare = str(slixmpp.JID(xs.manager_jid).bare)
        self.found: asyncio.Queue[slixmpp.JID] = asyncio.Queue()
        self.link: XmppLink | None = None
        self.refusal: str | None = None
        self.assembler = Assembler()
        self.client.add_event_handler("session_start", self._online)
        self.client.add_event_handler("disconnected", self._offline)
        self.client.add_event_handler("presence", self._presence)
        on_frames(self.client, self._frame)

    # ---- XMPP events -------------------------------------------------------

    def _set_busy(self, busy: bool) -> None:
        """SIGUSR1 (busy) or SIGUSR2 (available): tell the manager by presence."""
        if busy == self.busy or self.stopping:
            return
        self.busy = busy
        log.info("now %s", "busy (do not disturb): no new tasks" if busy else "available for tasks")
        if self.link is not None:
            self._announce(self.link.peer)
        elif self.connector.online.is_set():  # looking for the manager: it learns before any hello
            self._announce(self.manager_bare)

    def _announce(self, to: slixmpp.JID | str) -> None:
        self.client.send_presence(pto=to, ppriority=-1, pshow="dnd" if self.busy else "")

    def _online(self, _: Any) -> None:
        # Negative priority: chat messages to the account's bare JID go to its other clients, not here.
        self.client.send_presence(ppriority=-1, pstatus=f"tiercel worker, {self.opts.slots} slots")
        log.info("logged in to XMPP as %s", self.client.boundjid)

    def _offline(self, _: Any) -> None:
        self.assembler = Assembler()
        if self.link is not None:
            self.link.end()

    def _presence(self, presence: Any) -> None:
        sender = presence["from"]
        if str(sender.bare) != self.manager_bare:
            return
        if presence["type"] == "unavailable":
            if self.link is not None and sender == self.link.peer:
                log.info("the manager %s went offline", sender)
                self.link.end()
        elif presence["type"] in ("available", "chat", "away", "xa", "dnd") and sender.resource:
            self.found.put_nowait(sender)

    def _frame(self, msg: Any) -> None:
        sender = msg["from"]
        if str(sender.bare) != self.manager_bare:
            return
        frame = self.assembler.feed(str(sender), msg)
        if frame is None:
            return
        if self.link is not None and sender == self.link.peer:
            self.link.feed(frame)
            return
        with contextlib.suppress(Exception):  # outside a session only a refusal matters
            msg_ = msgpack.unpackb(frame, raw=False)
            if isinstance(msg_, dict) and msg_.get("t") == "error":
                self.refusal = str(msg_.get("msg"))
                self.found.put_nowait(sender)

    # ---- the worker --------------------------------------------------------

    async def run(self) -> int:
        self._start()
        connecting = asyncio.create_task(self.connector.run())
        try:
            return await self._sessions(connecting)
        finally:
            with contextlib.suppress(Exception):
                await self.connector.stop("worker stopping")
            connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError, AuthRefused):
                await connecting

    async def _sessions(self, connecting: asyncio.Task[None]) -> int:
        while not self.stopping:
            peer = await self._find_manager(connecting)
            if peer is None:
                if connecting.done() and isinstance(connecting.exception(), AuthRefused):
                    log.error("the XMPP server refused the password of %s", self.client.boundjid.bare)
                    return 2
                if self.refusal is not None:
                    log.error("manager: %s", self.refusal)
                    return 3
                if self._idle_expired():
                    return 0
                continue
            self.link = XmppLink(self.client, peer)
            try:
                code = await self._session(self.link)
            finally:
                self.link.end()
                self.link = None
                self.ws = None
            if code is not None:
                return code
            if self._idle_expired():
                return 0
        await self._drain_on_stop()
        return 0

    async def _find_manager(self, connecting: asyncio.Task[None]) -> slixmpp.JID | None:
        """The manager's full JID once it answers our presence; None to look again later."""
        while not self.found.empty():
            self.found.get_nowait()  # answers to earlier looks may name a session that has gone
        online = asyncio.ensure_future(self.connector.online.wait())
        done, _ = await asyncio.wait({online, connecting}, timeout=PROBE_EVERY, return_when=asyncio.FIRST_COMPLETED)
        online.cancel()
        if connecting in done or not self.connector.online.is_set() or self.stopping:
            return None
        self._announce(self.manager_bare)
        try:
            peer = await asyncio.wait_for(self.found.get(), PROBE_EVERY)
        except TimeoutError:
            log.info("no answer from the manager %s yet; looking again", self.manager_bare)
            return None
        if self.refusal is not None:
            return None
        log.info("found the manager at %s", peer)
        return peer


def run_xmpp_worker(opts: WorkerOptions, xs: XmppSettings) -> int:
    async def main() -> int:  # built inside the loop: slixmpp binds to the loop it is created in
        return await XmppAgent(opts, xs).run()

    return asyncio.run(main())
