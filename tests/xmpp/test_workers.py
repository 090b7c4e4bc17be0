"""XMPP workers against a real Prosody: tasks run, a killed or hung worker's tasks run again elsewhere."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import wait_until
from tests.prosody import Prosody, start_or_skip
from tests.xmpp.conftest import ACCOUNTS, ChatUser, XmppCluster, write_config

pytestmark = pytest.mark.integration

# The first attempt of each task hangs (its pid noted so the test can clean up); later attempts finish.
FIRST_HANGS = ('if [ "$TIERCEL_ATTEMPT" = 1 ]; then echo $$ >> {pids}; exec sleep 600; fi; '
               'echo "attempt $TIERCEL_ATTEMPT"')


@pytest.fixture
def leftovers(tmp_path: Path) -> Iterator[Path]:
    """A file where hanging tasks write their pids; they are killed at the end."""
    pids = tmp_path / "pids"
    try:
        yield pids
    finally:
        if pids.exists():
            for line in pids.read_text().split():
                try:
                    os.kill(int(line), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass


def job_row(cluster: XmppCluster, job: int) -> dict[str, int]:
    with cluster.client() as c:
        return dict(c.json("GET", f"/v1/jobs/{job}"))


def test_an_xmpp_worker_runs_tasks(xmpp_cluster: XmppCluster) -> None:
    xmpp_cluster.start_xmpp_worker("w1", "--slots", "2", name="xw1")
    with xmpp_cluster.client() as c:
        wait_until(lambda: [w for w in c.workers() if w["name"] == "xw1"], what="the XMPP worker to say hello")
        job = xmpp_cluster.wait_job(c.submit('echo "index $TIERCEL_TASK_INDEX"', queue=40, append_index=False))
        assert (job.state, job.data["done"]) == ("done", 40)
        assert job.output(17) == b"index 17\n"
        # A result larger than one stanza travels in pieces and arrives whole.
        big = xmpp_cluster.wait_job(c.submit("head -c 300000 /dev/zero | tr '\\0' x", queue=1, append_index=False))
        assert big.state == "done" and big.output(0) == b"x" * 300000
        [row] = [w for w in c.workers() if w["name"] == "xw1"]
        assert row["connected"] and row["tasks_run"] >= 41
    listed = xmpp_cluster.cli("workers")
    assert "xw1" in listed.stdout


def worker_row(cluster: XmppCluster, name: str) -> dict[str, object] | None:
    with cluster.client() as c:
        return next((w for w in c.workers() if w["name"] == name), None)


def test_an_xmpp_worker_busy_by_presence_gets_no_new_tasks(xmpp_cluster: XmppCluster) -> None:
    moody = xmpp_cluster.start_xmpp_worker("w1", "--slots", "2", name="moody")
    wait_until(lambda: (w := worker_row(xmpp_cluster, "moody")) and w["link"] == "xmpp", what="the XMPP worker")
    os.kill(moody.pid, signal.SIGUSR1)  # do not disturb
    wait_until(lambda: (w := worker_row(xmpp_cluster, "moody")) and w["draining"], what="the worker to be busy")
    listed = xmpp_cluster.cli("workers")
    assert "draining" in listed.stdout and "xmpp" in listed.stdout, listed.stdout
    with xmpp_cluster.client() as c:
        job = c.submit("true", queue=3)
        time.sleep(2)  # time enough to be sent tasks, were it available
        row = job_row(xmpp_cluster, job.id)
        assert (row["queued"], row["running"], row["done"]) == (3, 0, 0), row
        os.kill(moody.pid, signal.SIGUSR2)  # available again: it starts over and takes the tasks
        assert xmpp_cluster.wait_job(job).state == "done"
    row = worker_row(xmpp_cluster, "moody")
    assert row is not None and not row["draining"] and row["connected"]
    log = (xmpp_cluster.logs / "manager.log").read_text()
    assert "XMPP worker moody is busy (dnd): no new tasks" in log and "XMPP worker moody is available again" in log
    assert moody.poll() is None  # the same process throughout


@pytest.mark.parametrize("xmpp_cluster", [{"xmpp": {"ping_interval": 600}, "args": ("--worker-timeout", "3600")}],
                         indirect=True)
def test_kill_9_of_an_xmpp_worker_reruns_its_tasks_at_once(xmpp_cluster: XmppCluster, leftovers: Path) -> None:
    # With a one-hour silence time-out and no pings to speak of, only presence can say the worker is gone.
    doomed = xmpp_cluster.start_xmpp_worker("w2", "--slots", "2", name="doomed")
    with xmpp_cluster.client() as c:
        wait_until(lambda: c.workers(), what="the XMPP worker to say hello")
        job = c.submit(FIRST_HANGS.format(pids=leftovers), queue=2, append_index=False)
        wait_until(lambda: job_row(xmpp_cluster, job.id)["running"] == 2, what="both tasks running")
        os.kill(doomed.pid, signal.SIGKILL)
        doomed.wait()
        row = wait_until(lambda: (r := job_row(xmpp_cluster, job.id))["running"] == 0 and r, what="re-queueing")
        assert row["queued"] == 2 and row["state"] in ("queued", "running")
        xmpp_cluster.start_xmpp_worker("w3", "--slots", "2", name="heir")
        job = xmpp_cluster.wait_job(job)
        assert (job.state, job.data["done"]) == ("done", 2)
        assert job.output(0) == b"attempt 2\n" and job.output(1) == b"attempt 2\n"
        attempts = c.json("GET", f"/v1/jobs/{job.id}/tasks")
        assert sorted((a["attempt"], a["outcome"]) for a in attempts) == [(1, "lost"), (1, "lost"), (2, "done"),
                                                                           (2, "done")]
    assert "went offline: re-queueing its tasks" in (xmpp_cluster.logs / "manager.log").read_text()


@pytest.mark.parametrize("xmpp_cluster", [{"xmpp": {"ping_interval": 1, "ping_timeout": 2},
                                           "args": ("--worker-timeout", "3600")}], indirect=True)
def test_a_hung_xmpp_worker_is_caught_by_pings(xmpp_cluster: XmppCluster, leftovers: Path) -> None:
    hung = xmpp_cluster.start_xmpp_worker("w1", "--slots", "1", name="hung")
    try:
        with xmpp_cluster.client() as c:
            wait_until(lambda: c.workers(), what="the XMPP worker to say hello")
            job = c.submit(FIRST_HANGS.format(pids=leftovers), queue=1, append_index=False)
            wait_until(lambda: job_row(xmpp_cluster, job.id)["running"] == 1, what="the task running")
            os.kill(hung.pid, signal.SIGSTOP)  # still connected, still "available": only a ping can tell
            wait_until(lambda: job_row(xmpp_cluster, job.id)["queued"] == 1, what="re-queueing after pings")
            xmpp_cluster.start_xmpp_worker("w3", "--slots", "1", name="heir")
            assert xmpp_cluster.wait_job(job).output(0) == b"attempt 2\n"
        assert "pings in a row unanswered" in (xmpp_cluster.logs / "manager.log").read_text()
    finally:
        os.kill(hung.pid, signal.SIGKILL)
        hung.wait()


def test_the_manager_survives_prosody_going_away(tmp_path: Path) -> None:
    own = start_or_skip(Prosody(ACCOUNTS))  # its own server: this test stops and restarts it
    cluster = XmppCluster(tmp_path)
    cluster.prosody = own
    users: list[ChatUser] = []
    try:
        cluster.start_manager("--config", str(write_config(own, tmp_path)))
        cluster.wait_online()
        alice = ChatUser(own, "alice")
        users.append(alice)
        survivor = cluster.start_xmpp_worker("w1", "--slots", "2", name="survivor")
        wait_until(lambda: worker_row(cluster, "survivor"), what="the XMPP worker to say hello")
        # Work only a WebSocket worker can take, so that it ends while the XMPP server is away.
        reply = alice.ask("{'type':'job', 'command':'true', 'queue':3, 'requires':'late'}", "job_started")
        job = int(reply.rsplit(" ", 1)[1].rstrip("}"))
        own.stop()
        assert cluster.manager is not None and cluster.manager.poll() is None
        with cluster.client() as c:
            assert c.json("GET", "/healthz")["status"] == "ok"
            assert c.job(job).state == "queued"
            ws = cluster.start_worker("--slots", "2", "--tags", "late", name="ws")
            assert cluster.wait_job(c.job(job)).state == "done"  # its job_finished notice waits for the server
        ws.send_signal(signal.SIGTERM)
        ws.wait(timeout=30)
        own.start()
        wait_until(lambda: _count(cluster, "XMPP gateway online") >= 2, 120, "the manager to log in again")
        alice.expect(lambda e: e["event"] == "ready", 120, "the chat client to log in again")
        assert alice.reply("job_finished") == f"{{'type':'job_finished', 'job_id': {job}}}"
        assert "'state': 'done'" in alice.ask(f"{{'type':'status', 'job_id': {job}}}", "'state'")
        # The XMPP worker outlived the outage: the same process logs in again and takes new work.
        with cluster.client() as c:
            later = cluster.wait_job(c.submit("true", queue=4), timeout=120)
        assert later.state == "done" and survivor.poll() is None
        row = worker_row(cluster, "survivor")
        assert row is not None and row["link"] == "xmpp" and row["connected"]
    finally:
        for u in users:
            u.close()
        cluster.stop()
        own.cleanup()


def _count(cluster: XmppCluster, text: str) -> int:
    return (cluster.logs / "manager.log").read_text(errors="replace").count(text)


