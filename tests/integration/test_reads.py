"""GET /v1/jobs/ID answered ahead of the framework (gateways/rest/reads.py): the same answer as the
route's, and every case it does not answer itself (no token, another's job, a worker's or a peer's
token, a job only the store has, a query) still gets the route's answer and error."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import Cluster, wait_until
from tiercel.core.model import JobSpec, UserName
from tiercel.core.ranges import IndexRanges
from tiercel.gateways.rest.reads import JobReads
from tiercel.manager.settings import Settings
from tiercel.manager.shell import Manager
from tiercel.store import SqliteStore


def _asgi_get(app: JobReads, path: str, token: str | None, query: bytes = b"") -> tuple[int | None, bytes]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(msg: dict[str, Any]) -> None:
        sent.append(msg)

    headers = [(b"authorization", f"Bearer {token}".encode())] if token else []
    scope = {"type": "http", "method": "GET", "path": path, "query_string": query, "headers": headers}
    asyncio.get_event_loop().run_until_complete(app(scope, receive, send))  # type: ignore[arg-type]
    status = next((m["status"] for m in sent if m["type"] == "http.response.start"), None)
    return status, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


def test_only_a_person_reading_their_own_live_job_is_answered_ahead_of_the_route(tmp_path: Path) -> None:
    passed: list[str] = []

    async def route(scope: Any, receive: Any, send: Any) -> None:
        passed.append(scope["path"] + ("?" + scope["query_string"].decode() if scope["query_string"] else ""))
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b"route"})

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        manager = Manager(SqliteStore(tmp_path / "t.db"), Settings(state_dir=tmp_path))
        loop.run_until_complete(manager.start())
        alice = loop.run_until_complete(manager.create_token(UserName("alice"), "user"))
        bob = loop.run_until_complete(manager.create_token(UserName("bob"), "user"))
        admin = loop.run_until_complete(manager.create_token(UserName("root"), "admin"))
        worker = loop.run_until_complete(manager.create_token(UserName("alice"), "worker"))
        peer = loop.run_until_complete(manager.create_token(UserName("alice"), "peer"))
        job = loop.run_until_complete(manager.submit(UserName("alice"), JobSpec(("true",), IndexRanges.of_size(3))))
        app = JobReads(route, manager)

        status, body = _asgi_get(app, f"/v1/jobs/{job.id}", alice)
        assert status == 200 and passed == []
        assert json.loads(body) == manager.queries.live(job.id).to_json()  # type: ignore[union-attr]
        assert _asgi_get(app, f"/v1/jobs/{job.id}", admin)[0] == 200 and passed == []

        for path, token, query in ((f"/v1/jobs/{job.id}", bob, b""), (f"/v1/jobs/{job.id}", worker, b""),
                                   (f"/v1/jobs/{job.id}", peer, b""), (f"/v1/jobs/{job.id}", None, b""),
                                   (f"/v1/jobs/{job.id}", "not-a-token", b""), (f"/v1/jobs/{job.id}", alice, b"wait=5"),
                                   ("/v1/jobs/999", alice, b""), ("/v1/jobs/0", alice, b""),
                                   ("/v1/jobs/1x", alice, b""), ("/v1/jobs/\u0661", alice, b""),
                                   (f"/v1/jobs/{job.id}/tasks", alice, b"")):
            passed.clear()
            assert _asgi_get(app, path, token, query) == (299, b"route"), (path, token, query)
            assert passed, (path, token)
        manager.close()
    finally:
        loop.close()
        asyncio.set_event_loop(None)


@pytest.mark.integration
def test_the_answer_ahead_of_the_route_is_the_routes_answer(cluster: Cluster) -> None:
    with cluster.client() as admin:
        alice = admin.json("POST", "/v1/tokens", json={"user": "alice", "role": "user"})["token"]
        bob = admin.json("POST", "/v1/tokens", json={"user": "bob", "role": "user"})["token"]
        peer = admin.json("POST", "/v1/tokens", json={"user": "alice", "role": "peer"})["token"]
    with cluster.client(alice) as c:
        queued = c.submit("true", queue=3, name="three", hold=True).id
    cluster.start_worker("--slots", "2")
    with cluster.client(alice) as c:
        done = c.submit(["sh", "-c", "exit $0"], queue=2).id

    def get(path: str, token: str | None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.get(cluster.url + path, headers=headers, timeout=30)

    wait_until(lambda: get(f"/v1/jobs/{done}", alice).json()["state"] in ("done", "failed"), what="job ended")
    for job in (queued, done):
        fast, routed = get(f"/v1/jobs/{job}", alice), get(f"/v1/jobs/{job}?wait=0", alice)
        assert fast.status_code == routed.status_code == 200
        assert fast.headers["content-type"] == routed.headers["content-type"] == "application/json"
        assert fast.json() == routed.json()
    # the cases left to the route keep its answers
    assert get(f"/v1/jobs/{queued}", bob).status_code == 404
    assert "not a job of yours" in get(f"/v1/jobs/{queued}", bob).json()["error"]
    assert get(f"/v1/jobs/{queued}", None).status_code == 401
    assert get(f"/v1/jobs/{queued}", peer).status_code == 403
    assert get(f"/v1/jobs/{queued}", cluster.worker_token).status_code == 403
    assert get("/v1/jobs/0", alice).status_code == 422
