"""The event stream: a WebSocket that sends job_submitted, job_progress and job_finished events.

A user sees their own jobs' events, an admin everyone's; a revoked token's stream gets a last
``token_revoked`` event and is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect

from tiercel.gateways.rest.auth import PEER_REFUSED, WORKER_REFUSED, refuse
from tiercel.manager.auth import Identity, bearer
from tiercel.manager.shell import Manager

REVOKED = {"event": "token_revoked"}  # the last event a revoked token's stream gets before it is closed


def router(manager: Manager) -> APIRouter:
    api = APIRouter()

    @api.websocket("/v1/events")
    async def events(ws: WebSocket) -> None:
        token = bearer(ws.headers.get("authorization")) or ws.query_params.get("token")
        who = manager.identify(token)
        if who is None:
            await refuse(ws, 401, "token: missing or unknown; pass 'Authorization: Bearer TOKEN'")
            return
        if not who.may_submit:
            await refuse(ws, 403, PEER_REFUSED if who.may_peer else WORKER_REFUSED)
            return
        await ws.accept()
        q: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        manager.events.queues.add(q)
        closers = manager.tokens.on_revoke.setdefault(who.digest, set())

        def revoked() -> None:
            q.put_nowait(REVOKED)

        closers.add(revoked)
        try:
            await _pump(ws, q, who)
        finally:
            manager.events.queues.discard(q)
            closers.discard(revoked)

    return api


async def _pump(ws: WebSocket, q: asyncio.Queue[dict[str, Any]], who: Identity) -> None:
    async def drain_client() -> None:
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                await ws.receive_text()

    reader = asyncio.create_task(drain_client())
    try:
        while not reader.done():
            # the next event, or the client gone: a stream closed while no event flows must end here too
            # (else its handler waits for ever, and holds up the server's shutdown)
            get = asyncio.ensure_future(q.get())
            await asyncio.wait({get, reader}, return_when=asyncio.FIRST_COMPLETED)
            if not get.done():
                get.cancel()
                break
            event = get.result()
            if event is REVOKED:
                await ws.send_text(json.dumps(event))
                await ws.close(code=4401, reason="token revoked")
                return
            if event.get("job", {}).get("owner") not in (who.user, None) and not who.admin:
                continue
            await ws.send_text(json.dumps(event))
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        reader.cancel()
