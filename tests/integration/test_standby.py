"""Several managers on one real PostgreSQL: take-over after kill -9, a paused old leader, a lost database.

Each manager is a real `tiercel manager --store postgresql://...` process with its own state
directory and port; workers are real `tiercel worker` processes given every manager's URL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.integration.conftest import wait_until
from tests.postgres import Postgres
from tests.prosody import free_port
from tiercel.client import Client

pytestmark = pytest.mark.integration

LEASE = "2"


class Managers:
    def __init__(self, root: Path, store: str) -> None:
        self.root = root
        self.store = store
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.ports: dict[str, int] = {}
        self.workers: list[subprocess.Popen[bytes]] = []
        self.token = ""
        self.worker_token_file = root / "worker.token"

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    @property
    def urls(self) -> str:
        return ",".join(self.url(n) for n in self.ports)

    def start(self, name: str, lease: str = LEASE) -> None:
        self.ports.setdefault(name, free_port())
        log = open(self.root / f"{name}.log", "ab")  # noqa: SIM115  (the child keeps it)
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "tiercel", "manager", "--store", self.store, "--name", name, "--lease", lease,
             "--listen", f"127.0.0.1:{self.ports[name]}", "--state-dir", str(self.root / name),
             "--worker-timeout", "3", "--heartbeat", "0.5", "--reconnect-grace", "5", "-v"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_until(lambda: self.health(name) is not None, 30, f"manager {name} to listen")

    def health(self, name: str) -> str | None:
        try:
            return str(httpx.get(self.url(name) + "/healthz", timeout=2).json()["status"])
        except (httpx.HTTPError, ValueError, KeyError):
            return None

    def active(self, name: str) -> bool:
        return self.health(name) == "ok"

    def take_tokens(self, name: str) -> None:
        """The first active manager wrote the tokens; every manager on the store knows them."""
        self.token = (self.root / name / "admin.token").read_text().strip()
        self.worker_token_file.write_text((self.root / name / "worker.token").read_text())
        self.worker_token_file.chmod(0o600)

    def client(self, urls: str | None = None) -> Client:
        return Client(urls or self.urls, self.token, timeout=10)

    def roster(self, name: str) -> list[dict[str, Any]]:
        return list(httpx.get(self.url(name) + "/v1/managers", timeout=5,
                              headers={"Authorization": f"Bearer {self.token}"}).json())

    def start_worker(self, name: str, slots: int) -> None:
        log = open(self.root / f"worker-{name}.log", "ab")  # noqa: SIM115
        self.workers.append(subprocess.Popen(
            [sys.executable, "-m", "tiercel", "worker", "--manager", self.urls, "--name", name,
             "--slots", str(slots), "--token-file", str(self.worker_token_file), "-v"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True))

    def stop(self) -> None:
        procs = [*self.workers, *self.procs.values()]
        for p in procs:
            if p.poll() is None:
                with_group(p.pid, signal.SIGCONT)
                with_group(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with_group(p.pid, signal.SIGKILL)
                p.wait()

    def logs(self) -> str:
        return "\n".join(f"--- {f.name}\n{f.read_text(errors='replace')[-4000:]}"
                         for f in sorted(self.root.glob("*.log")))


def with_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


@pytest.fixture
def pair(tmp_path: Path, pg_url: str, request: pytest.FixtureRequest) -> Iterator[Managers]:
    m = Managers(tmp_path, pg_url)
    try:
        m.start("m1")
        wait_until(lambda: m.active("m1"), 30, "m1 to take the lease")
        m.take_tokens("m1")
        m.start("m2")
        assert m.health("m2") == "standby"
        yield m
    finally:
        m.stop()
        rep = getattr(request.node, "rep_call", None)
        if rep is not None and rep.failed:
            print(m.logs())


def settled_twice(url: str, job: int) -> list[tuple[int, int]]:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT idx, COUNT(*) FROM attempts WHERE job = %s AND final GROUP BY idx "
                            "HAVING COUNT(*) > 1", (job,)).fetchall()


def test_a_standby_takes_over_after_kill_9_mid_job_and_every_task_settles_once(pair: Managers, pg_url: str) -> None:
    pair.start_worker("w1", 2)
    pair.start_worker("w2", 2)
    with pair.client() as c:
        job = c.submit(["sh", "-c", "sleep 0.05"], queue=300)
        wait_until(lambda: c.job(job.id).data["done"] >= 60, 60, "a fifth of the tasks to finish")
        pair.procs["m1"].send_signal(signal.SIGKILL)
        pair.procs["m1"].wait(10)
        wait_until(lambda: pair.active("m2"), 30, "m2 to take over")
        roster = {m["name"]: m for m in pair.roster("m2")}
        assert roster["m2"]["role"] == "active" and roster["m2"]["epoch"] == 2
        data = job.wait(timeout=120, poll=0.1).data
    assert (data["state"], data["done"], data["failed"]) == ("done", 300, 0), data
    assert settled_twice(pg_url, job.id) == []
    with psycopg.connect(pg_url) as conn:
        finals = conn.execute("SELECT COUNT(*) FROM attempts WHERE job = %s AND final", (job.id,)).fetchone()
    assert finals == (300,)
    worker_logs = "".join((pair.root / f"worker-{w}.log").read_text() for w in ("w1", "w2"))
    assert pair.url("m2") in worker_logs  # the workers followed the new active manager


def test_a_paused_old_leader_resumed_after_a_take_over_writes_nothing_and_steps_down(
        pair: Managers, pg_url: str) -> None:
    m1 = pair.procs["m1"]
    os.killpg(m1.pid, signal.SIGSTOP)
    try:
        wait_until(lambda: pair.active("m2"), 30, "m2 to take over from the paused m1")
        with pair.client(pair.url("m2")) as c:
            kept = c.submit(["true"], queue=3)
    finally:
        os.killpg(m1.pid, signal.SIGCONT)
    # At once, before it could notice anything: a submission straight to the old leader.
    try:
        answer = httpx.post(pair.url("m1") + "/v1/jobs", json={"command": ["true"], "queue": 5}, timeout=15,
                            headers={"Authorization": f"Bearer {pair.token}"})
        status: int | str = answer.status_code
    except httpx.HTTPError as exc:  # it may already be running itself again as a standby
        status = type(exc).__name__
    assert status != 201, "the old leader accepted a job after the take-over"
    wait_until(lambda: pair.health("m1") == "standby", 30, "m1 to step down to a standby")
    with psycopg.connect(pg_url) as conn:
        jobs = conn.execute("SELECT id, total FROM jobs ORDER BY id").fetchall()
    assert jobs == [(kept.id, 3)], jobs
    log = (pair.root / "m1.log").read_text()
    assert "stepping down to a standby" in log
    roster = {m["name"]: m["role"] for m in pair.roster("m1")}
    assert roster == {"m1": "standby", "m2": "active"}


def test_a_standby_answers_with_the_active_managers_url_and_clients_follow_it(pair: Managers) -> None:
    answer = httpx.get(pair.url("m2") + "/v1/jobs", headers={"Authorization": f"Bearer {pair.token}"})
    assert answer.status_code == 503
    assert answer.headers["X-Tiercel-Active"] == pair.url("m1")
    assert "is a standby; the active manager is at" in answer.json()["error"]
    with pair.client(f"{pair.url('m2')},{pair.url('m1')}") as c:
        job = c.submit(["true"], queue=2)
        assert c.url == pair.url("m1") and job.id == 1
    env = {**os.environ, "TIERCEL_URL": f"{pair.url('m2')},{pair.url('m1')}", "TIERCEL_TOKEN": pair.token,
           "NO_COLOR": "1", "COLUMNS": "200"}
    out = subprocess.run([sys.executable, "-m", "tiercel", "managers", "--json"], env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    rows = {m["name"]: m for m in json.loads(out.stdout)}
    assert rows["m1"]["role"] == "active" and rows["m1"]["epoch"] == 1 and rows["m2"]["role"] == "standby"


def test_a_lost_database_makes_the_manager_refuse_writes_step_down_and_recover_when_it_returns(
        tmp_path: Path, postgres: Postgres, pg_url: str, request: pytest.FixtureRequest) -> None:
    m = Managers(tmp_path, pg_url)
    database = pg_url.rsplit("/", 1)[1]
    admin = postgres.connect()
    try:
        m.start("m1")
        wait_until(lambda: m.active("m1"), 30, "m1 to take the lease")
        m.take_tokens("m1")
        with m.client() as c:
            before = c.submit(["true"], queue=2)
        admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (database,))
        answer = httpx.post(m.url("m1") + "/v1/jobs", json={"command": ["true"], "queue": 1}, timeout=30,
                            headers={"Authorization": f"Bearer {m.token}"})
        assert answer.status_code in (503, 507), answer.text
        assert "error" in answer.json()
        wait_until(lambda: m.health("m1") == "standby", 30, "m1 to step down while the database is away")
        admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
        wait_until(lambda: m.active("m1"), 30, "m1 to take the lease again once the database is back")
        m.start_worker("w1", 2)
        with m.client() as c:
            after = c.submit(["true"], queue=4)
            assert after.wait(timeout=60, poll=0.1).data["state"] == "done"
            assert before.wait(timeout=60, poll=0.1).data["state"] == "done"
            assert after.id == before.id + 1  # the refused submission used up no job id
    finally:
        admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
        admin.close()
        m.stop()
        rep = getattr(request.node, "rep_call", None)
        if rep is not None and rep.failed:
            print(m.logs())


def test_a_clean_stop_gives_the_lease_up_so_the_standby_takes_over_at_once(
        tmp_path: Path, pg_url: str, request: pytest.FixtureRequest) -> None:
    m = Managers(tmp_path, pg_url)
    try:
        m.start("m1", lease="120")
        wait_until(lambda: m.active("m1"), 30, "m1 to take the lease")
        m.take_tokens("m1")
        m.start("m2", lease="120")
        assert m.health("m2") == "standby"
        m.procs["m1"].send_signal(signal.SIGTERM)
        assert m.procs["m1"].wait(30) == 0  # shut down in order, not killed by its own signal
        # far sooner than the 120 s lease: m1 gave it up as it stopped
        wait_until(lambda: m.active("m2"), 30, "m2 to take the lease m1 gave up")
        assert "m1" not in {r["name"] for r in m.roster("m2")}
    finally:
        m.stop()
        rep = getattr(request.node, "rep_call", None)
        if rep is not None and rep.failed:
            print(m.logs())
