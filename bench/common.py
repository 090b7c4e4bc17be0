"""Shared helpers for the benchmarks: start and stop a manager and workers, read memory, print tables.

Every process is started in its own session (process group) with its output in a log file under a
temporary state directory; ``Cluster`` stops the groups (SIGTERM, then SIGKILL) and removes the
directory on the way out, whatever happened. Only 127.0.0.1 is ever bound.

Run the benchmarks with the project's virtualenv, e.g. ``.venv/bin/python bench/throughput.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

# tiercel has no py.typed marker yet, so `mypy bench/*.py` alone treats it as untyped (the ignores below);
# `MYPYPATH=src mypy bench/*.py` checks these scripts against its real types.
import tiercel
from tiercel.client import Client

TIERCEL = [sys.executable, "-m", "tiercel"]
CLK_TCK = os.sysconf("SC_CLK_TCK")


class BenchError(Exception):
    """A benchmark could not be run (a process died, something timed out)."""


# ---- processes -------------------------------------------------------------


def spawn(args: Sequence[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start ``args`` in a new session with stdout and stderr appended to ``log``."""
    with open(log, "ab") as out:
        return subprocess.Popen(list(args), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, env=env)


def _killpg(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def stop_group(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM the process group led by ``proc``, wait ``grace`` seconds, then SIGKILL what is left."""
    pgid = proc.pid  # start_new_session: the leader's pid is the group id
    if proc.poll() is None:
        _killpg(pgid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    _killpg(pgid, signal.SIGKILL)  # stragglers of the group, and the leader if it ignored SIGTERM
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


def stop_groups(procs: Sequence[subprocess.Popen[bytes]], grace: float = 10.0) -> None:
    """Stop several groups: signal them all first, then wait, so shutdowns overlap."""
    for p in procs:
        if p.poll() is None:
            _killpg(p.pid, signal.SIGTERM)
    for p in procs:
        stop_group(p, grace)


def exit_cleanly_on_sigterm() -> None:
    """Turn SIGTERM (e.g. from ``timeout``) into SystemExit, so ``finally`` blocks stop what was started."""

    def handler(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


# ---- /proc -----------------------------------------------------------------


def proc_status_kb(pid: int, key: str) -> int:
    """A ``kB`` field of /proc/PID/status, such as VmRSS or VmHWM (peak RSS)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise BenchError(f"/proc/{pid}/status has no {key}")


def rss_mb(pid: int) -> float:
    return proc_status_kb(pid, "VmRSS") / 1024


def peak_rss_mb(pid: int) -> float:
    return proc_status_kb(pid, "VmHWM") / 1024


def cpu_seconds(pid: int, children: bool = False) -> float:
    """User + system CPU time of one process so far; with ``children``, also that of the children it reaped."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()  # fields[0] is field 3 of stat(5), "state"
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    if children:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime
    return ticks / CLK_TCK


def own_cpu_seconds() -> float:
    """CPU time of this process (all threads) and of the children it has reaped."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def busy_cpus(sample: float = 1.0) -> float:
    """How many CPUs' worth of work the machine did over ``sample`` seconds (others' work skews wall times)."""

    def read() -> tuple[int, int]:
        with open("/proc/stat") as f:
            ticks = [int(x) for x in f.readline().split()[1:]]
        idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
        return sum(ticks[:8]), idle  # user nice system idle iowait irq softirq steal (guest is inside user)

    total0, idle0 = read()
    time.sleep(sample)
    total1, idle1 = read()
    spent = total1 - total0
    return 0.0 if spent <= 0 else (os.cpu_count() or 1) * (1 - (idle1 - idle0) / spent)


def fs_type(path: Path) -> str:
    """The file system type that holds ``path`` (tmpfs makes fsync free, which changes --sync results)."""
    best, kind = "", "?"
    target = str(path.resolve())
    with contextlib.suppress(OSError), open("/proc/mounts") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3:
                mount = parts[1]
                inside = target == mount or target.startswith(mount.rstrip("/") + "/")
                if inside and len(mount) >= len(best):
                    best, kind = mount, parts[2]
    return kind


# ---- a manager and its workers -------------------------------------------------


@dataclass
class Cluster:
    """A manager (and optionally workers) in a temporary state dir; a context manager that cleans up."""

    sync: str = "FULL"
    parent: Path | None = None
    keep: bool = False
    start_timeout: float = 30.0
    state: Path = field(init=False)
    url: str = ""
    manager_pid: int = 0
    admin_token: str = ""
    manager: subprocess.Popen[bytes] | None = None
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.state = Path(tempfile.mkdtemp(prefix="tiercel-bench-", dir=self.parent))

    @property
    def log(self) -> Path:
        return self.state / "bench.log"

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close(failed=exc is not None and not isinstance(exc, (KeyboardInterrupt, SystemExit)))

    def start_manager(self, *extra: str) -> str:
        args = [*TIERCEL, "manager", "--listen", "127.0.0.1:0", "--state-dir", str(self.state), "--quiet",
                "--sync", self.sync, *extra]
        self.manager = spawn(args, self.log)
        info = self.state / "manager.json"
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.manager.poll() is not None:
                raise BenchError(f"the manager exited with {self.manager.returncode} at start: {self.tail_log()}")
            with contextlib.suppress(OSError, ValueError, KeyError):
                data = json.loads(info.read_text())
                self.url, self.manager_pid = str(data["url"]), int(data["pid"])
                self.admin_token = (self.state / "admin.token").read_text().strip()
                return self.url
            time.sleep(0.02)
        raise BenchError(f"the manager did not write {info} within {self.start_timeout:g}s: {self.tail_log()}")

    def start_worker(self, slots: int, *, executor: str = "process", prefetch: int | None = None,
                     name: str = "") -> subprocess.Popen[bytes]:
        if not self.url:
            raise BenchError("start the manager first")
        args = [*TIERCEL, "worker", "--manager", self.url, "--slots", str(slots),
                "--token-file", str(self.state / "worker.token"), "--executor", executor]
        if prefetch is not None:
            args += ["--prefetch", str(prefetch)]
        if name:
            args += ["--name", name]
        proc = spawn(args, self.log)
        self.workers.append(proc)
        return proc

    def client(self, timeout: float = 120.0) -> Client:
        return Client(self.url, self.admin_token, timeout=timeout)

    def wait_workers(self, client: Client, count: int, timeout: float = 30.0) -> None:
        """Wait until ``count`` workers are connected, so start-up is not part of a measurement."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for w in self.workers:
                if w.poll() is not None:
                    raise BenchError(f"a worker exited with {w.returncode}: {self.tail_log()}")
            if sum(1 for w in client.workers() if w["connected"]) >= count:
                return
            time.sleep(0.02)
        raise BenchError(f"{count} workers did not connect within {timeout:g}s: {self.tail_log()}")

    def check_alive(self) -> None:
        if self.manager is not None and self.manager.poll() is not None:
            raise BenchError(f"the manager exited with {self.manager.returncode}: {self.tail_log()}")
        for w in self.workers:
            if w.poll() is not None:
                raise BenchError(f"a worker exited with {w.returncode}: {self.tail_log()}")

    def tail_log(self, chars: int = 1500) -> str:
        try:
            return self.log.read_text(errors="replace").strip()[-chars:] or "(empty log)"
        except OSError:
            return "(no log)"

    def close(self, failed: bool = False) -> None:
        try:
            stop_groups(self.workers)
            if self.manager is not None:
                stop_group(self.manager)
        finally:
            if failed:
                print(f"\n-- log of the failed run ({self.log}):\n{self.tail_log(4000)}", file=sys.stderr)
            if self.keep:
                print(f"state kept in {self.state}", file=sys.stderr)
            else:
                shutil.rmtree(self.state, ignore_errors=True)


# ---- timing a job ----------------------------------------------------------


@dataclass
class JobRun:
    job_id: int
    seconds: float  # from just before the POST to the first poll that saw the job finished
    submit_seconds: float  # time for the POST alone
    data: dict[str, Any]
    polls: int
    anomalies: list[str]


def run_job(client: Client, spec: dict[str, Any], *, poll: float = 0.02, timeout: float = 600.0,
            check: Callable[[], None] | None = None) -> JobRun:
    """Submit ``spec`` and poll ``GET /v1/jobs/ID`` every ``poll`` s until it is done, failed or cancelled.

    Also notes anything odd seen while polling: counts that go backwards, or a state that goes back
    (e.g. running -> queued).
    """
    command = spec.pop("command")
    t0 = time.perf_counter()
    job = client.submit(command, **spec)
    t_submit = time.perf_counter() - t0
    order = {"queued": 0, "running": 1, "done": 2, "failed": 2, "cancelled": 2}
    anomalies: list[str] = []
    last = job.data
    polls = 0
    deadline = time.monotonic() + timeout
    while not job.finished:
        if time.monotonic() > deadline:
            raise BenchError(f"job {job.id} did not finish within {timeout:g}s (last seen: {_counts(job.data)})")
        if check is not None:
            check()
        time.sleep(poll)
        job.refresh()
        polls += 1
        now = job.data
        if order.get(now["state"], 0) < order.get(last["state"], 0):
            anomalies.append(f"state went {last['state']} -> {now['state']} at poll {polls} "
                             f"({_counts(last)} -> {_counts(now)})")
        elif now["done"] + now["failed"] < last["done"] + last["failed"]:
            anomalies.append(f"settled count went back at poll {polls}: {_counts(last)} -> {_counts(now)}")
        last = now
    seconds = time.perf_counter() - t0
    return JobRun(job.id, seconds, t_submit, job.data, polls, anomalies)


def _counts(d: dict[str, Any]) -> str:
    return (f"{d['state']} q={d['queued']} r={d['running']} d={d['done']} f={d['failed']} "
            f"c={d['cancelled']}/{d['total']}")


# ---- output ----------------------------------------------------------------


def fmt_num(x: float, digits: int = 0) -> str:
    return f"{x:,.{digits}f}"


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]], title: str = "") -> None:
    """An aligned plain-text table: text columns left-aligned, numbers right-aligned."""
    cells = [[str(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]

    def numeric(i: int) -> bool:
        return bool(rows) and all(isinstance(r[i], (int, float)) or _looks_numeric(str(r[i])) for r in rows)

    right = [numeric(i) for i in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if r else v.ljust(w) for v, w, r in zip(values, widths, right, strict=True))

    if title:
        print(f"\n{title}")
    print(line(list(headers)).rstrip())
    print("  ".join("-" * w for w in widths))
    for r in cells:
        print(line(r).rstrip())


def _looks_numeric(s: str) -> bool:
    s = s.strip().rstrip("x%s").replace(",", "")
    if s in ("", "-"):
        return s == "-"
    try:
        float(s)
    except ValueError:
        return False
    return True


def median(xs: Sequence[float]) -> float:
    return float(statistics.median(xs))


def environment(state_parent: Path | None = None) -> dict[str, Any]:
    parent = state_parent or Path(tempfile.gettempdir())
    rev = ""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent).stdout.strip()
    return {
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "tiercel": tiercel.__version__,
        "git": rev,
        "state_dir_parent": str(parent),
        "state_dir_fs": fs_type(parent),
        "loadavg": os.getloadavg()[0],
        "busy_cpus_before": busy_cpus(),
    }


def print_environment(env: dict[str, Any]) -> None:
    print(f"machine: {env['cpus']} CPUs, Linux {env['kernel']}, Python {env['python']}; "
          f"tiercel {env['tiercel']} ({env['git'] or 'no git'}); state dirs on {env['state_dir_fs']} "
          f"({env['state_dir_parent']})")
    print(f"other load just before: {env['busy_cpus_before']:.2f} CPUs busy (load average {env['loadavg']:.2f})")
    if env["busy_cpus_before"] > 0.2:
        print("warning: something else is using the CPUs; wall times will be noisy (try --repeat)")


def common_args(parser: argparse.ArgumentParser) -> None:
    """The options every benchmark takes; also makes SIGTERM clean up like Ctrl-C does."""
    exit_cleanly_on_sigterm()
    parser.add_argument("--json", type=Path, metavar="FILE",
                        help="append the results to FILE as one JSON object per line")
    parser.add_argument("--state-parent", type=Path, metavar="DIR",
                        help="make the temporary state dirs under DIR (default: the system temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the state dirs (logs, SQLite) afterwards")


def append_json(path: Path | None, bench: str, params: dict[str, Any], env: dict[str, Any],
                results: Any) -> None:
    if path is None:
        return
    record = {"bench": bench, "time": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
              "params": params, "environment": env, "results": results}
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")
    print(f"\nresults appended to {path}")



def main_guard(main: Callable[[], int]) -> None:
    """Run a benchmark's main: a failure is one line and exit status 2, Ctrl-C is 130."""
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"\nbenchmark failed: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
