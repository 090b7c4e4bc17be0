"""The worker channel: msgpack frames over one WebSocket per worker.

Worker → manager: ``hello`` (who it is, what it still holds, unacknowledged
results), ``res`` (a batch of results plus freed slots), ``cr`` (more free
slots), ``hb`` (heartbeat), ``drain`` (leaving: send nothing more), ``bye``. Manager → worker: ``welcome``, ``tasks``,
``ack``, ``kill``, ``cleanup``, ``error``. Outgoing messages queued in the same
loop turn are sent as one ``batch`` frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import msgpack
from starlette.types import Message
from starlette.websockets import WebSocket, WebSocketDisconnect

from tiercel.core.model import WorkerId, WorkerInfo
from tiercel.core.sites import site_of_worker
from tiercel.manager.auth import bearer
from tiercel.manager.sessions import Session
from tiercel.manager.shell import Manager
from tiercel.protocol import PROTOCOL_VERSION

log = logging.getLogger("tiercel.channel")

MAX_FRAME = 64 * 1024 * 1024


class HelloError(ValueError):
    pass


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


def parse_hello(msg: Any) -> tuple[WorkerId, WorkerInfo]:
    if not isinstance(msg, dict) or msg.get("t") != "hello":
        raise HelloError("the first message must be a hello")
    if msg.get("v") != PROTOCOL_VERSION:
        raise HelloError(f"protocol version {str(msg.get('v'))[:20]!r} is not supported: this manager speaks "
                         f"version {PROTOCOL_VERSION}; run the same Tiercel release on workers and manager")
    wid, name, host = msg.get("id"), msg.get("name"), msg.get("host", "")
    slots, tags = msg.get("slots"), msg.get("tags", [])
    if not isinstance(wid, str) or not 1 <= len(wid) <= 128:
        raise HelloError("id must be a string of 1 to 128 characters")
    if site_of_worker(WorkerId(wid)) is not None:
        raise HelloError(f"id: {wid!r} names a batch site's own place; a worker may not take it")
    if not isinstance(name, str) or not 1 <= len(name) <= 128:
        raise HelloError("name must be a string of 1 to 128 characters")
    if not isinstance(slots, int) or isinstance(slots, bool) or not 1 <= slots <= 100_000:
        raise HelloError(f"slots: {slots!r} must be a whole number from 1 to 100000")
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise HelloError("tags must be a list of strings")
    site, ends_at = msg.get("site", "pool"), msg.get("ends_at")
    if not isinstance(site, str) or not 1 <= len(site) <= 64:
        raise HelloError("site must be a site name of 1 to 64 characters")
    if ends_at is not None and not isinstance(ends_at, (int, float)):
        raise HelloError("ends_at must be a time in seconds since the epoch")
    reservation = msg.get("reservation")
    if reservation is not None and (not isinstance(reservation, str) or not 1 <= len(reservation) <= 64):
        raise HelloError("reservation must be a reservation name of 1 to 64 characters")
    cpus, mem = msg.get("cpus", slots), msg.get("mem", 0)
    if not isinstance(cpus, int) or isinstance(cpus, bool) or not 1 <= cpus <= 1_000_000:
        raise HelloError(f"cpus: {str(cpus)[:40]!r} must be a whole number from 1 to 1000000")
    if not isinstance(mem, int) or isinstance(mem, bool) or not 0 <= mem <= 2**40:
        raise HelloError(f"mem: {str(mem)[:40]!r} must be the worker's memory in MiB, 0 or more")
    if not isinstance(host, str) or len(host) > 255:
        raise HelloError("host must be a host name of at most 255 characters")
    info = WorkerInfo(
        name=name, host=host, slots=slots, tags=frozenset(tags), cpus=cpus, memory_mb=mem,
        site=site, ends_at=None if ends_at is None else float(ends_at), reservation=reservation,
    )
    return WorkerId(wid), info


async def worker_channel(ws: WebSocket, manager: Manager) -> None:
    who = manager.identify(bearer(ws.headers.get("authorization")))
    if who is None or not who.may_work:
        await ws.close(code=4401, reason="a worker token or admin token is required")
        return
    await ws.accept()
    try:
        hello = read_hello(await ws.receive())
        worker_id, info = parse_hello(hello)
    except HelloError as exc:
        log.warning("refused a worker's hello: %s", exc)
        await ws.send_bytes(msgpack.packb({"t": "error", "msg": f"hello: {exc}"}))
        await ws.close(code=4400)
        return
    except WebSocketDisconnect:
        return

    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    conn = Session(worker_id, info, outbox.put_nowait, manager.clock(), principal=who.digest)

    async def sender() -> None:
        while True:
            msg = await outbox.get()
            batch = [msg]
            while not outbox.empty():
                batch.append(outbox.get_nowait())
            frame = batch[0] if len(batch) == 1 else {"t": "batch", "m": batch}
            await ws.send_bytes(msgpack.packb(frame, use_bin_type=True))
            if any(m.get("t") == "error" for m in batch):
                await ws.close(code=4409)
                return

    send_task = asyncio.create_task(sender())
    conn.send({"t": "welcome", "hb": manager.settings.heartbeat})
    if not manager.worker_connected(conn, hello):  # refused: the error frame is on its way, then the close
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(send_task, 10)
        return
    log.info("worker %s (%s, %d slots) connected", info.name, worker_id, info.slots)
    try:
        while True:
            try:
                msg = msgpack.unpackb(await ws.receive_bytes(), strict_map_key=False)
            except (KeyError, TypeError, ValueError, msgpack.UnpackException):  # a text frame, or not msgpack
                log.warning("dropped a frame from worker %s that is not msgpack", info.name)
                continue
            if manager.worker_frame(conn, msg) == "bye":
                break
            if send_task.done():
                break
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        manager.worker_disconnected(conn)
        send_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await send_task
        log.info("worker %s disconnected", info.name)
