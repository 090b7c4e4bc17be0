"""Roles and user names: a worker token runs tasks and never acts as a user, whatever its name.

The worker token made on first start belongs to user ``worker``, and an admin may make a worker
token named after a person; neither may see, follow or cancel anyone's jobs."""

from __future__ import annotations

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.integration.conftest import Cluster

pytestmark = pytest.mark.integration


def _user_routes(job_id: int) -> list[tuple[str, str]]:
    return [("GET", "/v1/jobs"), ("GET", "/v1/jobs?all=true"), ("GET", f"/v1/jobs/{job_id}"),
            ("GET", f"/v1/jobs/{job_id}/tasks"), ("GET", f"/v1/jobs/{job_id}/logs"),
            ("GET", f"/v1/jobs/{job_id}/explain"), ("POST", f"/v1/jobs/{job_id}/cancel"),
            ("POST", "/v1/jobs/cancel")]


def test_a_worker_token_never_acts_as_a_user_whatever_its_name(cluster: Cluster) -> None:
    with cluster.client() as admin:
        # a person called "worker", and a worker token called "alice"
        worker_user = admin.json("POST", "/v1/tokens", json={"user": "worker", "role": "user"})["token"]
        alice = admin.json("POST", "/v1/tokens", json={"user": "alice", "role": "user"})["token"]
        alice_worker = admin.json("POST", "/v1/tokens", json={"user": "alice", "role": "worker"})["token"]
    with cluster.client(worker_user) as c:
        workers_job = c.submit("true", queue=2).id
    with cluster.client(alice) as c:
        alices_job = c.submit("true", queue=2).id

    for token, job_id in ((cluster.worker_token, workers_job), (alice_worker, alices_job)):
        with httpx.Client(base_url=cluster.url, headers={"Authorization": f"Bearer {token}"}) as http:
            for method, path in _user_routes(job_id):
                r = http.request(method, path)
                assert r.status_code == 403, (method, path, r.status_code, r.text)
                assert r.json()["field"] == "token"
                assert "a worker token cannot" in r.json()["error"], r.text
            r = http.post("/v1/jobs", json={"command": "true"})
            assert r.status_code == 403 and "a worker token cannot submit jobs" in r.json()["error"]
            assert http.get("/v1/whoami").json()["role"] == "worker"  # it is still a valid token

        ws_url = cluster.url.replace("http://", "ws://") + "/v1/events"
        with pytest.raises(InvalidStatus) as refused:
            connect(ws_url, additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=10).close()
        assert refused.value.response.status_code == 403
        assert b"a worker token cannot" in (refused.value.response.body or b"")

    # nothing was cancelled, and each person still has their own job
    with cluster.client(worker_user) as c:
        assert [(j["id"], j["state"]) for j in c.jobs()] == [(workers_job, "queued")]
    with cluster.client(alice) as c:
        assert [(j["id"], j["state"]) for j in c.jobs()] == [(alices_job, "queued")]
        assert c.job(alices_job).output(0) == b""  # a user reads their own logs


def test_a_worker_token_still_runs_tasks(cluster: Cluster) -> None:
    cluster.start_worker("--slots", "2")
    with cluster.client() as c:
        job = c.submit(["echo", "hi"], queue=3)
        assert cluster.wait_job(job).data["done"] == 3
        assert job.output(1) == b"hi 1\n"
