"""A long poll: GET /v1/jobs/ID?wait=S answers as soon as the job ends (how tiercel wait sees the end
at once), or after S seconds with the job as it is."""

from __future__ import annotations

import signal
import threading
import time

import httpx
import pytest

from tests.integration.conftest import Cluster, wait_until

pytestmark = pytest.mark.integration


def test_a_read_with_wait_is_answered_when_the_job_ends(cluster: Cluster) -> None:
    with cluster.client() as c:
        job = c.submit(["true"], queue=3, hold=True)
        answer: dict[str, object] = {}

        def read() -> None:  # waits up to 60 s; the client gives up after 30, so only the job's end answers it
            with httpx.Client(base_url=cluster.url, timeout=30,
                              headers={"Authorization": f"Bearer {cluster.admin_token}"}) as h:
                answer.update(h.get(f"/v1/jobs/{job.id}", params={"wait": 60}).json())

        reader = threading.Thread(target=read)
        reader.start()
        assert c.job(job.id).data["state"] not in ("done", "cancelled")  # held, so it cannot end by itself
        job.cancel()
        reader.join(45)
        assert answer.get("state") == "cancelled"


def test_a_read_of_an_ended_job_is_answered_at_once_and_a_bad_wait_is_refused(cluster: Cluster) -> None:
    cluster.start_worker()
    with cluster.client() as c:
        job = c.submit(["true"], queue=2).wait(timeout=60)
        assert job.data["state"] == "done"
        with httpx.Client(base_url=cluster.url, timeout=30,
                          headers={"Authorization": f"Bearer {cluster.admin_token}"}) as h:
            assert h.get(f"/v1/jobs/{job.id}", params={"wait": 60}).json()["state"] == "done"
            bad = h.get(f"/v1/jobs/{job.id}", params={"wait": 61})
            assert bad.status_code == 422 and "wait" in bad.text


def test_a_manager_told_to_stop_answers_reads_held_for_a_job_s_end_and_stops(cluster: Cluster) -> None:
    with cluster.client() as c:
        job = c.submit(["true"], queue=1, hold=True)
    answer: dict[str, object] = {}

    def read() -> None:
        with httpx.Client(base_url=cluster.url, timeout=90,
                          headers={"Authorization": f"Bearer {cluster.admin_token}"}) as h:
            answer.update(h.get(f"/v1/jobs/{job.id}", params={"wait": 60}).json())

    reader = threading.Thread(target=read)
    reader.start()
    wait_until(lambda: reader.is_alive(), 5, "the read to be under way")
    time.sleep(0.5)  # the read is held by the manager now
    # kill_manager waits at most 30 s for the exit: a manager that waited for the held read would take 60
    cluster.kill_manager(signal.SIGTERM)
    reader.join(30)
    assert answer.get("state") == "queued" and answer.get("held") is True
