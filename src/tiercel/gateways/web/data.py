"""What the dashboard's script reads: pages of rows as JSON, and the live socket of job events.

The same session and the same rule as the pages: a user reads their own jobs, an admin everyone's;
someone else's job answers as no job at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from fastapi import APIRouter, Request, WebSocket
from starlette.responses import Response
from starlette.websockets import WebSocketDisconnect

from tiercel.core.model import JobId
from tiercel.core.problems import Problem
from tiercel.gateways.web import views
from tiercel.gateways.web.pages import job_rows, listing
from tiercel.gateways.web.render import data, own_job
from tiercel.gateways.web.session import same_origin, viewer
from tiercel.manager.auth import Identity
from tiercel.manager.outputs import FAILED
from tiercel.manager.shell import Manager

FAILED_PAGE = 10  # failed tasks a page shows
SCAN_TASKS = 500  # tasks read at a time while looking for failed ones
SCAN_STEPS = 40  # reads at most per page of failed tasks: a page may come back short, with where to go on
STDERR_SHOWN = 16 * 1024  # bytes of a task's stderr a page shows (the start: where errors begin)
POOL_LOOK = 2.0  # seconds between looks at whether the pool changed, for pages that show it
UNSIGNED = "token: signed out; sign in again"


def router(manager: Manager) -> APIRouter:
    ui = APIRouter(include_in_schema=False)

    def who_or_401(request: Request) -> Identity | Response:
        who = viewer(manager, request)
        return who if who is not None else data({"error": UNSIGNED, "field": "token"}, 401)

    @ui.get("/ui/data/jobs")
    async def jobs(request: Request) -> Response:
        who = who_or_401(request)
        if isinstance(who, Response):
            return who
        at = listing(dict(request.query_params), who)
        if isinstance(at, Problem):
            return data({"error": at.message(), "field": at.field}, 422)
        rows, more = await job_rows(manager, who, at)
        return data({"rows": [{k: v for k, v in r.items() if k != "bar"} for r in rows], "more": more})

    @ui.get("/ui/data/jobs/{job}")
    async def job(request: Request, job: str) -> Response:
        who = who_or_401(request)
        if isinstance(who, Response):
            return who
        summary = await own_job(manager, who, job)
        if summary is None:
            return data({"error": f"job: {job[:40]!r} is not a job of yours", "field": "job"}, 404)
        explained = manager.queries.explain(summary) if not summary.state.terminal else None
        return data({"job": summary.to_json(), "explain": explained,
                     "data": views.data_panel(summary.spec, explained),
                     "forwarded": views.forwarded_rows(explained["forwarded"] if explained else [])})

    @ui.get("/ui/data/jobs/{job}/throughput")
    async def throughput(request: Request, job: str) -> Response:
        who = who_or_401(request)
        if isinstance(who, Response):
            return who
        summary = await own_job(manager, who, job)
        if summary is None:
            return data({"error": f"job: {job[:40]!r} is not a job of yours", "field": "job"}, 404)
        step, n = views.plot_steps(summary.submitted, summary.ended or manager.clock())
        spans = await manager.queries.settled_per_step(summary.id, summary.submitted, step) if n else []
        return data(views.throughput(spans, summary.submitted, step, n))

    @ui.get("/ui/data/jobs/{job}/failed")
    async def failed(request: Request, job: str) -> Response:
        who = who_or_401(request)
        if isinstance(who, Response):
            return who
        summary = await own_job(manager, who, job)
        if summary is None:
            return data({"error": f"job: {job[:40]!r} is not a job of yours", "field": "job"}, 404)
        text = request.query_params.get("after", "-1")
        after = int(text) if text.lstrip("-").isdigit() and text.isascii() and len(text) < 12 else None
        if after is None or after < -1:
            return data({"error": f"after: {text[:40]!r} must be a task index, or -1 for the first page",
                         "field": "after"}, 422)
        return data(await failed_tasks(manager, summary.id, after))

    @ui.websocket("/ui/live")
    async def live(ws: WebSocket) -> None:
        who = viewer(manager, ws)
        if who is None or not same_origin(ws):
            await ws.close(code=4401 if who is None else 4403, reason=UNSIGNED if who is None else "origin")
            return
        await ws.accept()
        q: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        manager.events.queues.add(q)
        closers = manager.tokens.on_revoke.setdefault(who.digest, set())

        def revoked() -> None:
            q.put_nowait({"event": "token_revoked"})

        closers.add(revoked)
        try:
            await ws.send_text(json.dumps({"event": "hello", "user": who.user, "admin": who.admin,
                                           "started": manager.started}))
            await _pump(manager, ws, q, who)
        finally:
            manager.events.queues.discard(q)
            closers.discard(revoked)

    return ui


async def failed_tasks(manager: Manager, job_id: JobId, after: int) -> dict[str, Any]:
    """The next failed tasks above index ``after``: each with its exit status, the start of its stderr and the
    name of the worker that ran it (when the manager knows that worker);
    ``next`` is where the following page starts (None: no more)."""
    tasks: list[dict[str, Any]] = []
    names = {str(w["id"]): str(w["name"]) for w in manager.queries.workers()}  # workers it knows
    cursor = after
    for _ in range(SCAN_STEPS):
        rows = await manager.queries.attempts_page(job_id, cursor, SCAN_TASKS, final=True, streams=("stderr",),
                                                   max_bytes=4 * 1024 * 1024)
        if not rows:
            return {"tasks": tasks, "next": None}
        for r in rows:
            cursor = r.index
            if r.outcome in FAILED:
                err = r.stderr[:STDERR_SHOWN].decode("utf-8", "replace")
                tasks.append({"index": r.index, "attempt": r.attempt, "outcome": r.outcome, "exit_code": r.exit_code,
                              "worker": r.worker, "worker_name": names.get(r.worker),
                              "stderr": err, "more_bytes": max(0, len(r.stderr) - STDERR_SHOWN)})
                if len(tasks) == FAILED_PAGE:
                    return {"tasks": tasks, "next": cursor}
    return {"tasks": tasks, "next": cursor}


def _pool_mark(manager: Manager) -> str:
    """What the pool pages show, reduced to a mark that changes when they would."""
    q = manager.queries
    return json.dumps([q.workers(), q.sites(), q.queues(), [r.name for r in q.reservations()], q.gfarm(),
                       views.peers_mark(q.peers())], default=str)


async def _pump(manager: Manager, ws: WebSocket, q: asyncio.Queue[dict[str, Any]], who: Identity) -> None:
    """Job events the viewer may see, as they come; a ``pool`` event when the pool changed, looked at
    every POOL_LOOK seconds once the page asked for it (``{"watch": "pool"}``)."""
    watching = asyncio.Event()

    async def read_client() -> None:
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                text = await ws.receive_text()
                if text[:200].startswith('{"watch"') and "pool" in text[:200]:
                    watching.set()

    reader = asyncio.create_task(read_client())
    mark = None
    loop = asyncio.get_running_loop()
    next_look = loop.time()
    try:
        while not reader.done():
            try:
                event = await asyncio.wait_for(q.get(), timeout=POOL_LOOK)
            except TimeoutError:
                event = None
            if event is not None:
                if event.get("event") == "token_revoked":
                    await ws.send_text(json.dumps(event))
                    await ws.close(code=4401, reason="token revoked")
                    return
                if event.get("job", {}).get("owner") not in (who.user, None) and not who.admin:
                    continue
                await ws.send_text(json.dumps(event))
            if watching.is_set() and loop.time() >= next_look:
                next_look = loop.time() + POOL_LOOK
                now = _pool_mark(manager)
                if mark is not None and now != mark:
                    await ws.send_text('{"event": "pool"}')
                mark = now
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        reader.cancel()
