"""Who is asking: the bearer token of a request or a WebSocket, and what its role allows."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, WebSocket
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from tiercel.core.model import JobId
from tiercel.gateways.rest.errors import ApiError, error
from tiercel.manager.auth import Identity, bearer
from tiercel.manager.events import JobSummary
from tiercel.manager.shell import Manager

_bearer = HTTPBearer(auto_error=False, description="a token from 'tiercel token create', or the manager's "
                                                   "admin.token")


async def identity(request: Request, _: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Identity:
    # _bearer puts the scheme into the OpenAPI document; the header is read here, as it always was.
    manager: Manager = request.app.state.manager
    who = manager.identify(bearer(request.headers.get("authorization")))
    if who is None:
        raise ApiError(401, "token: missing or unknown; pass 'Authorization: Bearer TOKEN' "
                            "(tiercel reads TIERCEL_TOKEN or the manager's admin.token)", "token")
    return who


WORKER_REFUSED = ("token: a worker token cannot submit jobs, nor list, read, follow or cancel them, whatever its "
                  "user name; use a user or admin token")


PEER_REFUSED = ("token: a peer token exchanges summaries and runs forwarded work over /v1/peer; it cannot submit "
                "jobs, nor list, read, follow or cancel them; use a user or admin token")


async def person(who: Annotated[Identity, Depends(identity)]) -> Identity:
    """The identity of a user or an admin. A worker token runs tasks and nothing else: its user name
    is only a label, and may well be a person's name too, so it must never stand for that person."""
    if who.may_peer:
        raise ApiError(403, PEER_REFUSED, "token")
    if not who.may_submit:
        raise ApiError(403, WORKER_REFUSED, "token")
    return who


Who = Annotated[Identity, Depends(identity)]
Person = Annotated[Identity, Depends(person)]


async def refuse(ws: WebSocket, status: int, message: str) -> None:
    """Refuse a WebSocket before it opens: an HTTP answer with the error where the server can send
    one, else a close code (4401, 4403) with the message as the reason."""
    if "websocket.http.response" in ws.scope.get("extensions", {}):
        await ws.send_denial_response(error(status, message, "token"))
    else:
        await ws.close(code=4000 + status, reason=message[:120])


async def own_job(manager: Manager, job_id: int, who: Identity) -> JobSummary:
    """A job its owner (or an admin) may read and act on; anyone else's is reported as unknown,
    so ids reveal nothing."""
    summary = await manager.queries.summary(JobId(job_id))
    if summary is None or (not who.sees(summary.owner)):
        raise ApiError(404, f"job: {job_id} is not a job of yours (see 'tiercel status')", "job")
    return summary
