"""The manager's one port: the REST API by resource, the worker channel and the event stream.

Each resource is a router of its own module; this module only puts them together. The OpenAPI
document at ``/openapi.json`` comes from the same models that validate requests.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, WebSocket

from tiercel import __version__
from tiercel.gateways.rest import controls, errors, events, history, jobs, logs, managers, pool, reservations, tokens
from tiercel.gateways.rest import workflows as workflow_routes
from tiercel.gateways.rest.auth import Who
from tiercel.gateways.rest.reads import JobReads
from tiercel.manager.channel import worker_channel
from tiercel.manager.shell import Manager


def create_app(manager: Manager, lifespan: Callable[[FastAPI], Any] | None = None,
               roster: managers.Roster | None = None) -> FastAPI:
    app = FastAPI(title="Tiercel", version=__version__, lifespan=lifespan,
                  description="A meta-scheduler for many-task computing.")
    app.state.manager = manager
    errors.install(app)
    app.add_middleware(JobReads, manager=manager)  # outermost: the polls of a job skip the framework

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    @app.get("/v1/whoami")
    async def whoami(who: Who) -> dict[str, str]:
        return {"user": who.user, "role": who.role}

    for resource in (jobs, logs, history, controls, pool, reservations, tokens, events):
        app.include_router(resource.router(manager))
    app.include_router(workflow_routes.router(manager))
    app.include_router(managers.router(roster or manager.queries.managers))

    @app.websocket("/v1/worker")
    async def worker(ws: WebSocket) -> None:
        await worker_channel(ws, manager)

    return app
