"""``tiercel run``: the embedded default, one command on a laptop."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tiercel", "run", *args], capture_output=True, text=True,
                          timeout=180, cwd=cwd, env={"PATH": "/usr/bin:/bin", "HOME": str(cwd), "NO_COLOR": "1"})


def test_run_prints_a_summary_and_succeeds(tmp_path: Path) -> None:
    out = run("--workers", "2", "--queue", "200", "--", "sh", "-c", "echo $1 >> out.txt", "task", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "200 done, 0 failed, 0 cancelled of 200" in out.stdout and "tasks/s" in out.stdout
    assert "to start a manager and 2 worker slot(s))" in out.stdout  # the start-up, said apart from the job's time
    assert sorted(int(x) for x in (tmp_path / "out.txt").read_text().split()) == list(range(200))


def test_run_exits_non_zero_when_a_task_fails_and_keeps_state(tmp_path: Path) -> None:
    state = tmp_path / "state"
    out = run("--workers", "2", "--array", "0-9", "--state-dir", str(state), "--json", "--",
              "sh", "-c", 'test "$1" != 7', "task", cwd=tmp_path)
    assert out.returncode == 1
    data = json.loads(out.stdout)
    assert (data["done"], data["failed"]) == (9, 1)
    assert data["startup_seconds"] > 0 and data["wall_seconds"] > 0
    assert (state / "tiercel.db").exists()


def test_run_refuses_bad_input_without_starting_anything(tmp_path: Path) -> None:
    out = run("--queue", "0", "--", "true", cwd=tmp_path)
    assert out.returncode == 2 and "queue: 0 must be between" in out.stderr
    assert list(tmp_path.iterdir()) == []


def test_run_refuses_a_job_its_own_workers_could_never_run(tmp_path: Path) -> None:
    out = run("--queue", "3", "--requires", "gpu", "--", "true", cwd=tmp_path)
    assert out.returncode == 2 and "requires: 'gpu'" in out.stderr and "--tags" in out.stderr
    out = run("--queue", "3", "--workers", "2", "--cpus", "4", "--", "true", cwd=tmp_path)
    assert out.returncode == 2 and "cpus: 4 is more than the 2 worker slot(s)" in out.stderr


def test_options_after_the_command_belong_to_the_command(tmp_path: Path) -> None:
    out = run("--workers", "1", "--queue", "2", "--json", "sh", "-c", 'echo "$@" >> args.txt', "x", "--fast",
              cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert sorted((tmp_path / "args.txt").read_text().splitlines()) == ["--fast 0", "--fast 1"]


def test_run_stopped_by_a_signal_stops_its_manager_worker_and_tasks(tmp_path: Path) -> None:
    import os
    import signal
    import time

    state = tmp_path / "state"
    marker = tmp_path / "started"
    task = f"echo $$ > {marker}.part; mv {marker}.part {marker}; exec sleep 300"  # its pid, then the sleep's
    proc = subprocess.Popen([sys.executable, "-m", "tiercel", "run", "--workers", "1", "--queue", "1", "--quiet",
                             "--state-dir", str(state), "--", "sh", "-c", task],
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert time.monotonic() < deadline and proc.poll() is None, "the task did not start"
            time.sleep(0.05)
        manager_pid = json.loads((state / "manager.json").read_text())["pid"]
        task_pid = int(marker.read_text())
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()

    def alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    assert not alive(manager_pid), "the manager outlived tiercel run"
    assert _cmdline(task_pid) != ["sleep", "300"], "the task outlived tiercel run"


def _cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []  # gone (a zombie has no command line either)
