"""One WebSocket between two peer managers, whichever opened it.

A manager with ``url`` in its ``[peers.NAME]`` table connects out to that peer's ``/v1/peer``
with the peer token the peer made for it; the peer accepts it on its one port and knows it by
the token's user (its own ``[peers.NAME]``). Both ends then speak the same messages
(wire/peer.py): the first is each side's hello, every frame after it a batch of messages.
A frame that is not a message of the protocol is logged and dropped; the link stays.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import websockets
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.asyncio.client import connect

from tiercel.wire.codec import WireError
from tiercel.wire.peer import PeerError, PeerHello, PeerMessage, decode, pack, unpack

log = logging.getLogger("tiercel.peers")

MAX_FRAME = 256 * 1024 * 1024
RETRY_FIRST, RETRY_MAX = 0.5, 5.0  # seconds between tries to connect out, doubling


class Conn:
    """One open link: messages queued in the same loop turn leave as one frame."""

    def __init__(self, peer: str, direction: str, write: Callable[[bytes], Awaitable[None]]) -> None:
        self.peer = peer
        self.direction = direction  # "out": we connected; "in": it did
        self._write = write
        self._outbox: asyncio.Queue[PeerMessage] = asyncio.Queue()
        self.closed = False
        self.remote: PeerHello | None = None  # its hello, once read
        self.sent_frames = 0
        self.sent_messages = 0
        self._abort = asyncio.Event()

    def abort(self) -> None:
        """End the link now, whatever the other side does (it went silent: a cut link keeps its socket)."""
        self._abort.set()

    def send(self, msg: PeerMessage) -> None:
        if not self.closed:
            self._outbox.put_nowait(msg)

    async def sender(self) -> None:
        while True:
            batch = [await self._outbox.get()]
            while not self._outbox.empty() and len(batch) < 1000:
                batch.append(self._outbox.get_nowait())
            await self._write(pack(batch))
            self.sent_frames += 1
            self.sent_messages += len(batch)
            if any(isinstance(m, PeerError) for m in batch):
                return


class Handler(Protocol):
    """What the federation service does with a link: it is opened, hears messages, closes."""

    def hello(self) -> PeerHello: ...
    def opened(self, conn: Conn) -> str | None: ...  # None, or why the link is refused (after the hellos)
    def message(self, conn: Conn, msg: PeerMessage) -> None: ...
    def refuse(self, conn: Conn, why: str) -> None: ...  # something from it dropped: logged and counted
    def closed(self, conn: Conn) -> None: ...


async def _serve(conn: Conn, handler: Handler, receive: Callable[[], Awaitable[bytes | None]]) -> None:
    """Run a link: the hellos, then every frame until it ends."""
    sender = asyncio.create_task(conn.sender())
    conn.send(handler.hello())
    try:
        while not sender.done():
            recv = asyncio.ensure_future(receive())
            aborted = asyncio.ensure_future(conn._abort.wait())
            await asyncio.wait({recv, sender, aborted}, return_when=asyncio.FIRST_COMPLETED)
            aborted.cancel()
            if not recv.done():  # we sent an error, or gave up on a silent link: it ends here
                recv.cancel()
                break
            frame = recv.result()
            if frame is None:
                break
            try:
                raws = unpack(frame)
            except WireError as exc:
                handler.refuse(conn, f"{exc}; dropped")  # logged, and shown in `tiercel peers`; the link stays
                continue
            for raw in raws:
                try:
                    msg = decode(raw)
                except WireError as exc:
                    handler.refuse(conn, f"a malformed message: {exc}")  # shown in `tiercel peers`; the link stays
                    continue
                if conn.remote is None:
                    if not isinstance(msg, PeerHello):
                        log.warning("peer %s: the first message must be a hello, not %s", conn.peer,
                                    type(msg).__name__)
                        return
                    conn.remote = msg
                    why = handler.opened(conn)
                    if why is not None:
                        log.warning("peer %s: link refused: %s", conn.peer, why)
                        conn.send(PeerError(why))
                        with contextlib.suppress(asyncio.CancelledError, Exception):
                            await asyncio.wait_for(sender, 5)
                        return
                    continue
                if isinstance(msg, PeerError):
                    log.warning("peer %s ended the link: %s", conn.peer, msg.message)
                    return
                handler.message(conn, msg)
    finally:
        conn.closed = True
        if conn.remote is not None:
            handler.closed(conn)
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await sender


async def accept(ws: WebSocket, peer: str, handler: Handler, revoked: set[Callable[[], None]]) -> None:
    """A peer connected in (its token already checked): run the link until it ends, or its token is
    revoked (``revoked`` is where the token's holders register what to close)."""
    await ws.accept()

    async def receive() -> bytes | None:
        try:
            return await ws.receive_bytes()
        except (WebSocketDisconnect, RuntimeError, KeyError):
            return None

    conn = Conn(peer, "in", ws.send_bytes)

    def close() -> None:
        log.warning("peer %s: its token was revoked; the link ends", peer)
        conn.send(PeerError("this peer token was revoked"))
    revoked.add(close)
    try:
        await _serve(conn, handler, receive)
    finally:
        revoked.discard(close)
        with contextlib.suppress(Exception):
            await ws.close()


def ws_url(url: str) -> str:
    return ("ws" + url[4:] if url.startswith("http") else url) + "/v1/peer"


async def connect_out(peer: str, url: str, token: Callable[[], str], handler: Handler,
                      state: Callable[[str, str | None], None]) -> None:
    """Keep a link to the peer open for as long as the manager runs: connect, serve, retry with back-off.

    ``state`` hears what happens ("connecting", "refused" with why, "down" with why)."""
    delay = RETRY_FIRST
    while True:
        state("connecting", None)
        try:
            async with connect(ws_url(url), additional_headers={"Authorization": f"Bearer {token()}"},
                               max_size=MAX_FRAME, open_timeout=10, ping_interval=None,
                               compression=None) as ws:
                delay = RETRY_FIRST

                async def receive(ws: Any = ws) -> bytes | None:
                    try:
                        data = await ws.recv()
                    except websockets.exceptions.ConnectionClosed:
                        return None
                    return data if isinstance(data, bytes) else data.encode()

                await _serve(Conn(peer, "out", ws.send), handler, receive)
                state("down", "the link closed")
        except asyncio.CancelledError:
            raise
        except websockets.exceptions.InvalidStatus as exc:
            why = f"the peer refused the link (HTTP {exc.response.status_code}): " \
                  f"{exc.response.body.decode(errors='replace')[:200] if exc.response.body else ''}"
            state("refused", why)
            log.warning("peer %s: %s", peer, why)
        except (OSError, TimeoutError, websockets.exceptions.WebSocketException) as exc:
            state("down", f"cannot connect to {url}: {exc}")
            log.info("peer %s: cannot connect to %s: %s", peer, url, exc)
        except Exception:
            log.exception("peer %s: link failed", peer)
            state("down", "the link failed (see the manager's log)")
        await asyncio.sleep(delay)
        delay = min(RETRY_MAX, delay * 2)
