"""The pool's own views — sites, queues, workers: they hold no one's jobs, so any token may read them."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from tiercel.gateways.rest.auth import Who
from tiercel.gateways.rest.models import WorkerRow
from tiercel.manager.shell import Manager


def router(manager: Manager) -> APIRouter:
    api = APIRouter()

    @api.get("/v1/sites")
    async def sites(who: Who) -> list[dict[str, Any]]:
        """The pool and each configured site: mode, state, slots, work there, last poll and error."""
        return manager.queries.sites()

    @api.get("/v1/queues")
    async def queues(who: Who) -> list[dict[str, Any]]:
        """Each queue: its policy chain, limits and load."""
        return manager.queries.queues()

    @api.get("/v1/workers", response_model=list[WorkerRow])
    async def workers(who: Who) -> list[dict[str, Any]]:
        """Every place that runs tasks: workers (connected or not yet lost) and native sites."""
        return manager.queries.workers()

    return api
