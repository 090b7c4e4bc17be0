"""What a standby manager answers on its port until it takes over.

It serves ``/healthz`` and ``GET /v1/managers`` itself; every other request, and a worker's
WebSocket, gets 503 with the active manager's URL in ``X-Tiercel-Active`` (and in the body),
which the client, the CLI and workers follow. Nothing else: a standby holds no state that a
take-over would have to reconcile.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from tiercel import __version__
from tiercel.manager.auth import bearer, digest
from tiercel.store.base import ManagerEntry

log = logging.getLogger("tiercel.manager")

ACTIVE_HEADER = "X-Tiercel-Active"


def create_standby_app(name: str, roster: Callable[[], list[ManagerEntry]],
                       knows_token: Callable[[str], bool]) -> Starlette:
    def active() -> str | None:
        try:
            return next((m.url for m in roster() if m.role == "active"), None)
        except Exception as exc:  # the database out of reach: no active manager known from here
            log.info("standby: cannot read the managers (%s)", exc)
            return None

    async def refused() -> Response:
        url = await asyncio.to_thread(active)
        where = f"the active manager is at {url}" if url else \
            "no active manager right now (one takes over within seconds of the lease running out)"
        body = {"error": f"this manager ({name}) is a standby; {where}", "field": None, "active": url}
        return JSONResponse(body, status_code=503, headers={ACTIVE_HEADER: url} if url else {})

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "standby", "version": __version__})

    async def managers(request: Request) -> Response:
        token = bearer(request.headers.get("authorization"))
        if token is None or not await asyncio.to_thread(knows_token, digest(token)):
            return JSONResponse({"error": "token: missing or unknown; pass 'Authorization: Bearer TOKEN'",
                                 "field": "token"}, status_code=401)
        return JSONResponse([m.as_json() for m in await asyncio.to_thread(roster)])

    async def elsewhere(_: Request) -> Response:
        return await refused()

    async def worker(ws: WebSocket) -> None:
        await ws.send_denial_response(await refused())

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    return Starlette(routes=[
        Route("/healthz", healthz),
        Route("/v1/managers", managers),
        WebSocketRoute("/v1/worker", worker),
        Route("/{path:path}", elsewhere, methods=methods),
    ])
