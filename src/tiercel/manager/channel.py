"""The WebSocket transport of the worker protocol: one WebSocket per worker session.

The messages are tiercel.wire's; this module only carries them: it reads the hello, opens the
worker's session in the shell, decodes each frame and hands the message to the shell, and sends
what the shell sends the session (messages queued in the same loop turn go as one batch frame).
A frame that is not a message of the protocol is logged and dropped; the worker stays.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import msgpack
from starlette.types import Message
from starlette.websockets import WebSocket, WebSocketDisconnect

from tiercel.manager.auth import bearer
from tiercel.manager.sessions import Session
from tiercel.manager.shell import Manager
from tiercel.wire.codec import HelloError, WireError, decode_from_worker, decode_hello, encode, pack
from tiercel.wire.messages import Bye, Error, ManagerMessage, Welcome

log = logging.getLogger("tiercel.channel")

MAX_FRAME = 64 * 1024 * 1024


def read_hello(message: Message) -> Any:
    """The first WebSocket message, unpacked; HelloError saying what is wrong with it."""
    if message.get("type") == "websocket.disconnect":
        raise WebSocketDisconnect(int(message.get("code") or 1000))
    data = message.get("bytes")
    if data is None:
        raise HelloError("the first frame must be a binary msgpack map (t: hello), not a text frame")
    if not data:
        raise HelloError("the first frame is empty; it must be a msgpack map (t: hello)")
    try:
        return msgpack.unpackb(data, strict_map_key=False)
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise HelloError(f"the first frame is not msgpack ({exc})") from None


async def worker_channel(ws: WebSocket, manager: Manager) -> None:
    who = manager.identify(bearer(ws.headers.get("authorization")))
    if who is None or not who.may_work:
        await ws.close(code=4401, reason="a worker token or admin token is required")
        return
    await ws.accept()
    try:
        hello = decode_hello(read_hello(await ws.receive()))
    except HelloError as exc:
        log.warning("refused a worker's hello: %s", exc)
        await ws.send_bytes(pack([encode(Error(f"hello: {exc}"))]))
        await ws.close(code=4400)
        return
    except WebSocketDisconnect:
        return
    info = hello.info
    outbox: asyncio.Queue[ManagerMessage] = asyncio.Queue()
    conn = Session(hello.worker, info, outbox.put_nowait, manager.clock(), principal=who.digest)

    async def sender() -> None:
        while True:
            batch = [await outbox.get()]
            while not outbox.empty():
                batch.append(outbox.get_nowait())
            await ws.send_bytes(pack([encode(m) for m in batch]))
            if any(isinstance(m, Error) for m in batch):
                await ws.close(code=4409)
                return

    send_task = asyncio.create_task(sender())
    conn.send(Welcome(manager.settings.heartbeat))
    if not manager.worker_connected(conn, hello):  # refused: the error frame is on its way, then the close
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(send_task, 10)
        return
    log.info("worker %s (%s, %d slots) connected", info.name, hello.worker, info.slots)
    try:
        while not send_task.done():
            try:
                msg = decode_from_worker(msgpack.unpackb(await ws.receive_bytes(), strict_map_key=False))
            except (KeyError, TypeError, ValueError, msgpack.UnpackException) as exc:
                # a text frame, not msgpack, or not a message of the protocol: dropped, the worker stays
                why = exc if isinstance(exc, WireError) else "a frame that is not msgpack"
                log.warning("worker %s sent %s; dropped", info.name, why)
                continue
            manager.worker_message(conn, msg)
            if isinstance(msg, Bye):
                break
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        manager.worker_disconnected(conn)
        send_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await send_task
        log.info("worker %s disconnected", info.name)
