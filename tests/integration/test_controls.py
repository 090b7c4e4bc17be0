"""Changing a job after submitting it, with a real manager and workers: a cap on running tasks,
hold and release, fail fast, retry and update — through the CLI, the REST API and the client."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import Cluster, wait_until

pytestmark = pytest.mark.integration


def submit(cluster: Cluster, *args: str) -> dict[str, object]:
    out = cluster.cli("submit", "--json", *args)
    assert out.returncode == 0, out.stderr
    return dict(json.loads(out.stdout))


def test_max_running_caps_the_job_and_update_raises_the_cap_while_it_runs(cluster: Cluster) -> None:
    cluster.start_worker("--slots", "4")
    job = submit(cluster, "--queue", "40", "--max-running", "1", "--no-index", "--", "sleep", "0.2")
    peak = 0
    with cluster.client() as c:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:  # sample: never more than its cap
            peak = max(peak, int(c.job(int(job["id"])).data["running"]))  # type: ignore[call-overload]
            time.sleep(0.05)
        assert peak == 1
        out = cluster.cli("update", str(job["id"]), "--max-running", "3", "--json")
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["max_running"] == 3
        wait_until(lambda: c.job(int(job["id"])).data["running"] == 3, 15,  # type: ignore[call-overload]
                   "three of its tasks to run at once")
        assert c.job(int(job["id"])).wait(timeout=60, poll=0.1).data["state"] == "done"  # type: ignore[call-overload]


def test_a_job_submitted_held_starts_nothing_stays_held_across_a_restart_and_runs_once_released(
        cluster: Cluster) -> None:
    cluster.start_worker("--slots", "2")
    job = submit(cluster, "--queue", "4", "--hold", "--", "true")
    jid = str(job["id"])
    time.sleep(1.0)
    status = cluster.cli("status", jid, "--json")
    data = json.loads(status.stdout)
    assert (data["held"], data["queued"], data["running"], data["done"]) == (True, 4, 0, 0)
    assert "held" in cluster.cli("status").stdout
    assert "tiercel release" in cluster.cli("explain", jid).stdout
    cluster.kill_manager(signal.SIGKILL)
    cluster.start_manager()
    time.sleep(1.0)
    assert json.loads(cluster.cli("status", jid, "--json").stdout)["held"] is True
    out = cluster.cli("release", jid)
    assert out.returncode == 0 and "released" in out.stdout, out.stderr
    waited = cluster.cli("wait", jid)
    assert waited.returncode == 0 and "4 done" in waited.stdout
    again = cluster.cli("hold", jid)
    assert again.returncode == 2 and "has ended (done): there is nothing to hold" in again.stderr


def test_max_failures_cancels_the_rest_and_status_says_why(cluster: Cluster) -> None:
    cluster.start_worker("--slots", "1")
    job = submit(cluster, "--queue", "30", "--max-failures", "3", "--", "false")
    waited = cluster.cli("wait", str(job["id"]))
    assert waited.returncode == 1
    data = json.loads(cluster.cli("status", str(job["id"]), "--json").stdout)
    # results come in batches (a worker holds a task beyond its slot): the ones already in count too
    assert data["state"] == "cancelled" and 3 <= data["failed"] <= 5 and data["done"] == 0
    assert data["failed"] + data["cancelled"] == 30
    assert data["reason"].startswith(f"max_failures: {data['failed']} tasks failed (the job's limit is 3)")
    assert "max_failures" in cluster.cli("status", str(job["id"])).stdout


def test_retry_runs_the_failed_tasks_again_as_new_attempts_and_the_job_ends_done(
        cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_worker("--slots", "2")
    mark = tmp_path / "fixed"
    job = submit(cluster, "--queue", "6", "--no-index", "--", "sh", "-c",
                 f"test -e {mark} -o $((TIERCEL_TASK_INDEX % 2)) -eq 0")
    jid = int(job["id"])  # type: ignore[call-overload]
    assert cluster.cli("wait", str(jid)).returncode == 1
    mark.touch()
    out = cluster.cli("retry", str(jid), "--json")
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout)
    assert (answer["tasks"], answer["indexes"]) == (3, "1,3,5")
    waited = cluster.cli("wait", str(jid))
    assert waited.returncode == 0 and "6 done" in waited.stdout, waited.stdout + waited.stderr
    with cluster.client() as c:
        rows = c.json("GET", f"/v1/jobs/{jid}/tasks", params={"index": 1})
    assert [(r["attempt"], r["outcome"], r["final"]) for r in rows] == [(1, "failed", False), (2, "done", True)]
    nothing = cluster.cli("retry", str(jid))
    assert nothing.returncode == 2 and f"job: {jid} has no failed tasks to run again" in nothing.stderr


def test_retry_of_cancelled_tasks_and_the_refusals_of_controls(cluster: Cluster) -> None:
    job = submit(cluster, "--queue", "5", "--", "true")
    jid = str(job["id"])
    assert cluster.cli("cancel", jid).returncode == 0
    running = submit(cluster, "--queue", "2", "--walltime", "1h", "--", "sleep", "30")
    headers = {"Authorization": f"Bearer {cluster.admin_token}"}
    refused = [
        (cluster.cli("retry", jid, "--tasks", "9"), "tasks: 9 is not a task of job"),
        (cluster.cli("retry", jid, "--failed"), "has no failed tasks to run again"),
        (cluster.cli("submit", "--queue", "3", "--max-running", "0", "--", "true"), "max_running: 0"),
        (cluster.cli("submit", "--queue", "3", "--max-failures", "-1", "--", "true"), "max_failures: -1"),
        (cluster.cli("update", "999"), "give at least one of"),
        (cluster.cli("update", "999", "--priority", "5"), "job: 999 is not a job of yours"),
    ]
    for out, message in refused:
        assert out.returncode == 2 and message in out.stderr, (message, out.stderr)
    cluster.start_worker("--slots", "2")
    with cluster.client() as c:
        wait_until(lambda: c.job(int(running["id"])).data["running"] == 2, 15,  # type: ignore[call-overload]
                   "the sleepers to start")
    late = cluster.cli("update", str(running["id"]), "--walltime", "5m")
    assert late.returncode == 2 and "walltime: '5m' cannot change once tasks of the job have started" in late.stderr
    busy = cluster.cli("retry", str(running["id"]), "--tasks", "1")
    assert busy.returncode == 2 and "is still waiting or running" in busy.stderr
    answer = httpx.post(f"{cluster.url}/v1/jobs/{jid}/retry", json={"cancelled": True}, headers=headers)
    assert answer.status_code == 200 and answer.json()["tasks"] == 5
    assert cluster.cli("wait", jid).returncode == 0
    assert cluster.cli("cancel", str(running["id"])).returncode == 0


def test_the_state_of_many_jobs_in_one_request_leaves_out_others_jobs(cluster: Cluster) -> None:
    ids = [int(submit(cluster, "--queue", "1", "--hold", "--", "true")["id"]) for _ in range(3)]  # type: ignore[call-overload]
    bob = cluster.cli("token", "create", "--user", "bob", "--role", "user").stdout.strip().split()[-1]
    with cluster.client() as c:
        rows = c.jobs_by_id([ids[2], ids[0], 999])
        assert [r["id"] for r in rows] == [ids[2], ids[0]] and all(r["held"] for r in rows)
    with cluster.client(bob) as c:
        assert c.jobs_by_id(ids) == []
    bad = httpx.get(f"{cluster.url}/v1/jobs", params={"ids": "1,x"},
                    headers={"Authorization": f"Bearer {cluster.admin_token}"})
    assert bad.status_code == 422


def test_retry_of_an_ended_sweep_gives_each_task_its_own_entry_again(cluster: Cluster, tmp_path: Path) -> None:
    lines = tmp_path / "inputs.txt"
    lines.write_text("alpha\nbeta\ngamma\n")
    mark = tmp_path / "fixed"
    job = submit(cluster, "--each-line", str(lines), "--no-index", "--", "sh", "-c",
                 f'echo "$TIERCEL_ENTRY"; test -e {mark} -o "$TIERCEL_ENTRY" != beta')
    jid = str(job["id"])
    cluster.start_worker("--slots", "2")
    assert cluster.cli("wait", jid).returncode == 1
    mark.touch()
    assert cluster.cli("retry", jid).returncode == 0
    assert cluster.cli("wait", jid).returncode == 0
    with cluster.client() as c:
        assert c.job(int(jid)).output(1) == b"beta\n"


def test_history_shows_the_cpu_time_of_a_jobs_tasks(cluster: Cluster) -> None:
    cluster.start_worker("--slots", "2")
    busy = int(submit(cluster, "--queue", "2", "--no-index", "--", "sh", "-c",  # type: ignore[call-overload]
                      "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done")["id"])
    idle = int(submit(cluster, "--queue", "2", "--no-index", "--", "sleep", "0.2")["id"])  # type: ignore[call-overload]
    assert cluster.cli("wait", str(busy)).returncode == 0 and cluster.cli("wait", str(idle)).returncode == 0
    rows = {r["id"]: r for r in json.loads(cluster.cli("history", "--json").stdout)}
    assert rows[busy]["cpu"] > 0.1 and rows[idle]["cpu"] < rows[busy]["cpu"]
    table = cluster.cli("history").stdout
    assert "CPU" in table and f"{rows[busy]['cpu']:.1f}s" in table
