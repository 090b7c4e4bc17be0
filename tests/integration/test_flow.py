"""The manager + workers + submit/status/wait/cancel/logs flow, through the real CLI."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from tests.integration.conftest import Cluster, wait_until

pytestmark = pytest.mark.integration


def test_submit_wait_status_logs(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_worker("--slots", "2")
    script = tmp_path / "runtask.sh"
    script.write_text('#!/bin/sh\necho "index $1 env $TIERCEL_TASK_INDEX job $TIERCEL_JOB_ID"\necho oops >&2\n')
    script.chmod(0o755)
    out = cluster.cli("submit", "--queue", "50", "--json", "--", str(script))
    assert out.returncode == 0, out.stderr
    job = json.loads(out.stdout)
    assert job["total"] == 50
    waited = cluster.cli("wait", str(job["id"]))
    assert waited.returncode == 0, waited.stderr + waited.stdout
    assert "50 done" in waited.stdout
    status = cluster.cli("status", "--json")
    [row] = json.loads(status.stdout)
    assert (row["state"], row["done"], row["failed"]) == ("done", 50, 0)
    table = cluster.cli("status")
    assert table.returncode == 0 and "ID" in table.stdout and "done" in table.stdout
    one = cluster.cli("logs", str(job["id"]), "--task", "7")
    assert one.stdout == f"index 7 env 7 job {job['id']}\n"
    err = cluster.cli("logs", str(job["id"]), "--task", "7", "--stderr")
    assert err.stdout == "oops\n"
    every = cluster.cli("logs", str(job["id"]))
    assert every.stdout.count("==> task") == 50 and "index 49 env 49" in every.stdout


def test_failures_retries_walltime_and_exit_status(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_worker("--slots", "2")
    marker = tmp_path / "seen"
    marker.mkdir()
    # index 0 fails on its first attempt only; index 1 always fails; index 2 sleeps past its walltime
    script = (
        f'i=$TIERCEL_TASK_INDEX; if [ $i = 0 ] && [ ! -e {marker}/0 ]; then touch {marker}/0; exit 3; fi; '
        '[ $i = 1 ] && exit 4; [ $i = 2 ] && sleep 30; echo ok'
    )
    with cluster.client() as c:
        job = c.submit(script, queue=4, retries=1, walltime="1s", append_index=False)
        job = cluster.wait_job(job)
        assert (job.state, job.data["done"], job.data["failed"]) == ("failed", 2, 2)
        results = {r.index: r for r in job.results()}
        assert results[0].outcome == "done" and results[0].attempt == 2
        assert results[1].outcome == "failed" and results[1].exit_code == 4 and results[1].attempt == 2
        assert results[2].outcome == "timeout"
        assert b"walltime" in job.output(2, "stderr")
    waited = cluster.cli("wait", str(job.id), "--quiet")
    assert waited.returncode == 1
    failed = cluster.cli("logs", str(job.id), "--failed", "--stderr")
    assert "task 1 (attempt 2, failed, exit 4)" in failed.stdout and "task 2" in failed.stdout


def test_requires_tags_and_cleanup(cluster: Cluster, tmp_path: Path) -> None:
    plain = cluster.start_worker("--slots", "2", name="plain")
    del plain
    cluster.start_worker("--slots", "1", "--tags", "gpu,bio", name="gpu")
    done_file = tmp_path / "cleaned"
    with cluster.client() as c:
        wait_until(lambda: len(c.workers()) == 2, what="two workers")
        job = c.submit('echo "$(hostname) $TIERCEL_TASK_INDEX"', queue=6, requires=["gpu"],
                       cleanup=f"echo $TIERCEL_JOB_ID >> {done_file}")
        job = cluster.wait_job(job)
        assert job.state == "done"
        workers = {r.worker for r in job.results()}
        names = {w["id"]: w["name"] for w in c.workers()}
        assert {names[w] for w in workers} == {"gpu"}
    wait_until(done_file.exists, 10, "the cleanup command")
    time.sleep(0.5)
    assert done_file.read_text().split() == [str(job.id)]  # once, on the one worker that ran tasks


def test_waiting_reason_when_no_worker_has_the_tags(cluster: Cluster) -> None:
    cluster.start_worker("--slots", "1")
    with cluster.client() as c:
        wait_until(lambda: c.workers(), what="a worker")
        job = c.submit("true", queue=2, requires=["gpu"])
        time.sleep(0.3)
        job.refresh()
        assert job.state == "queued"
        assert job.data["waiting"] == "no connected worker has the required tags gpu"
        assert job.cancel().state == "cancelled"


def test_cancel_one_job_and_all_jobs(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_worker("--slots", "2")
    with cluster.client() as c:
        a = c.submit("sleep 30", queue=20, append_index=False)
        wait_until(lambda: a.refresh().data["running"] >= 2, what="tasks to start")
        out = cluster.cli("cancel", str(a.id))
        assert out.returncode == 0 and "cancelled" in out.stdout
        a.refresh()
        assert (a.state, a.data["cancelled"]) == ("cancelled", 20)
        b = c.submit("sleep 30", queue=5, append_index=False)
        d = c.submit("sleep 30", queue=5, append_index=False)
        out = cluster.cli("cancel")
        assert "cancelled 2 job(s)" in out.stdout
        assert b.refresh().state == d.refresh().state == "cancelled"
        # the killed tasks free their slots: new work runs at once
        e = c.submit("true", queue=3)
        assert cluster.wait_job(e, 20).state == "done"


def test_workers_table(cluster: Cluster) -> None:
    cluster.start_worker("--slots", "3", "--tags", "bio", name="alpha")
    with cluster.client() as c:
        wait_until(lambda: c.workers(), what="a worker")
    out = cluster.cli("workers")
    assert out.returncode == 0
    header, row = out.stdout.splitlines()[:2]
    assert header.split()[:5] == ["NAME", "HOST", "BUSY", "SLOTS", "TAGS"]
    assert row.split()[0] == "alpha" and "bio" in row and "connected" in row and "websocket" in row
    rows = json.loads(cluster.cli("workers", "--json").stdout)
    assert rows[0]["slots"] == 3 and rows[0]["tags"] == ["bio"]
    assert rows[0]["link"] == "websocket" and rows[0]["draining"] is False


def test_a_worker_made_busy_by_sigusr1_takes_nothing_new_until_sigusr2(cluster: Cluster) -> None:
    worker = cluster.start_worker("--slots", "2", name="moody")

    def row() -> dict[str, object]:
        with cluster.client() as c:
            return next((w for w in c.workers() if w["name"] == "moody" and w["connected"]), {})

    wait_until(row, what="the worker")
    worker.send_signal(signal.SIGUSR1)
    wait_until(lambda: row().get("draining"), what="the worker to be busy")
    with cluster.client() as c:
        job = c.submit("true", queue=3)
        time.sleep(1.5)  # time enough to be sent tasks, were it taking any
        assert c.job(job.id).data["queued"] == 3
        worker.send_signal(signal.SIGUSR2)
        assert cluster.wait_job(job).state == "done"
    assert row().get("draining") is False and worker.poll() is None


def test_job_files(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_worker("--slots", "2")
    kestrel = tmp_path / "sweep.job"
    kestrel.write_text("[job]\nqueue = 5\ncommand = echo k\n")
    toml = tmp_path / "job.toml"
    toml.write_text('[job]\ncommand = ["echo", "t"]\narray = "10-12"\nname = "from-toml"\n')
    with cluster.client() as c:
        for f, total, text in ((kestrel, 5, "k 3\n"), (toml, 3, "t 11\n")):
            out = cluster.cli("submit", "--file", str(f), "--json")
            assert out.returncode == 0, out.stderr
            job = c.job(json.loads(out.stdout)["id"])
            assert cluster.wait_job(job).data["total"] == total
            index = 3 if total == 5 else 11
            assert job.output(index).decode() == text


def test_event_stream_reports_progress_and_the_end(cluster: Cluster) -> None:
    from websockets.sync.client import connect

    cluster.start_worker("--slots", "2")
    ws_url = cluster.url.replace("http://", "ws://") + "/v1/events"
    with connect(ws_url, additional_headers={"Authorization": f"Bearer {cluster.admin_token}"}) as ws:
        with cluster.client() as c:
            job = c.submit("true", queue=20)
        seen = []
        while True:
            event = json.loads(ws.recv(timeout=20))
            seen.append(event["event"])
            if event["event"] == "job_finished":
                assert event["job"]["id"] == job.id and event["job"]["done"] == 20
                break
    assert seen[0] == "job_submitted"


def test_openapi_schema_is_served(cluster: Cluster) -> None:
    with cluster.client() as c:
        schema = c.json("GET", "/openapi.json")
    assert "/v1/jobs" in schema["paths"] and "JobRequest" in schema["components"]["schemas"]


def test_job_state_only_moves_forward(cluster: Cluster) -> None:
    """Polled as fast as possible, a job never goes back from running to queued, nor loses counts."""
    cluster.start_worker("--slots", "64", "--executor", "noop")
    order = {"queued": 0, "running": 1, "done": 2}
    with cluster.client() as c:
        wait_until(lambda: c.workers(), what="a worker")
        for _ in range(3):
            job = c.submit(["/bin/true"], queue=20000, append_index=False)
            last_state, last_done = 0, 0
            while True:
                d = c.json("GET", f"/v1/jobs/{job.id}")
                assert order[d["state"]] >= last_state, d
                assert d["done"] >= last_done, d
                last_state, last_done = order[d["state"]], d["done"]
                if d["state"] == "done":
                    assert d["done"] == 20000
                    break
