"""``tiercel run``: a manager and local workers for one job, then a summary."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import click

from tiercel.cli.common import (
    CONTEXT_SETTINGS,
    UserError,
    console,
    exit_status,
    friendly,
    json_option,
    print_json,
    print_summary,
)
from tiercel.cli.jobopts import job_fields, job_options
from tiercel.cli.progress import wait_with_progress
from tiercel.client import Client, TiercelError
from tiercel.server import state_dir_in_use


def _spawn(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "tiercel", *args], stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _wait_for_manager(state: Path, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    info = state / "manager.json"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise UserError(f"the manager stopped at start: {log.read_text().strip()[-500:]}")
        try:
            return str(json.loads(info.read_text())["url"])
        except (OSError, ValueError, KeyError):
            time.sleep(0.05)
    raise UserError(f"the manager did not start within {timeout:g}s (log: {log})")


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


@click.command(context_settings={**CONTEXT_SETTINGS, "allow_interspersed_args": False})
@click.option("--workers", "-w", "slots", type=click.IntRange(1, 4096), default=None, metavar="K",
              help="Local worker slots (default: number of CPUs).")
@click.option("--state-dir", type=click.Path(path_type=Path, file_okay=False), metavar="DIR",
              help="Keep the store here (default: a temporary directory, removed afterwards).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@job_options
@json_option
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@friendly
def run(slots: int | None, state_dir: Path | None, quiet: bool, as_json: bool, **kw: Any) -> None:
    """Run one job on this machine: start a manager and K worker slots, wait, summarise.

    \b
    Example:
      tiercel run --workers 4 --queue 1000 -- ./runtask.sh
    Exit status is 0 when every task succeeded, 1 otherwise.
    """
    import os

    begun = time.monotonic()
    data = job_fields(**kw)
    slots = slots or os.cpu_count() or 1
    temp = state_dir is None
    state = Path(tempfile.mkdtemp(prefix="tiercel-run-")) if state_dir is None else state_dir.expanduser()
    state.mkdir(parents=True, exist_ok=True, mode=0o700)
    if state_dir_in_use(state):
        raise UserError(f"state-dir: {str(state)!r} is in use by a running manager; "
                        "give tiercel run a directory of its own")
    (state / "manager.json").unlink(missing_ok=True)  # a stale one from an earlier run
    log = state / "run.log"
    procs: list[subprocess.Popen[bytes]] = []
    try:
        mgr = _spawn(["manager", "--listen", "127.0.0.1:0", "--state-dir", str(state), "--quiet",
                      "--sync", "NORMAL"], log)
        procs.append(mgr)
        url = _wait_for_manager(state, mgr, log)
        procs.append(_spawn(["worker", "--manager", url, "--slots", str(slots), "--name", "local",
                             "--token-file", str(state / "worker.token")], log))
        token = (state / "admin.token").read_text().strip()
        with Client(url, token) as c:
            started = time.monotonic()
            job = c.submit(**data)
            job = wait_with_progress(job, show=not (quiet or as_json))
            wall = time.monotonic() - started
        startup = started - begun
        if as_json:
            print_json({**job.data, "wall_seconds": wall, "tasks_per_second": job.data["total"] / wall,
                        "startup_seconds": startup})
        else:
            print_summary(job.data, wall)  # the job's own time: from its submission to its end
            console.print(f"(before it: {startup:.2f}s to start a manager and {slots} worker slot(s))")
            if not temp:
                console.print(f"state kept in {state}")
        code = exit_status(job.data)
    except TiercelError as exc:
        raise UserError(str(exc)) from None
    finally:
        _stop(list(reversed(procs)))
        if temp:
            shutil.rmtree(state, ignore_errors=True)
    sys.exit(code)
