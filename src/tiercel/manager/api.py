"""REST API, worker channel and event stream on one port.

Errors are JSON ``{"error": "...", "field": "..."}`` with one line a person can
act on; the OpenAPI schema at ``/openapi.json`` comes from the same models that
validate requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Path, Query, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from pydantic import BaseModel, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocketDisconnect

from tiercel import __version__
from tiercel.core.model import MAX_JOB_ID, JobId, UserName
from tiercel.core.problems import Problem
from tiercel.core.reservations import Reservation
from tiercel.core.sites import site_of_worker
from tiercel.jobs import JobRequest, build_spec, parse_when
from tiercel.manager.auth import ROLES, Identity, bearer
from tiercel.manager.channel import worker_channel
from tiercel.manager.service import JobSummary, Manager

MAX_BODY = 1024 * 1024


class ApiError(Exception):
    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.field = status, message, field

    @staticmethod
    def of(problem: Problem, status: int = 400) -> ApiError:
        return ApiError(status, problem.message(), problem.field)


class BodyLimit:
    """Refuse request bodies over MAX_BODY bytes, counted as they arrive."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
            await _too_large(int(declared), send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            msg = await receive()
            seen += len(msg.get("body", b""))
            if seen > MAX_BODY:
                raise ApiError(413, f"request: body of more than {MAX_BODY} bytes is too large")
            return msg

        await self.app(scope, counted, send)


async def _too_large(size: int, send: Send) -> None:
    body = json.dumps({"error": f"request: body of {size} bytes is too large; at most {MAX_BODY} bytes are allowed",
                       "field": "request"}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class JobInfo(BaseModel):
    id: int
    name: str
    owner: str
    state: str = Field(description="queued, running, done, failed or cancelled")
    total: int
    queued: int
    running: int
    done: int
    failed: int
    cancelled: int
    submitted: float
    ended: float | None
    command: list[str]
    waiting: str | None = Field(None, description="why queued tasks are not running, when none are")


class WorkerRow(BaseModel):
    id: str
    name: str
    host: str
    slots: int
    busy: int
    tags: list[str]
    connected: bool
    draining: bool  # takes no new tasks: leaving, or busy by its XMPP presence
    link: str  # websocket, xmpp or site; empty while disconnected
    last_seen: float
    tasks_run: int


class TokenRequest(BaseModel):
    model_config = {"extra": "forbid"}
    user: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")
    role: str = Field("user", description="user, admin or worker")


class ReservationRequest(BaseModel):
    model_config = {"extra": "forbid"}
    name: str | None = Field(None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    site: str = Field("pool", description="the site whose slots are reserved")
    slots: int = Field(ge=1, le=10_000_000)
    start: str | float = Field(description="now, +10m, 2026-11-21T10:00 or epoch seconds")
    end: str | float = Field(description="as start; or +DURATION after the start")
    users: list[str] = Field(default_factory=list, description="who may use it (default: whoever creates it)")
    mirror: bool = Field(False, description="also create it in the site's batch system (Slurm: scontrol create "
                                            "reservation), so the batch system keeps the cores free too")


class TaskAttempt(BaseModel):
    index: int
    attempt: int
    outcome: str
    final: bool
    worker: str
    exit_code: int | None
    started: float
    ended: float


def identity(request: Request) -> Identity:
    manager: Manager = request.app.state.manager
    who = manager.identify(bearer(request.headers.get("authorization")))
    if who is None:
        raise ApiError(401, "token: missing or unknown; pass 'Authorization: Bearer TOKEN' "
                            "(tiercel reads TIERCEL_TOKEN or the manager's admin.token)", "token")
    return who


Who = Annotated[Identity, Depends(identity)]
JobPath = Annotated[int, Path(ge=1, le=MAX_JOB_ID, description="a job id")]
TaskQuery = Annotated[int | None, Query(ge=0, le=2**31 - 1, description="a task index")]


def create_app(manager: Manager, lifespan: Callable[[FastAPI], Any] | None = None) -> FastAPI:
    app = FastAPI(title="Tiercel", version=__version__, lifespan=lifespan,
                  description="A meta-scheduler for many-task computing.")
    app.state.manager = manager
    app.add_middleware(BodyLimit)

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"error": exc.message, "field": exc.field}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        err = exc.errors()[0]
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path")]
        field = ".".join(loc) or "request"
        if err.get("type") == "extra_forbidden":
            msg = f"{field}: is not a known field (known fields: {', '.join(JobRequest.model_fields)})"
        elif err.get("type") == "missing":
            msg = f"{field}: is required"
        elif err.get("type") in ("json_invalid", "model_attributes_type", "dict_type"):
            msg = "request: body must be a JSON object"
        else:
            msg = f"{field}: {err.get('input')!r} is not allowed: {err.get('msg', '')}"
        return JSONResponse({"error": msg, "field": field}, status_code=422)

    def own_job(job_id: int, who: Identity) -> JobSummary:
        summary = manager.summary(JobId(job_id))
        if summary is None or (summary.owner != who.user and not who.admin):
            # Someone else's job is reported as unknown, so ids reveal nothing.
            raise ApiError(404, f"job: {job_id} is not a job of yours (see 'tiercel status')", "job")
        return summary

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    @app.get("/v1/whoami")
    async def whoami(who: Who) -> dict[str, str]:
        return {"user": who.user, "role": who.role}

    @app.post("/v1/jobs", status_code=201, response_model=JobInfo)
    async def submit(req: JobRequest, who: Who) -> dict[str, Any]:
        if not who.may_submit:
            raise ApiError(403, "token: a worker token cannot submit jobs", "token")
        spec = build_spec(req, max_tasks=manager.settings.max_tasks)
        if isinstance(spec, Problem):
            raise ApiError.of(spec, 422)
        admitted = manager.admit(who.user, spec)
        if isinstance(admitted, Problem):
            raise ApiError.of(admitted, 422)
        spec = admitted
        return (await manager.submit(who.user, spec)).to_json()

    @app.get("/v1/jobs", response_model=list[JobInfo])
    async def jobs(who: Who, all: bool = False, limit: Annotated[int, Query(ge=1, le=10_000)] = 200
                   ) -> list[dict[str, Any]]:
        return [s.to_json() for s in manager.list_jobs(who, all, limit)]

    @app.get("/v1/jobs/{job_id}", response_model=JobInfo)
    async def job(job_id: JobPath, who: Who) -> dict[str, Any]:
        return own_job(job_id, who).to_json()

    @app.post("/v1/jobs/{job_id}/cancel", response_model=JobInfo)
    async def cancel(job_id: JobPath, who: Who) -> dict[str, Any]:
        summary = own_job(job_id, who)
        if not summary.state.terminal:
            await manager.cancel(summary.id)
        after = manager.summary(summary.id)
        assert after is not None
        return after.to_json()

    @app.post("/v1/jobs/cancel")
    async def cancel_mine(who: Who) -> dict[str, list[int]]:
        ids = [int(j.id) for j in manager.engine.jobs.values() if j.owner == who.user]
        for job_id in ids:
            await manager.cancel(JobId(job_id))
        return {"cancelled": ids}

    @app.get("/v1/jobs/{job_id}/tasks", response_model=list[TaskAttempt])
    async def tasks(job_id: JobPath, who: Who, index: TaskQuery = None, final: bool = False
                    ) -> list[dict[str, Any]]:
        own_job(job_id, who)
        rows = await asyncio.to_thread(manager.store.attempts, JobId(job_id), index, final)
        return [{"index": r.index, "attempt": r.attempt, "outcome": r.outcome, "final": r.final,
                 "worker": r.worker, "exit_code": r.exit_code, "started": r.started, "ended": r.ended}
                for r in rows]

    @app.get("/v1/jobs/{job_id}/logs", response_class=PlainTextResponse)
    async def logs(job_id: JobPath, who: Who, task: TaskQuery = None,
                   stream: Annotated[str, Query(pattern="^(stdout|stderr)$")] = "stdout",
                   headers: bool = False) -> StreamingResponse:
        summary = own_job(job_id, who)
        if task is not None and task not in summary.spec.indexes:
            raise ApiError(404, f"task: {task} is not an index of job {job_id} "
                                f"(indexes: {summary.spec.indexes.text()})", "task")
        rows = await asyncio.to_thread(manager.store.attempts, JobId(job_id), task, False)
        latest: dict[int, Any] = {}
        for r in rows:  # the settling attempt, else the latest one
            if r.final or not (r.index in latest and latest[r.index].final):
                latest[r.index] = r

        async def body() -> AsyncIterator[bytes]:
            for index in sorted(latest):
                r = latest[index]
                if headers:
                    yield f"==> task {index} (attempt {r.attempt}, {r.outcome}, exit {r.exit_code}) <==\n".encode()
                yield r.stdout if stream == "stdout" else r.stderr

        return StreamingResponse(body(), media_type="application/octet-stream")

    @app.get("/v1/jobs/{job_id}/explain")
    async def explain(job_id: JobPath, who: Who) -> dict[str, Any]:
        """Why a job's waiting tasks are not running: its queue's verdict and each worker's."""
        summary = own_job(job_id, who)
        found = manager.engine.explain(summary.id, manager.clock())
        if manager.engine.held(manager.clock()):
            verdict: dict[str, Any] | None = {
                "code": "wait", "policy": "restart",
                "reason": "held while workers reconnect after a restart"}
        elif found is None or found.status is None:
            verdict = None
        else:
            verdict = {"code": found.status.code.value, "policy": found.status.policy,
                       "reason": found.status.reason}
        return {
            "job": summary.to_json(), "queue": found.queue if found else summary.spec.queue,
            "verdict": verdict,
            "site": found.site if found else None, "site_reason": found.site_reason if found else "",
            "workers": [{"worker": name, "code": st.code.value, "policy": st.policy, "reason": st.reason}
                        for name, st in (found.workers if found else [])],
        }

    @app.get("/v1/sites")
    async def sites(who: Who) -> list[dict[str, Any]]:
        """The pool and each configured site: mode, state, slots, work there, last poll and error."""
        return manager.site_rows()

    @app.get("/v1/queues")
    async def queues(who: Who) -> list[dict[str, Any]]:
        load: dict[str, list[int]] = {name: [0, 0, 0] for name in manager.engine.queues}
        for job in manager.engine.jobs.values():
            q = load[manager.engine.queue_of(job)]
            q[0] += 1
            q[1] += job.pending
            q[2] += len(job.running)
        configured = manager.settings.queues
        out = []
        for name in manager.engine.queues:
            conf = configured.get(name)
            policies = list(conf.policies) if conf else ["priority", "fcfs"]
            out.append({"name": name, "default": name == manager.engine.default_queue,
                        "policies": ["requirements", *[p for p in policies if p != "requirements"]],
                        "limits": conf.limits if conf else {}, "jobs": load[name][0], "queued": load[name][1],
                        "running": load[name][2], "description": conf.description if conf else "",
                        "error": manager.engine.queue_errors.get(name)})
        return out

    @app.post("/v1/reservations", status_code=201)
    async def reserve(req: ReservationRequest, who: Who) -> dict[str, Any]:
        if not who.admin:
            raise ApiError(403, "token: only an admin may create reservations", "token")
        now = manager.clock()
        start = req.start if isinstance(req.start, float) else parse_when(str(req.start), now, "start")
        if isinstance(start, Problem):
            raise ApiError.of(start, 422)
        end = req.end if isinstance(req.end, float) else parse_when(str(req.end), start, "end")
        if isinstance(end, Problem):
            raise ApiError.of(end, 422)
        if start < now - 60:
            raise ApiError(422, f"start: {req.start!r} is in the past", "start")
        name = req.name or f"r{int(now)}"
        r = Reservation(name, req.site, req.slots, max(start, now), end, frozenset(req.users or [who.user]), who.user)
        problem = await manager.reserve(r, mirror=req.mirror)
        if problem is not None:
            raise ApiError.of(problem, 409 if problem.field in ("slots", "name") else
                              502 if problem.field == "mirror" and problem.allowed.startswith("failed") else 422)
        return _reservation_json(manager.engine.reservations[r.name])

    @app.get("/v1/reservations")
    async def reservations(who: Who) -> list[dict[str, Any]]:
        return [_reservation_json(r) for r in sorted(manager.engine.reservations.values(), key=lambda r: r.start)]

    @app.delete("/v1/reservations/{name}")
    async def unreserve(name: str, who: Who) -> dict[str, str]:
        if not who.admin:
            raise ApiError(403, "token: only an admin may delete reservations", "token")
        found, trouble = await manager.unreserve(name)
        if not found:
            raise ApiError(404, f"reservation: {name!r} does not exist (see 'tiercel reserve list')", "reservation")
        return {"deleted": name, **({"warning": trouble} if trouble else {})}

    @app.get("/v1/workers", response_model=list[WorkerRow])
    async def workers(who: Who) -> list[dict[str, Any]]:
        out = []
        for wid, w in manager.engine.workers.items():
            conn = manager.conns.get(wid)
            out.append({"id": wid, "name": w.info.name, "host": w.info.host, "slots": w.info.slots,
                        "busy": len(w.tasks), "tags": sorted(w.info.tags), "connected": w.connected,
                        "draining": w.draining,
                        "link": "site" if site_of_worker(wid) else conn.transport if conn else "",
                        "last_seen": manager.last_seen.get(wid, 0.0),
                        "tasks_run": conn.ran if conn else 0})
        return out

    @app.post("/v1/tokens", status_code=201)
    async def tokens(req: TokenRequest, who: Who) -> dict[str, str]:
        if not who.admin:
            raise ApiError(403, "token: only an admin may create tokens", "token")
        if req.role not in ROLES:
            raise ApiError(422, f"role: {req.role!r} is not allowed: choose one of {', '.join(ROLES)}", "role")
        token = await manager.create_token(UserName(req.user), req.role, label=f"created by {who.user}")
        return {"user": req.user, "role": req.role, "token": token}

    @app.websocket("/v1/worker")
    async def worker(ws: WebSocket) -> None:
        await worker_channel(ws, manager)

    @app.websocket("/v1/events")
    async def events(ws: WebSocket) -> None:
        token = bearer(ws.headers.get("authorization")) or ws.query_params.get("token")
        who = manager.identify(token)
        if who is None:
            await ws.close(code=4401, reason="a token is required")
            return
        await ws.accept()
        q: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        manager.events.queues.add(q)
        try:
            await _pump_events(ws, q, who)
        finally:
            manager.events.queues.discard(q)

    return app


def _reservation_json(r: Reservation) -> dict[str, Any]:
    return {"name": r.name, "site": r.site, "slots": r.slots, "start": r.start, "end": r.end,
            "users": sorted(r.users), "owner": r.owner, "mirror": r.mirror}


async def _pump_events(ws: WebSocket, q: asyncio.Queue[dict[str, Any]], who: Identity) -> None:
    async def drain_client() -> None:
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                await ws.receive_text()

    reader = asyncio.create_task(drain_client())
    try:
        while not reader.done():
            get: Awaitable[dict[str, Any]] = q.get()
            event = await get
            if event.get("job", {}).get("owner") not in (who.user, None) and not who.admin:
                continue
            await ws.send_text(json.dumps(event))
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        reader.cancel()
