"""Peers: `tiercel peers` (their links, what they offer, what was refused) and the peer link's WebSocket."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, WebSocket

from tiercel.gateways.rest.auth import Person, refuse
from tiercel.manager.auth import bearer
from tiercel.manager.shell import Manager


def router(manager: Manager, federation: Any | None) -> APIRouter:
    api = APIRouter(tags=["peers"])

    @api.get("/v1/peers")
    async def peers(who: Person) -> list[dict[str, Any]]:
        """Every configured peer manager: its link, round-trip time, last exchange, what it offers; for an
        admin also its URL, the work forwarded each way, and what was refused (by either side) with why."""
        return manager.queries.peers(who.admin)

    @api.websocket("/v1/peer")
    async def peer(ws: WebSocket) -> None:
        who = manager.identify(bearer(ws.headers.get("authorization")))
        if federation is None:
            await refuse(ws, 403 if who is not None else 401, "this manager has no [peers.NAME] tables: it "
                                                              "exchanges work with no other manager")
            return
        await federation.accept(ws, who)

    return api
