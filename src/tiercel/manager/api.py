"""REST API, worker channel and event stream on one port.

Errors are JSON ``{"error": "...", "field": "..."}`` with one line a person can
act on; the OpenAPI schema at ``/openapi.json`` comes from the same models that
validate requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Path, Query, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocketDisconnect

from tiercel import __version__
from tiercel.core.model import MAX_JOB_ID, JobId, UserName
from tiercel.core.problems import Problem, Refusal
from tiercel.core.reservations import Reservation
from tiercel.core.sites import site_of_worker
from tiercel.jobs import JobRequest, Line, build_spec, parse_when, problem_from_errors
from tiercel.manager.auth import ROLES, Identity, bearer
from tiercel.manager.channel import worker_channel
from tiercel.manager.service import JobSummary, Manager, Unavailable

MAX_BODY = 1024 * 1024


class ApiError(Exception):
    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.field = status, message, field

    @staticmethod
    def of(problem: Problem, status: int = 400) -> ApiError:
        return ApiError(status, problem.message(), problem.field)


class BodyLimit:
    """Refuse request bodies over MAX_BODY bytes, counted as they arrive.

    The body is read here, whole, before the app sees it: a limit hit while the app reads would
    surface inside FastAPI's body parsing, which turns any error there into a 400. Reading at most
    MAX_BODY bytes first costs nothing the app would not have buffered itself.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
            await _too_large(f"{int(declared)} bytes", send)
            return
        chunks: list[bytes] = []
        seen = 0
        while True:
            msg = await receive()
            if msg["type"] != "http.request":
                return  # the client left before it finished sending: nobody to answer
            chunks.append(msg.get("body", b""))
            seen += len(chunks[-1])
            if seen > MAX_BODY:
                await _too_large(f"more than {MAX_BODY} bytes", send)
                return
            if not msg.get("more_body", False):
                break
        whole: Message | None = {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        async def replay() -> Message:
            nonlocal whole
            if whole is not None:
                msg, whole = whole, None
                return msg
            return await receive()  # after the body: a disconnect, which streaming answers listen for

        await self.app(scope, replay, send)


async def _too_large(size: str, send: Send) -> None:
    body = json.dumps({"error": f"request: body of {size} is too large; at most {MAX_BODY} bytes are allowed",
                       "field": "request"}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class ErrorBody(BaseModel):
    """Every error the API answers: one line a person can act on, and the field it is about."""

    error: str = Field(description="the field, a short prefix of the value and what is allowed")
    field: str | None = Field(description="the request field at fault, or token, job, task, request, ...")


# Why each error status is answered; every route lists those it can answer.
_WHY = {
    400: "the body is not JSON (malformed, not UTF-8, or nested too deeply)",
    401: "no token, or one the manager does not know",
    403: "the token's role may not do this",
    404: "no such job, task or reservation (or not yours)",
    409: "it conflicts with what exists (slots already reserved, a name in use)",
    413: f"the body is larger than {MAX_BODY} bytes",
    422: "a field's value is not allowed",
    502: "the site's batch system refused",
    507: "the manager's disk is full: new work is refused (reads still work)",
}


def answers(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI responses for the error statuses a route answers besides those every route may."""
    return {status: {"model": ErrorBody, "description": _WHY[status]} for status in statuses}


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
    reason: str | None = Field(None, description="why it ended before all its tasks ran")


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
    last_seen: float | None = Field(description="when the manager last heard from it (epoch seconds); null for a "
                                                "native site's virtual worker, which is not a process that speaks")
    tasks_run: int
    refused: int = Field(0, description="reports about tasks it was never handed, dropped")


class TokenRow(BaseModel):
    id: str = Field(description="the start of the token's digest; the token itself is never kept")
    user: str
    role: str
    label: str
    created: float
    last_used: float | None


USER_NAME = r"^[A-Za-z0-9_.@-]+$"
UserField = Annotated[str, Field(min_length=1, max_length=64, pattern=USER_NAME)]


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    user: UserField
    role: str = Field("user", json_schema_extra={"enum": list(ROLES)},
                      description="user, admin or worker (a worker token only runs tasks)")


class ReservationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    name: str | None = Field(None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    site: Line = Field("pool", max_length=64, description="the site whose slots are reserved")
    slots: int = Field(ge=1, le=10_000_000)
    start: Line | float = Field(description="now, +10m, 2026-11-21T10:00 or epoch seconds")
    end: Line | float = Field(description="as start; or +DURATION after the start")
    users: list[UserField] = Field(default_factory=list, description="who may use it (default: whoever creates it)")
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


_bearer = HTTPBearer(auto_error=False, description="a token from 'tiercel token create', or the manager's "
                                                   "admin.token")


def identity(request: Request, _: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Identity:
    # _bearer puts the scheme into the OpenAPI document; the header is read here, as it always was.
    manager: Manager = request.app.state.manager
    who = manager.identify(bearer(request.headers.get("authorization")))
    if who is None:
        raise ApiError(401, "token: missing or unknown; pass 'Authorization: Bearer TOKEN' "
                            "(tiercel reads TIERCEL_TOKEN or the manager's admin.token)", "token")
    return who


WORKER_REFUSED = ("token: a worker token cannot submit jobs, nor list, read, follow or cancel them, whatever its "
                  "user name; use a user or admin token")


def person(who: Annotated[Identity, Depends(identity)]) -> Identity:
    """The identity of a user or an admin. A worker token runs tasks and nothing else: its user name
    is only a label, and may well be a person's name too, so it must never stand for that person."""
    if not who.may_submit:
        raise ApiError(403, WORKER_REFUSED, "token")
    return who


Who = Annotated[Identity, Depends(identity)]
Person = Annotated[Identity, Depends(person)]
JobPath = Annotated[int, Path(ge=1, le=MAX_JOB_ID, description="a job id")]
TaskQuery = Annotated[int | None, Query(ge=0, le=2**31 - 1, description="a task index")]


def create_app(manager: Manager, lifespan: Callable[[FastAPI], Any] | None = None) -> FastAPI:
    app = FastAPI(title="Tiercel", version=__version__, lifespan=lifespan,
                  description="A meta-scheduler for many-task computing.")
    app.state.manager = manager
    app.add_middleware(BodyLimit)
    _describe_errors(app)

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.message, exc.field)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if errors and errors[0].get("type") == "json_invalid":
            loc = errors[0].get("loc", ())
            where = f" at character {loc[-1]}" if loc and isinstance(loc[-1], int) else ""
            why = errors[0].get("ctx", {}).get("error", "malformed")
            return _error(400, f"request: body is not valid JSON: {why}{where}", "request")
        if errors and errors[0].get("loc") == ("body",):  # about the body as a whole
            return _error(422, "request: body must be a JSON object (Content-Type: application/json)", "request")
        problem = problem_from_errors(errors, _body_model(request), default_field="request")
        return _error(422, problem.message(), problem.field)

    @app.exception_handler(Unavailable)
    async def _unavailable(_: Request, exc: Unavailable) -> JSONResponse:
        return _error(507, str(exc), "request")

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return _error(exc.status_code, _http_message(request, exc), "request", exc.headers)

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

    @app.post("/v1/jobs", status_code=201, response_model=JobInfo, responses=answers(403, 507))
    async def submit(req: JobRequest, who: Person) -> dict[str, Any]:
        spec = build_spec(req, max_tasks=manager.settings.max_tasks)
        if isinstance(spec, Problem):
            raise ApiError.of(spec, 422)
        admitted = manager.admit(who.user, spec)
        if isinstance(admitted, Problem):
            raise ApiError.of(admitted, 422)
        spec = admitted
        return (await manager.submit(who.user, spec)).to_json()

    @app.get("/v1/jobs", response_model=list[JobInfo], responses=answers(403))
    async def jobs(who: Person, all: bool = False, limit: Annotated[int, Query(ge=1, le=10_000)] = 200
                   ) -> list[dict[str, Any]]:
        return [s.to_json() for s in manager.list_jobs(who, all, limit)]

    @app.get("/v1/jobs/{job_id}", response_model=JobInfo, responses=answers(403, 404))
    async def job(job_id: JobPath, who: Person) -> dict[str, Any]:
        return own_job(job_id, who).to_json()

    @app.post("/v1/jobs/{job_id}/cancel", response_model=JobInfo, responses=answers(403, 404))
    async def cancel(job_id: JobPath, who: Person) -> dict[str, Any]:
        summary = own_job(job_id, who)
        if not summary.state.terminal:
            await manager.cancel(summary.id)
        after = manager.summary(summary.id)
        assert after is not None
        return after.to_json()

    @app.post("/v1/jobs/cancel", responses=answers(403))
    async def cancel_mine(who: Person) -> dict[str, list[int]]:
        ids = [int(j.id) for j in manager.engine.jobs.values() if j.owner == who.user]
        for job_id in ids:
            await manager.cancel(JobId(job_id))
        return {"cancelled": ids}

    @app.get("/v1/jobs/{job_id}/tasks", response_model=list[TaskAttempt], responses=answers(403, 404))
    async def tasks(job_id: JobPath, who: Person, index: TaskQuery = None, final: bool = False
                    ) -> list[dict[str, Any]]:
        own_job(job_id, who)
        rows = await asyncio.to_thread(manager.store.attempts, JobId(job_id), index, final)
        return [{"index": r.index, "attempt": r.attempt, "outcome": r.outcome, "final": r.final,
                 "worker": r.worker, "exit_code": r.exit_code, "started": r.started, "ended": r.ended}
                for r in rows]

    @app.get("/v1/jobs/{job_id}/logs", response_class=PlainTextResponse, responses=answers(403, 404))
    async def logs(job_id: JobPath, who: Person, task: TaskQuery = None,
                   stream: Annotated[str, Query(pattern="^(stdout|stderr)$")] = "stdout",
                   headers: bool = False) -> StreamingResponse:
        """The tasks' output, in task order: the settling attempt of each, else its latest one."""
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

        # Served as the text it almost always is; the bytes are the task's own, whatever their encoding.
        return StreamingResponse(body(), media_type="text/plain")

    @app.get("/v1/jobs/{job_id}/explain", responses=answers(403, 404))
    async def explain(job_id: JobPath, who: Person) -> dict[str, Any]:
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

    # The pool's own views (sites, queues, workers, reservations) hold no one's jobs: any token may read them.

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

    @app.post("/v1/reservations", status_code=201, responses=answers(403, 409, 502, 507))
    async def reserve(req: ReservationRequest, who: Who) -> dict[str, Any]:
        if not who.admin:
            raise ApiError(403, "token: only an admin may create reservations", "token")
        now = manager.clock()
        # Numbers go through the same reading as text, so a time out of range is refused alike.
        start = parse_when(str(req.start), now, "start")
        if isinstance(start, Problem):
            raise ApiError.of(start, 422)
        end = parse_when(str(req.end), start, "end")
        if isinstance(end, Problem):
            raise ApiError.of(end, 422)
        if start < now - 60:
            raise ApiError.of(Problem("start", req.start, "is in the past"), 422)
        name = req.name or f"r{int(now)}"
        r = Reservation(name, req.site, req.slots, max(start, now), end, frozenset(req.users or [who.user]), who.user)
        problem = await manager.reserve(r, mirror=req.mirror)
        if problem is not None:
            # A Refusal is the batch system's no, not the request's fault: a bad gateway, not a bad request.
            raise ApiError.of(problem, 502 if isinstance(problem, Refusal) else
                              409 if problem.field in ("slots", "name") else 422)
        return _reservation_json(manager.engine.reservations[r.name])

    @app.get("/v1/reservations")
    async def reservations(who: Who) -> list[dict[str, Any]]:
        return [_reservation_json(r) for r in sorted(manager.engine.reservations.values(), key=lambda r: r.start)]

    @app.delete("/v1/reservations/{name}", responses=answers(403, 404))
    async def unreserve(name: str, who: Who) -> dict[str, str]:
        if not who.admin:
            raise ApiError(403, "token: only an admin may delete reservations", "token")
        found, trouble = await manager.unreserve(name)
        if not found:
            raise ApiError.of(Problem("reservation", name, "does not exist (see 'tiercel reserve list')"), 404)
        return {"deleted": name, **({"warning": trouble} if trouble else {})}

    @app.get("/v1/workers", response_model=list[WorkerRow])
    async def workers(who: Who) -> list[dict[str, Any]]:
        out = []
        for wid, w in manager.engine.workers.items():
            conn = manager.conns.get(wid)
            site = site_of_worker(wid)
            out.append({"id": wid, "name": w.info.name, "host": w.info.host, "slots": w.info.slots,
                        "busy": len(w.tasks), "tags": sorted(w.info.tags), "connected": w.connected,
                        "draining": w.draining,
                        "link": "site" if site else conn.transport if conn else "",
                        "last_seen": None if site else manager.last_seen.get(wid, 0.0),
                        "tasks_run": conn.ran if conn else 0, "refused": w.refused})
        return out

    @app.get("/v1/tokens", response_model=list[TokenRow], responses=answers(403))
    async def token_list(who: Who) -> list[dict[str, Any]]:
        if not who.admin:
            raise ApiError(403, "token: only an admin may list tokens", "token")
        return manager.token_rows()

    @app.delete("/v1/tokens/{token_id}", responses=answers(403, 404))
    async def token_revoke(token_id: Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[0-9a-f]+$")],
                           who: Who) -> dict[str, str]:
        if not who.admin:
            raise ApiError(403, "token: only an admin may revoke tokens", "token")
        gone = await manager.revoke_token(token_id)
        if gone is None:
            raise ApiError.of(Problem("token", token_id, "is not the id of a token (see 'tiercel token list')"), 404)
        return {"id": token_id, "user": gone.user, "role": gone.role}

    @app.post("/v1/tokens", status_code=201, responses=answers(403, 507))
    async def tokens(req: TokenRequest, who: Who) -> dict[str, str]:
        if not who.admin:
            raise ApiError(403, "token: only an admin may create tokens", "token")
        if req.role not in ROLES:
            raise ApiError.of(Problem("role", req.role, f"is not allowed: choose one of {', '.join(ROLES)}"), 422)
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
            await _refuse(ws, 401, "token: missing or unknown; pass 'Authorization: Bearer TOKEN'")
            return
        if not who.may_submit:
            await _refuse(ws, 403, WORKER_REFUSED)
            return
        await ws.accept()
        q: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        manager.events.queues.add(q)
        closers = manager.on_revoke.setdefault(who.digest, set())

        def revoked() -> None:
            q.put_nowait(REVOKED)

        closers.add(revoked)
        try:
            await _pump_events(ws, q, who)
        finally:
            manager.events.queues.discard(q)
            closers.discard(revoked)

    return app


def _error(status: int, message: str, field: str | None, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "field": field}, status_code=status, headers=headers)


def _shown(value: str) -> str:
    """A value as an error shows it: its start only, so an error never echoes a large body back."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _http_message(request: Request, exc: HTTPException) -> str:
    """Starlette's and FastAPI's own errors, said the way this API says its errors."""
    cause = exc.__cause__
    if isinstance(cause, UnicodeDecodeError):
        return f"request: body is not UTF-8 text (byte 0x{cause.object[cause.start]:02x} at position {cause.start})"
    if isinstance(cause, RecursionError):
        return "request: body nests arrays or objects too deeply to be read"
    if exc.status_code == 404:
        return f"request: {_shown(request.url.path)} is not an endpoint of this manager (see /docs)"
    if exc.status_code == 405:
        return f"request: {request.method} is not allowed on {_shown(request.url.path)}"
    if exc.status_code == 400 and cause is not None:
        return f"request: body cannot be read: {type(cause).__name__}"
    return f"request: {exc.detail}"


def _body_model(request: Request) -> type[BaseModel] | None:
    """The model of the body the request's route reads, if any: its fields are the known ones."""
    field = getattr(request.scope.get("route"), "body_field", None)
    model = getattr(getattr(field, "field_info", None), "annotation", None)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


async def _refuse(ws: WebSocket, status: int, message: str) -> None:
    """Refuse a WebSocket before it opens: an HTTP answer with the error where the server can send
    one, else a close code (4401, 4403) with the message as the reason."""
    if "websocket.http.response" in ws.scope.get("extensions", {}):
        await ws.send_denial_response(_error(status, message, "token"))
    else:
        await ws.close(code=4000 + status, reason=message[:120])


def _describe_errors(app: FastAPI) -> None:
    """Add to the OpenAPI document the errors every route may answer, whoever wrote the route: 401
    (every route takes a token), 422 (a parameter or body not allowed) and, for a body, 400 and 413;
    all with ErrorBody, which the exception handlers above answer in place of FastAPI's own shapes."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                responses = operation.setdefault("responses", {})
                statuses = [401]
                if operation.get("parameters") or operation.get("requestBody"):
                    statuses.append(422)
                if operation.get("requestBody"):
                    statuses += [400, 413]
                for status in statuses:
                    responses.setdefault(str(status), {"description": _WHY[status]})
                for status, response in responses.items():
                    if status.isdigit() and int(status) in _WHY:  # JSON even where the route answers text
                        response["content"] = error
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.setdefault("ErrorBody", ErrorBody.model_json_schema())
        for unused in ("HTTPValidationError", "ValidationError"):
            components.pop(unused, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


REVOKED = {"event": "token_revoked"}  # the last event a revoked token's stream gets before it is closed


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
