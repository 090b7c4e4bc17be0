"""REST latency under full dispatch load: P pollers reading job status while the manager dispatches flat out.

A manager and K workers that complete tasks at once without spawning anything
(``--executor noop --slots 64``, as in dispatch.py), so the manager is as busy dispatching as it can be.
Three phases in one run, on one manager (a fresh one per repeat):

  idle      P pollers against the manager with no job running (they read a finished 10,000-task
            warm-up job)
  alone     one job of N tasks (default 5,000,000, more than the run can finish) dispatching, nobody
            polling: tasks/s from the job's done count at the window's start and end
  loaded    the same job still dispatching while the P pollers run: latencies, and tasks/s the same way

Each poller is an asyncio task with its own httpx client and one connection (max_connections=1)
sending, back to back, GET /v1/jobs/ID with the admin token; every tenth request (``--list-every``)
is GET /v1/jobs, the listing, instead. Every request started inside the window (``--window`` s) is
timed from the send to the whole answer read. The pollers live in a process of their own (this
script with ``--poller-child``) on the same machine, so they compete with the manager and the
workers for the CPUs: the CPU of each over the window is reported, and so is what the rest of the
machine used meanwhile (/proc/stat less our processes), since other work skews every figure here
(``--max-other-load`` waits for quiet and runs again a run that was disturbed). The order of
``alone`` and ``loaded`` alternates between runs; medians over runs are shown.

With ``--interval S`` each poller starts a request at most every S seconds (spread over the
interval) instead of back to back: with back-to-back pollers the latency is P / (requests per
second), so it measures the manager's throughput for reads; paced ones measure the wait of a
request that arrives while the loop is busy.

Usage: .venv/bin/python bench/rest_load.py [--pollers P] [--window S] [--workers K] [--tasks N]
                                           [--interval S] [--repeat R] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import select
import ssl
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from common import (
    CLK_TCK,
    BenchError,
    Cluster,
    append_json,
    busy_cpus,
    common_args,
    cpu_seconds,
    environment,
    fmt_num,
    main_guard,
    median,
    print_environment,
    print_table,
    run_job,
    stop_group,
)

from tiercel.client import Client

WARMUP_TASKS = 10_000
RAMP_SECONDS = 1.0  # after the big job's POST, before any window: workers reach full speed
LEAD_SECONDS = 0.5  # from the pollers being ready to the window's start, so both sides see the same start
SETUP_TIMEOUT = 60.0  # for the poller process to open its connections (under load, each first request waits too)
CHECK_EVERY = 0.2  # seconds between liveness checks while a window runs


# ---- the poller process ------------------------------------------------------


@dataclass
class PollerLog:
    job: list[float] = field(default_factory=list)  # latencies, seconds
    listing: list[float] = field(default_factory=list)
    samples: list[tuple[float, float, int]] = field(default_factory=list)  # (sent, answered: monotonic; done)
    errors: Counter[str] = field(default_factory=Counter)


GOAL_P99_MS = 50  # for paced pollers (--interval 1)
GOAL_RATIO = 0.9  # dispatch with the pollers / alone


class RawClient:
    """One HTTP/1.1 keep-alive connection speaking just enough of the protocol for a GET with a JSON
    answer (``--client raw``): a poller whose own CPU is a small part of the machine's, so that what the
    manager's dispatch loses to reads is not mostly the pollers' own work on the same two cores."""

    def __init__(self, url: str, token: str, timeout: float) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.head = f"Host: {parts.netloc}\r\nAuthorization: Bearer {token}\r\n\r\n".encode()
        self.timeout = timeout
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str) -> RawAnswer:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(b"GET " + path.encode() + b" HTTP/1.1\r\n" + self.head)
        try:
            head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), self.timeout)
            lines = head.split(b"\r\n")
            status = int(lines[0].split()[1])
            length = next(int(v) for k, _, v in (ln.partition(b":") for ln in lines[1:])
                          if k.strip().lower() == b"content-length")
            body = await asyncio.wait_for(self.reader.readexactly(length), self.timeout)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, StopIteration, ValueError,
                TimeoutError) as exc:
            await self.aclose()
            raise httpx.TransportError(f"raw client: {type(exc).__name__}") from None
        return RawAnswer(status, body)

    async def aclose(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


@dataclass
class RawAnswer:
    status_code: int
    content: bytes

    def json(self) -> Any:
        return json.loads(self.content)


async def _poller(i: int, pollers: int, client: httpx.AsyncClient | RawClient, job_path: str, list_every: int,
                  interval: float, t0: float, t1: float, log: PollerLog) -> None:
    # Paced pollers start spread over one interval, so their requests do not arrive in bursts of P.
    await asyncio.sleep(max(0.0, t0 + interval * i / pollers - time.monotonic()))
    n = i  # staggers the listings over the pollers
    while True:
        start = time.monotonic()
        if start >= t1:
            return
        listing = list_every > 0 and n % list_every == 0
        n += 1
        try:
            resp = await client.get("/v1/jobs" if listing else job_path)
        except httpx.HTTPError as exc:
            log.errors[type(exc).__name__] += 1
            await asyncio.sleep(0.05)  # a refused or broken connection must not spin
            continue
        end = time.monotonic()
        if resp.status_code != 200:
            log.errors[f"HTTP {resp.status_code}"] += 1
        elif listing:
            log.listing.append(end - start)
        else:
            log.job.append(end - start)
            log.samples.append((start, end, int(resp.json()["done"])))
        if interval > 0:
            await asyncio.sleep(max(0.0, start + interval - time.monotonic()))


async def _poll_all(spec: dict[str, Any]) -> dict[str, Any]:
    token = Path(spec["token_file"]).read_text().strip()
    job_path = f"/v1/jobs/{int(spec['job_id'])}"
    tls = ssl.create_default_context()  # unused over http://, but httpx makes one per client unless given one
    clients: list[httpx.AsyncClient | RawClient]
    if spec.get("client") == "raw":
        clients = [RawClient(spec["url"], token, spec["request_timeout"]) for _ in range(int(spec["pollers"]))]
    else:
        clients = [httpx.AsyncClient(base_url=spec["url"], headers={"Authorization": f"Bearer {token}"},
                                     limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
                                     timeout=httpx.Timeout(spec["request_timeout"]), verify=tls)
                   for _ in range(int(spec["pollers"]))]
    log = PollerLog()
    try:
        # Every connection opened and one answer read before the window: set-up is not measured.
        answers: list[httpx.Response | RawAnswer] = list(
            await asyncio.wait_for(asyncio.gather(*(c.get(job_path) for c in clients)), SETUP_TIMEOUT))
        bad = [r.status_code for r in answers if r.status_code != 200]
        if bad:
            raise BenchError(f"{len(bad)} warm-up requests answered {sorted(set(bad))}")
        t0 = time.monotonic() + LEAD_SECONDS
        t1 = t0 + float(spec["window"])
        ready = Path(spec["ready"])
        ready.with_suffix(".tmp").write_text(json.dumps({"t0": t0, "t1": t1}))
        ready.with_suffix(".tmp").replace(ready)
        tasks = [_poller(i, len(clients), c, job_path, int(spec["list_every"]), float(spec["interval"]), t0, t1, log)
                 for i, c in enumerate(clients)]
        # A request started just before t1 may take up to request_timeout; then httpx gives up on it.
        await asyncio.wait_for(asyncio.gather(*tasks), t1 - time.monotonic() + spec["request_timeout"] + 10)
    finally:
        await asyncio.gather(*(c.aclose() for c in clients), return_exceptions=True)
    return {"t0": t0, "t1": t1, "job": log.job, "listing": log.listing, "samples": log.samples,
            "errors": dict(log.errors)}


def poller_child(spec_path: Path) -> int:
    """``--poller-child SPEC``: run the pollers, write the result file, then stay (a zombie-free /proc entry
    for the parent's CPU reading) until the parent closes our stdin, at most two minutes."""
    spec = json.loads(spec_path.read_text())
    try:
        result = asyncio.run(_poll_all(spec))
    except BaseException as exc:  # said to the parent through the result file, then raised
        result = {"failed": f"{type(exc).__name__}: {exc}"}
        _write(Path(spec["result"]), result)
        raise
    _write(Path(spec["result"]), result)
    with contextlib.suppress(OSError, ValueError):
        select.select([sys.stdin], [], [], 120.0)
    return 0


def _write(path: Path, data: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)


# ---- the measuring side ------------------------------------------------------


def percentile(sorted_xs: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) of already sorted values, interpolated linearly between ranks."""
    if not sorted_xs:
        return float("nan")
    pos = (len(sorted_xs) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(sorted_xs) - 1)
    return sorted_xs[lo] + (sorted_xs[hi] - sorted_xs[lo]) * (pos - lo)


def latency_stats(latencies: Sequence[float], window: float) -> dict[str, Any]:
    xs = sorted(latencies)
    return {"requests": len(xs), "requests_per_second": len(xs) / window,
            "p50_ms": 1000 * percentile(xs, 50), "p90_ms": 1000 * percentile(xs, 90),
            "p99_ms": 1000 * percentile(xs, 99), "max_ms": 1000 * xs[-1] if xs else float("nan"),
            "mean_ms": 1000 * sum(xs) / len(xs) if xs else float("nan")}


def slope(samples: Sequence[tuple[float, int]]) -> float | None:
    """Least-squares done-per-second over the pollers' (answer time, done) samples: a second estimate of the
    dispatch rate while they run, from thousands of points rather than two."""
    if len(samples) < 10:
        return None
    n = len(samples)
    mt = sum(t for t, _ in samples) / n
    md = sum(d for _, d in samples) / n
    var = sum((t - mt) ** 2 for t, _ in samples)
    if var <= 0:
        return None
    return sum((t - mt) * (d - md) for t, d in samples) / var


@dataclass
class Snapshot:
    at: float  # monotonic time the answer was read
    done: int
    state: str
    total: int
    latency: float


def snapshot(c: Client, job_id: int) -> Snapshot:
    start = time.monotonic()
    d = c.json("GET", f"/v1/jobs/{job_id}")
    end = time.monotonic()
    return Snapshot(end, int(d["done"]), str(d["state"]), int(d["total"]), end - start)


def sleep_until(t: float, cl: Cluster, extra: subprocess.Popen[bytes] | None = None) -> None:
    while True:
        left = t - time.monotonic()
        if left <= 0:
            return
        cl.check_alive()
        if extra is not None and extra.poll() is not None:
            raise BenchError(f"the poller process exited with {extra.returncode}: {cl.tail_log()}")
        time.sleep(min(CHECK_EVERY, left))


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy since boot (all CPUs; /proc/stat, idle and iowait excluded)."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    return (sum(ticks[:8]) - ticks[3] - (ticks[4] if len(ticks) > 4 else 0)) / CLK_TCK


def cpu_now(cl: Cluster, pollers: subprocess.Popen[bytes] | None) -> dict[str, float]:
    out = {"manager": cpu_seconds(cl.manager_pid), "workers": sum(cpu_seconds(w.pid) for w in cl.workers)}
    if pollers is not None:
        out["pollers"] = cpu_seconds(pollers.pid)
    out["bench"] = cpu_seconds(os.getpid())  # this process: the two snapshots and the liveness checks
    out["machine"] = machine_busy_seconds()
    return out


def window(cl: Cluster, c: Client, job_id: int, t0: float, t1: float, dispatching: bool,
           pollers: subprocess.Popen[bytes] | None = None) -> dict[str, Any]:
    """CPU of every process and the job's done count at t0 and at t1; tasks/s between the two answers."""
    sleep_until(t0, cl, pollers)
    cpu0, s0 = cpu_now(cl, pollers), snapshot(c, job_id)
    sleep_until(t1, cl, pollers)
    cpu1, s1 = cpu_now(cl, pollers), snapshot(c, job_id)
    if dispatching and (s1.state != "running" or s1.done >= s1.total):
        raise BenchError(f"the job was {s1.state} with {s1.done:,} of {s1.total:,} done at the window's end: "
                         "give it more --tasks, so that it dispatches through every window")
    span = t1 - t0
    used = {k: 100 * (cpu1[k] - cpu0[k]) / span for k in cpu0}
    # What the rest of the machine did meanwhile (other people's work skews every figure here).
    used["others"] = max(0.0, used.pop("machine") - sum(used.values()))
    out: dict[str, Any] = {"cpu_percent": used}
    if dispatching:
        out.update(tasks_per_second=(s1.done - s0.done) / (s1.at - s0.at), done_at_start=s0.done,
                   done_at_end=s1.done, snapshot_ms=[1000 * s0.latency, 1000 * s1.latency])
    return out


def run_pollers(cl: Cluster, c: Client, args: argparse.Namespace, job_id: int, dispatching: bool,
                tag: str) -> dict[str, Any]:
    """Start the poller process against ``job_id``, measure its window, and collect its latencies."""
    spec_path, ready, result = (cl.state / f"pollers-{tag}{s}" for s in (".spec.json", ".ready", ".result"))
    spec = {"url": cl.url, "token_file": str(cl.state / "admin.token"), "job_id": job_id,
            "pollers": args.pollers, "window": args.window, "list_every": args.list_every, "client": args.client,
            "interval": args.interval, "request_timeout": args.request_timeout,
            "ready": str(ready), "result": str(result)}
    spec_path.write_text(json.dumps(spec))
    with open(cl.log, "ab") as log:
        proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--poller-child", str(spec_path)],
                                stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + SETUP_TIMEOUT + 10
        while not ready.exists():
            if result.exists() or proc.poll() is not None:
                raise BenchError(f"the poller process failed at start: {_read_result(result)} {cl.tail_log()}")
            if time.monotonic() > deadline:
                raise BenchError(f"the pollers did not connect within {SETUP_TIMEOUT + 10:g}s")
            cl.check_alive()
            time.sleep(0.02)
        times = json.loads(ready.read_text())
        measured = window(cl, c, job_id, times["t0"], times["t1"], dispatching, proc)
        deadline = times["t1"] + args.request_timeout + 20
        while not result.exists():
            if proc.poll() is not None and not result.exists():
                raise BenchError(f"the poller process exited with {proc.returncode}: {cl.tail_log()}")
            if time.monotonic() > deadline:
                raise BenchError("the pollers did not finish their last requests in time")
            time.sleep(0.02)
        data = _read_result(result)
    finally:
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()  # the child's cue to exit
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
        stop_group(proc)
    if "failed" in data:
        raise BenchError(f"the pollers failed: {data['failed']}")
    span = times["t1"] - times["t0"]
    samples = [(float(t), int(d)) for _, t, d in data["samples"]]
    return {**measured,
            "all": latency_stats([*data["job"], *data["listing"]], span),
            "job": latency_stats(data["job"], span), "listing": latency_stats(data["listing"], span),
            "errors": data["errors"],
            "tasks_per_second_from_polls": slope(samples) if dispatching else None}


def _read_result(path: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return {}


def wait_for_quiet(max_percent: float, timeout: float) -> None:
    """Wait until the machine is idle (under ``max_percent`` of one CPU busy over a second), at most ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        busy = 100 * busy_cpus(1.0)
        if busy <= max_percent:
            return
        if time.monotonic() > deadline:
            print(f"  (the machine stayed busy, {busy:.0f}% of a CPU, for {timeout:g}s: running anyway)")
            return
        time.sleep(4.0)


def one_run(args: argparse.Namespace, run: int) -> dict[str, Any]:
    with Cluster(sync=args.sync, parent=args.state_parent, keep=args.keep) as cl:
        cl.start_manager()
        for k in range(args.workers):
            cl.start_worker(args.slots, executor="noop", name=f"noop-{k}")
        with cl.client(timeout=args.request_timeout + 30) as c:
            cl.wait_workers(c, args.workers)
            warm = run_job(c, {"command": ["/bin/true"], "queue": WARMUP_TASKS, "append_index": False},
                           poll=0.02, timeout=120, check=cl.check_alive)
            if warm.data["state"] != "done":
                raise BenchError(f"the warm-up job ended {warm.data['state']}")
            print(" idle ...", end="", flush=True)
            idle = run_pollers(cl, c, args, warm.job_id, dispatching=False, tag="idle")

            job = c.submit(["/bin/true"], queue=args.tasks, append_index=False)
            sleep_until(time.monotonic() + RAMP_SECONDS, cl)
            alone: dict[str, Any] = {}
            loaded: dict[str, Any] = {}
            order = ("alone", "loaded") if run % 2 == 0 else ("loaded", "alone")
            for phase in order:
                print(f" {phase} ...", end="", flush=True)
                if phase == "alone":
                    t0 = time.monotonic() + 0.05
                    alone = window(cl, c, job.id, t0, t0 + args.window, dispatching=True)
                else:
                    loaded = run_pollers(cl, c, args, job.id, dispatching=True, tag="loaded")
            with contextlib.suppress(Exception):
                c.json("POST", f"/v1/jobs/{job.id}/cancel")  # a quicker shutdown
    return {"order": list(order), "idle": idle, "alone": alone, "loaded": loaded,
            "dispatch_ratio": loaded["tasks_per_second"] / alone["tasks_per_second"]}


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--poller-child":
        return poller_child(Path(sys.argv[2]))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pollers", type=int, default=200, metavar="P", help="concurrent pollers (default 200)")
    ap.add_argument("--window", type=float, default=15.0, metavar="S", help="seconds each phase is measured (15)")
    ap.add_argument("--workers", type=int, default=2, metavar="K", help="noop workers (default 2)")
    ap.add_argument("--slots", type=int, default=64, help="worker --slots (default 64)")
    ap.add_argument("--tasks", type=int, default=5_000_000, metavar="N",
                    help="tasks in the job dispatched during the windows (default 5,000,000; it must outlast them)")
    ap.add_argument("--list-every", type=int, default=10, metavar="M",
                    help="every M-th request of a poller is GET /v1/jobs, the others GET /v1/jobs/ID "
                         "(default 10; 0: no listing)")
    ap.add_argument("--client", choices=["httpx", "raw"], default="httpx",
                    help="the pollers' HTTP client: httpx (default), or raw, a minimal HTTP/1.1 GET of its own "
                         "whose CPU takes less of the machine the manager runs on")
    ap.add_argument("--interval", type=float, default=0.0, metavar="S",
                    help="a poller starts a request at most every S seconds (default 0: back to back)")
    ap.add_argument("--request-timeout", type=float, default=30.0, metavar="S",
                    help="the pollers give up on one request after S seconds (default 30)")
    ap.add_argument("--sync", choices=["FULL", "NORMAL"], default="FULL", help="manager --sync (default FULL)")
    ap.add_argument("--repeat", type=int, default=1, metavar="R", help="runs, each on a fresh manager; medians shown")
    ap.add_argument("--max-other-load", type=float, metavar="PCT",
                    help="on a shared machine: wait until others use under PCT%% of a CPU before each run, and "
                         "run again (at most R more runs) a run during which they used more")
    ap.add_argument("--quiet-wait", type=float, default=300.0, metavar="S",
                    help="with --max-other-load, wait at most S seconds for quiet before a run (default 300)")
    common_args(ap)
    args = ap.parse_args()
    if min(args.pollers, args.workers, args.slots, args.tasks, args.repeat) < 1 or args.window <= 0:
        ap.error("--pollers, --workers, --slots, --tasks, --repeat and --window must be positive")
    if args.list_every < 0 or args.interval < 0 or args.request_timeout <= 0:
        ap.error("--list-every and --interval must not be negative, --request-timeout must be positive")

    env = environment(args.state_parent)
    print_environment(env)
    print(f"manager --sync {args.sync}, {args.workers} worker(s) --executor noop --slots {args.slots}; "
          f"{args.pollers} pollers in one process (asyncio + {args.client}, one connection each), "
          f"{'back to back' if args.interval == 0 else f'one request per {args.interval:g} s'}, "
          f"{'no listing' if args.list_every == 0 else f'every {args.list_every}th request GET /v1/jobs'}; "
          f"{args.window:g} s windows; job of {args.tasks:,} tasks; median of {args.repeat} run(s)")
    runs: list[dict[str, Any]] = []
    disturbed: list[dict[str, Any]] = []
    attempts = args.repeat if args.max_other_load is None else 2 * args.repeat
    for attempt in range(attempts):
        if len(runs) == args.repeat:
            break
        if args.max_other_load is not None:
            wait_for_quiet(args.max_other_load, args.quiet_wait)
        print(f"  run {len(runs) + 1}/{args.repeat}:", end="", flush=True)
        res = one_run(args, attempt)
        res["other_load_max"] = max(res[p]["cpu_percent"]["others"] for p in ("idle", "alone", "loaded"))
        print(f" idle p50 {res['idle']['all']['p50_ms']:.1f} ms; under load p50 {res['loaded']['all']['p50_ms']:.0f}"
              f" ms, p99 {res['loaded']['all']['p99_ms']:.0f} ms; dispatch {res['alone']['tasks_per_second']:,.0f}"
              f" alone, {res['loaded']['tasks_per_second']:,.0f} with pollers; other load up to "
              f"{res['other_load_max']:.0f}% ({' then '.join(res['order'])})", flush=True)
        for phase in ("idle", "loaded"):
            if res[phase]["errors"]:
                print(f"    ! {phase}: errors {res[phase]['errors']}")
        if args.max_other_load is not None and res["other_load_max"] > args.max_other_load:
            print(f"    ! other work used more than {args.max_other_load:g}% of a CPU during the run: not counted")
            disturbed.append(res)
        else:
            runs.append(res)
    if not runs:
        raise BenchError(f"every run was disturbed by other work on the machine (over {args.max_other_load:g}%)")
    if len(runs) < args.repeat:
        print(f"warning: only {len(runs)} of {args.repeat} runs were undisturbed; the medians are of those")

    def med(path: Sequence[str]) -> float:
        vals = []
        for run in runs:
            v: Any = run
            for key in path:
                v = v[key]
            if v is not None:
                vals.append(float(v))
        return median(vals) if vals else float("nan")

    def cpu(phase: str, who: str) -> str:
        return f"{med([phase, 'cpu_percent', who]):.0f}%" if who in runs[0][phase]["cpu_percent"] else "-"

    rows: list[list[object]] = []
    for phase, label in (("idle", "idle (no job running)"), ("loaded", "under dispatch load")):
        for kind in ("all", "job", "listing"):
            if kind == "listing" and args.list_every == 0:
                continue
            what = {"all": "all", "job": "GET /v1/jobs/ID", "listing": "GET /v1/jobs"}[kind]
            rows.append([label if kind == "all" else "", what, fmt_num(med([phase, kind, "requests"])),
                         f"{med([phase, kind, 'p50_ms']):,.1f}", f"{med([phase, kind, 'p90_ms']):,.1f}",
                         f"{med([phase, kind, 'p99_ms']):,.1f}", f"{med([phase, kind, 'max_ms']):,.1f}",
                         fmt_num(med([phase, kind, "requests_per_second"]))])
    print_table(["phase", "requests", "count", "p50 ms", "p90 ms", "p99 ms", "max ms", "req/s"], rows,
                title=f"REST latency, {args.pollers} pollers, {args.window:g} s window (median of {len(runs)})")

    alone_tps, loaded_tps = med(["alone", "tasks_per_second"]), med(["loaded", "tasks_per_second"])
    rows = [[label, tps, *(cpu(phase, who) for who in ("manager", "workers", "pollers", "others"))]
            for phase, label, tps in (("idle", "idle, pollers only", "-"),
                                      ("alone", "dispatch alone", fmt_num(alone_tps)),
                                      ("loaded", "dispatch with pollers", fmt_num(loaded_tps)))]
    print_table(["phase", "tasks/s", "manager CPU", "workers CPU", "pollers CPU", "other load"], rows,
                title="dispatch rate and CPU over the window (100% = one core; the machine has "
                      f"{os.cpu_count()} CPUs)")
    print(f"dispatch with pollers / alone: {med(['dispatch_ratio']):.2f}  "
          f"(with pollers, from the pollers' own answers: {med(['loaded', 'tasks_per_second_from_polls']):,.0f}"
          " tasks/s)")
    p99, ratio = med(["loaded", "all", "p99_ms"]), med(["dispatch_ratio"])
    met_p99 = "MET" if p99 < GOAL_P99_MS else "NOT MET"
    met_ratio = "MET" if ratio >= GOAL_RATIO else "NOT MET"
    pace = "paced" if args.interval > 0 else "back to back: the goals are for paced ones"
    print(f"goal: p99 < {GOAL_P99_MS} ms under dispatch -> {p99:.1f} ms {met_p99}; "
          f"dispatch keeps >= {GOAL_RATIO} with the pollers -> {ratio:.2f} {met_ratio} ({args.client} pollers, {pace})")
    append_json(args.json, "rest_load",
                {"pollers": args.pollers, "client": args.client, "window": args.window, "workers": args.workers,
                 "slots": args.slots,
                 "tasks": args.tasks, "list_every": args.list_every, "interval": args.interval,
                 "sync": args.sync, "repeat": args.repeat, "max_other_load": args.max_other_load},
                env, {"median": {"idle": {k: med(["idle", "all", k]) for k in ("requests", "p50_ms", "p90_ms",
                                                                                "p99_ms", "max_ms",
                                                                                "requests_per_second")},
                                 "loaded": {k: med(["loaded", "all", k]) for k in ("requests", "p50_ms", "p90_ms",
                                                                                    "p99_ms", "max_ms",
                                                                                    "requests_per_second")},
                                 "dispatch_alone_tps": alone_tps, "dispatch_loaded_tps": loaded_tps,
                                 "dispatch_ratio": med(["dispatch_ratio"])},
                      "runs": runs, "disturbed_runs": disturbed})
    return 0


if __name__ == "__main__":
    main_guard(main)
