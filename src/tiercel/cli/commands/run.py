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
from tiercel.manager.statedir import bind, state_dir_in_use


def _spawn(args: list[str], log: Path, pass_fds: tuple[int, ...] = ()) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "tiercel", *args], stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True, pass_fds=pass_fds)


def _wait_for_manager(state: Path, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    info = state / "manager.json"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise UserError(f"the manager stopped at start: {log.read_text().strip()[-500:]}")
        try:
            return str(json.loads(info.read_text())["url"])
        except (OSError, ValueError, KeyError):
            time.sleep(0.01)
    raise UserError(f"the manager did not start within {timeout:g}s (log: {log})")


def _stopped(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through run's finally, which stops what it started


def _stop(procs: list[subprocess.Popen[bytes]], manager: subprocess.Popen[bytes] | None, *, keep: bool) -> None:
    """Stop the workers (they stop their tasks), then the manager. A manager whose state dir is about
    to be removed is killed: everything it made durable is thrown away anyway, and a clean stop (its
    last checkpoint, closing every connection) is most of the time between the job's end and the exit."""
    for group in ([p for p in procs if p is not manager], [manager] if manager is not None else []):
        for p in group:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM if keep or p is not manager else signal.SIGKILL)
        for p in group:
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
    for sig in (signal.SIGTERM, signal.SIGHUP):  # stopped from outside: stop the manager and workers too
        signal.signal(sig, _stopped)
    # From the command line alone the request is left for the manager to check (as tiercel submit does):
    # its answer names the field just as a check here would, and this process need not load the models.
    data = job_fields(**kw, check=False)
    plain = kw.get("file") is None and kw.get("each_line") is None and kw.get("each_json") is None
    slots = slots or os.cpu_count() or 1
    if int(data.get("cpus") or 1) > slots:
        raise UserError(f"cpus: {data['cpus']} is more than the {slots} worker slot(s) tiercel run starts, so its "
                        f"tasks would wait for ever; give --workers {data['cpus']} or more, or fewer --cpus")
    if data.get("requires"):
        tags = ", ".join(data["requires"])
        raise UserError(f"requires: {tags!r}: tiercel run's own workers advertise no tags, so this job would wait "
                        "for ever; run it on a manager with workers started with --tags (see 'tiercel worker --help')")
    temp = state_dir is None
    state = Path(tempfile.mkdtemp(prefix="tiercel-run-")) if state_dir is None else state_dir.expanduser()
    state.mkdir(parents=True, exist_ok=True, mode=0o700)
    if state_dir_in_use(state):
        raise UserError(f"state-dir: {str(state)!r} is in use by a running manager; "
                        "give tiercel run a directory of its own")
    (state / "manager.json").unlink(missing_ok=True)  # a stale one from an earlier run
    log = state / "run.log"
    procs: list[subprocess.Popen[bytes]] = []
    mgr: subprocess.Popen[bytes] | None = None
    try:
        # The manager and the worker start together (each spends most of its start importing): the
        # listening socket is made here, so the worker knows the URL before the manager is up, and
        # its connection waits in the socket's backlog; it waits for the worker token the manager writes.
        sock = bind("127.0.0.1", 0)
        with sock:
            sock.listen(1024)
            url = f"http://127.0.0.1:{sock.getsockname()[1]}"
            mgr = _spawn(["manager", "--listen", "127.0.0.1:0", "--listen-fd", str(sock.fileno()),
                          "--state-dir", str(state), "--quiet", "--sync", "NORMAL"], log, (sock.fileno(),))
        procs.append(mgr)
        procs.append(_spawn(["worker", "--manager", url, "--slots", str(slots), "--name", "local",
                             "--token-file", str(state / "worker.token"), "--token-wait", "60"], log))
        _wait_for_manager(state, mgr, log)
        token = (state / "admin.token").read_text().strip()
        with Client(url, token) as c:
            started = time.monotonic()
            job = c.submit_checked_by_manager(data) if plain else c.submit(**data)
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
        _stop(procs, mgr, keep=not temp)
        if temp:
            shutil.rmtree(state, ignore_errors=True)
    sys.exit(code)
