"""The most frequent read, ``GET /v1/jobs/ID``, answered before the framework when it simply can be.

Clients that watch a job poll it, hundreds at a time, while the manager dispatches on the same
event loop. Through FastAPI a poll costs about half a millisecond of the loop (routing, dependency
resolution, validation of the answer against its model), and under full dispatch 200 pollers took
a fifth of the dispatch rate. This ASGI layer answers the plain case itself: a user's or an admin's
token, the job held in memory, no query string; the answer is the same JSON the route gives
(``JobSummary.to_json``, the fields of ``JobInfo``; a test compares the two). Anything else — no or
an unknown token, a worker's or a peer's token, someone else's job, a job only the store still
has, ``?wait=`` — goes on to the route, which answers it and says what is wrong, as before.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Receive, Scope, Send

from tiercel.core.model import MAX_JOB_ID, JobId
from tiercel.manager.auth import bearer
from tiercel.manager.shell import Manager

PREFIX = "/v1/jobs/"
_HEADERS = [(b"content-type", b"application/json")]


class JobReads:
    def __init__(self, app: ASGIApp, manager: Manager) -> None:
        self.app = app
        self.manager = manager

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = self._answer(scope) if scope["type"] == "http" else None
        if body is None:
            await self.app(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [*_HEADERS, (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    def _answer(self, scope: Scope) -> bytes | None:
        """The job's JSON when this layer may answer the request alone; None to leave it to the route."""
        path: str = scope["path"]
        if scope["method"] != "GET" or scope["query_string"] or not path.startswith(PREFIX):
            return None
        digits = path[len(PREFIX):]
        if not (digits.isascii() and digits.isdigit()) or len(digits) > 12 or not 1 <= int(digits) <= MAX_JOB_ID:
            return None
        token = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                token = bearer(value.decode("latin-1"))
                break
        who = self.manager.identify(token)
        if who is None or who.may_peer or not who.may_submit:
            return None
        job = JobId(int(digits))
        summary = self.manager.queries.live(job)
        if summary is None or (not who.sees(summary.owner)):
            return None
        return json.dumps(summary.to_json(), separators=(",", ":")).encode()
