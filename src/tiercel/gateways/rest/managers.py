"""``GET /v1/managers``: the managers on this store, which one is active, since when, and its epoch."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter

from tiercel.gateways.rest.auth import Who
from tiercel.store.base import ManagerEntry

Roster = Callable[[], list[ManagerEntry]]


def router(roster: Roster) -> APIRouter:
    api = APIRouter()

    @api.get("/v1/managers")
    async def managers(who: Who) -> list[dict[str, Any]]:
        """Every manager on this store: active or standby, its URL, since when it is active, the lease's epoch."""
        return [m.as_json() for m in await asyncio.to_thread(roster)]

    return api
