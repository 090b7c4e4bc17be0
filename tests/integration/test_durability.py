"""Crashes lose nothing: kill -9 of the manager, kill -9 of a worker."""

from __future__ import annotations

import collections
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from tests.integration.conftest import Cluster, wait_until

pytestmark = pytest.mark.integration


def final_rows(state: Path, job_id: int) -> list[tuple[int, str]]:
    with sqlite3.connect(state / "tiercel.db") as db:
        return db.execute("SELECT idx, outcome FROM attempts WHERE job = ? AND final = 1", (job_id,)).fetchall()


def test_manager_sigkill_mid_job_loses_and_duplicates_nothing(cluster: Cluster, tmp_path: Path) -> None:
    ran = tmp_path / "ran"
    ran.mkdir()
    cluster.start_worker("--slots", "2", name="a")
    cluster.start_worker("--slots", "2", name="b")
    n = 300
    # Each task leaves a file per attempt, so we can see what ran, and sleeps a little
    # so the kill lands while tasks are running and results are in flight.
    command = f'touch {ran}/$TIERCEL_TASK_INDEX.$TIERCEL_ATTEMPT.$$; sleep 0.02; echo out-$TIERCEL_TASK_INDEX'
    with cluster.client() as c:
        job = c.submit(command, queue=n, append_index=False)
        wait_until(lambda: 60 < c.job(job.id).data["done"] < n - 60, 60, "the job to be part-way")
    cluster.kill_manager(signal.SIGKILL)
    done_before_kill = len(final_rows(cluster.state, job.id))
    assert 0 < done_before_kill < n
    time.sleep(1.0)  # workers keep running what they hold and keep their results
    cluster.start_manager()
    with cluster.client() as c:
        job = cluster.wait_job(c.job(job.id), 120)
        assert job.state == "done", job.data
        assert job.data["done"] == n
        rows = final_rows(cluster.state, job.id)
        assert sorted(i for i, _ in rows) == list(range(n))  # every task settled exactly once
        assert all(outcome == "done" for _, outcome in rows)
        assert c.job(job.id).output(123) == b"out-123\n"
    # every index ran; crashes may re-run a task that was in flight, but none was skipped
    seen = collections.Counter(int(p.name.split(".")[0]) for p in ran.iterdir())
    assert set(seen) == set(range(n))


def test_accepted_job_survives_a_crash_before_any_worker(cluster: Cluster) -> None:
    with cluster.client() as c:
        job = c.submit("echo hi", queue=1000)
    cluster.kill_manager(signal.SIGKILL)
    cluster.start_manager()
    with cluster.client() as c:
        assert c.job(job.id).data["queued"] == 1000
        cluster.start_worker("--slots", "2")
        done = cluster.wait_job(c.job(job.id), 60)
        assert done.data["done"] == 1000
        again = c.submit("true", queue=1)
        assert again.id == job.id + 1  # ids are not reused after a restart


def test_killed_worker_tasks_rerun_elsewhere(cluster: Cluster, tmp_path: Path) -> None:
    victim = cluster.start_worker("--slots", "2", name="victim")
    with cluster.client() as c:
        wait_until(lambda: c.workers(), what="the first worker")
        job = c.submit("sleep 60", queue=2, append_index=False, walltime="5m")
        wait_until(lambda: c.job(job.id).data["running"] == 2, what="both tasks to start on the victim")
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        # tasks of the killed worker are re-queued after the worker time-out (2 s here) ...
        wait_until(lambda: c.job(job.id).data["queued"] == 2, 20, "the tasks to be re-queued")
        # ... and run elsewhere with a higher attempt number
        cluster.start_worker("--slots", "2", name="rescuer")
        job = c.job(job.id)
        wait_until(lambda: c.job(job.id).data["running"] == 2, 20, "the tasks to restart")
        attempts = c.json("GET", f"/v1/jobs/{job.id}/tasks")
        assert sorted((a["index"], a["attempt"], a["outcome"]) for a in attempts) == [(0, 1, "lost"), (1, 1, "lost")]
        job.cancel()


def test_worker_rides_out_a_manager_restart(cluster: Cluster, tmp_path: Path) -> None:
    """A graceful restart (SIGTERM) too: workers reconnect and carry on."""
    cluster.start_worker("--slots", "2")
    with cluster.client() as c:
        first = cluster.wait_job(c.submit("true", queue=10))
        assert first.state == "done"
    cluster.kill_manager(signal.SIGTERM)
    cluster.start_manager()
    with cluster.client() as c:
        wait_until(lambda: c.workers(), 20, "the worker to reconnect")
        second = cluster.wait_job(c.submit("true", queue=10))
        assert second.state == "done"


def test_sigterm_worker_hands_in_its_tasks_and_says_goodbye(cluster: Cluster) -> None:
    worker = cluster.start_worker("--slots", "2", name="leaving")
    with cluster.client() as c:
        wait_until(lambda: c.workers(), what="the worker")
        job = c.submit("sleep 60", queue=2, append_index=False)
        wait_until(lambda: c.job(job.id).data["running"] == 2, what="both tasks to start")
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=15) == 0
        assert c.workers() == []  # it said goodbye: gone at once, not after a time-out
        attempts = c.json("GET", f"/v1/jobs/{job.id}/tasks")
        # the killed tasks came back as cancelled by the worker, not lost: they run again
        assert sorted((a["index"], a["outcome"], a["final"]) for a in attempts) == \
            [(0, "cancelled", False), (1, "cancelled", False)]
        assert c.job(job.id).data["queued"] == 2
        c.job(job.id).cancel()
