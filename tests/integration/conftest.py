"""Real manager and worker processes on loopback, started and stopped per test."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tiercel.client import Client, Job

pytestmark = pytest.mark.integration


def wait_until(cond: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Cluster:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.state = root / "state"
        self.port = 0
        self.url = ""
        self.manager: subprocess.Popen[bytes] | None = None
        self.workers: list[subprocess.Popen[bytes]] = []
        self.logs = root / "logs"
        self.logs.mkdir()

    def env(self, token: str | None = None) -> dict[str, str]:
        env = dict(os.environ)
        env.update({"TIERCEL_URL": self.url, "TIERCEL_STATE_DIR": str(self.state), "NO_COLOR": "1",
                    "COLUMNS": "200", "TIERCEL_TOKEN": token or self.admin_token})
        return env

    def start_manager(self, *extra: str) -> None:
        (self.state / "manager.json").unlink(missing_ok=True)
        log = open(self.logs / "manager.log", "ab")  # noqa: SIM115  (the child keeps it)
        self.manager = subprocess.Popen(
            [sys.executable, "-m", "tiercel", "manager", "--listen", f"127.0.0.1:{self.port}",
             "--state-dir", str(self.state), "--worker-timeout", "2", "--heartbeat", "0.5",
             "--reconnect-grace", "5", "-v", *extra],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        info = wait_until(lambda: _read_json(self.state / "manager.json"), 30, "the manager to listen")
        self.url = info["url"]
        self.port = int(self.url.rsplit(":", 1)[1])

    @property
    def admin_token(self) -> str:
        return (self.state / "admin.token").read_text().strip()

    @property
    def worker_token(self) -> str:
        return (self.state / "worker.token").read_text().strip()

    def kill_manager(self, sig: int = signal.SIGKILL) -> None:
        assert self.manager is not None
        self.manager.send_signal(sig)
        self.manager.wait(timeout=30)

    def start_worker(self, *args: str, name: str = "w", env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = open(self.logs / f"worker-{name}-{len(self.workers)}.log", "ab")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "tiercel", "worker", "--manager", self.url, "--name", name,
             "--token-file", str(self.state / "worker.token"), "-v", *args],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ, **(env or {})},
        )
        self.workers.append(proc)
        return proc

    def cli(self, *args: str, token: str | None = None, stdin: str | None = None,
            cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "tiercel", *args], env=self.env(token), capture_output=True,
                              text=True, timeout=120, input=stdin, cwd=cwd)

    def client(self, token: str | None = None) -> Client:
        return Client(self.url, token or self.admin_token)

    def wait_job(self, job: Job, timeout: float = 60) -> Job:
        return job.wait(timeout=timeout, poll=0.05)

    def stop(self) -> None:
        procs = [*self.workers, *([self.manager] if self.manager else [])]
        for p in procs:
            if p.poll() is None:
                _killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                _killpg(p.pid, signal.SIGKILL)
                p.wait()

    def dump_logs(self) -> str:
        return "\n".join(f"--- {f.name}\n{f.read_text(errors='replace')[-3000:]}" for f in sorted(self.logs.iterdir()))


def _killpg(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


@pytest.fixture
def cluster(bare_cluster: Cluster) -> Cluster:
    bare_cluster.start_manager()
    return bare_cluster


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    rep = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture
def bare_cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """A cluster whose manager the test starts itself (with its own options)."""
    c = Cluster(tmp_path)
    try:
        yield c
    finally:
        c.stop()
        rep = getattr(request.node, "rep_call", None)
        if rep is not None and rep.failed:
            print(c.dump_logs())
