"""End-to-end throughput on short tasks: Tiercel against xargs and a Python spawn floor.

N tasks of /bin/true on 2 slots, one system after the other (never at the same time):

  tiercel   a manager and one worker (--slots 2); one job submitted with the Python client
            (append_index=False); timed from just before the POST until a GET /v1/jobs/ID, polled
            every 20 ms, sees the job done (its last result is durable by then)
  xargs     seq 0 N-1 | xargs -P 2 -n 1 /bin/true      (/bin/true ignores its argument)
  python    subprocess.run(["/bin/true"], capture_output=True) over N items on ThreadPoolExecutor(2):
            the floor for spawning with output capture from Python, which is what a worker does

Usage: .venv/bin/python bench/throughput.py [--tasks N] [--repeat R] [--json FILE]
By default it runs N=10,000 and then N=100,000.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from common import (
    BenchError,
    Cluster,
    append_json,
    common_args,
    cpu_seconds,
    environment,
    fmt_num,
    main_guard,
    median,
    own_cpu_seconds,
    print_environment,
    print_table,
    run_job,
)

GOAL = 1.3  # Tiercel's wall time at most this many times the Python spawn floor's
SYSTEMS = ("tiercel", "xargs", "python")


def bench_tiercel(n: int, slots: int, sync: str, prefetch: int | None, timeout: float, parent: Path | None,
                  keep: bool) -> dict[str, Any]:
    with Cluster(sync=sync, parent=parent, keep=keep) as cl:
        cl.start_manager()
        worker = cl.start_worker(slots, prefetch=prefetch)
        with cl.client() as c:
            cl.wait_workers(c, 1)
            cpu0 = [cpu_seconds(cl.manager_pid), cpu_seconds(worker.pid), cpu_seconds(worker.pid, children=True)]
            run = run_job(c, {"command": ["/bin/true"], "queue": n, "append_index": False},
                          poll=0.02, timeout=timeout, check=cl.check_alive)
            cpu1 = [cpu_seconds(cl.manager_pid), cpu_seconds(worker.pid), cpu_seconds(worker.pid, children=True)]
            busy = sum(r.ended - r.started for r in c.job(run.job_id).results())  # fetched after the timing
    d = run.data
    if d["state"] != "done" or d["done"] != n:
        raise BenchError(f"tiercel job ended {d['state']} with {d['done']} of {n} done, {d['failed']} failed")
    # total: manager + worker + the tasks the worker reaped (not this process's polling)
    return {"seconds": run.seconds, "submit_seconds": run.submit_seconds, "polls": run.polls,
            "manager_cpu": cpu1[0] - cpu0[0], "worker_cpu": cpu1[1] - cpu0[1],
            "total_cpu": cpu1[0] - cpu0[0] + cpu1[2] - cpu0[2], "anomalies": run.anomalies,
            "task_seconds_mean": busy / n, "slot_busy_fraction": busy / (slots * run.seconds)}


def bench_xargs(n: int, slots: int, timeout: float) -> dict[str, Any]:
    cmd = f"seq 0 {n - 1} | xargs -P {slots} -n 1 /bin/true"
    cpu0 = own_cpu_seconds()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, shell=True, executable="/bin/sh", stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BenchError(f"xargs did not finish within {timeout:g}s") from None
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    seconds = time.perf_counter() - t0
    if code != 0:
        raise BenchError(f"{cmd!r} exited with {code}")
    return {"seconds": seconds, "total_cpu": own_cpu_seconds() - cpu0}


def bench_python(n: int, slots: int, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout

    def one(_: int) -> int:
        if time.monotonic() > deadline:
            raise BenchError(f"the Python floor did not finish within {timeout:g}s")
        return subprocess.run(["/bin/true"], capture_output=True).returncode

    cpu0 = own_cpu_seconds()
    t0 = time.perf_counter()
    with ThreadPoolExecutor(slots) as pool:
        codes = list(pool.map(one, range(n)))
    seconds = time.perf_counter() - t0
    cpu = own_cpu_seconds() - cpu0
    bad = sum(1 for c in codes if c != 0)
    if bad:
        raise BenchError(f"{bad} of {n} /bin/true runs failed")
    return {"seconds": seconds, "total_cpu": cpu}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=int, metavar="N", help="one size only (default: 10,000 then 100,000)")
    ap.add_argument("--slots", type=int, default=2, help="parallel slots for every system (default 2)")
    ap.add_argument("--repeat", type=int, default=1, metavar="R", help="runs per system; the median is shown")
    ap.add_argument("--sync", choices=["FULL", "NORMAL"], default="FULL", help="manager --sync (default FULL)")
    ap.add_argument("--prefetch", type=int, metavar="N", help="worker --prefetch (default: the worker's own)")
    ap.add_argument("--only", default=",".join(SYSTEMS), metavar="LIST",
                    help="comma-separated subset of tiercel,xargs,python")
    ap.add_argument("--timeout", type=float, metavar="S",
                    help="give up on one run after S seconds (default 120 + 10 ms per task)")
    common_args(ap)
    args = ap.parse_args()
    sizes = [args.tasks] if args.tasks else [10_000, 100_000]
    systems = [s for s in SYSTEMS if s in args.only.split(",")]
    if any(n < 1 for n in sizes) or args.slots < 1 or args.repeat < 1 or not systems:
        ap.error("--tasks, --slots and --repeat must be at least 1, and --only must name a system")

    env = environment(args.state_parent)
    print_environment(env)
    print(f"/bin/true on {args.slots} slots; tiercel: manager --sync {args.sync}, 1 worker --slots {args.slots}"
          f"{'' if args.prefetch is None else f' --prefetch {args.prefetch}'}, poll 20 ms; "
          f"median of {args.repeat} run(s) each")
    all_results: list[dict[str, Any]] = []
    for n in sizes:
        timeout = args.timeout or 120 + n * 0.01
        runs: dict[str, list[dict[str, Any]]] = {s: [] for s in systems}
        for r in range(args.repeat):
            for system in systems:
                print(f"  N={n:,} run {r + 1}/{args.repeat}: {system} ...", end="", flush=True)
                if system == "tiercel":
                    res = bench_tiercel(n, args.slots, args.sync, args.prefetch, timeout, args.state_parent,
                                        args.keep)
                elif system == "xargs":
                    res = bench_xargs(n, args.slots, timeout)
                else:
                    res = bench_python(n, args.slots, timeout)
                print(f" {res['seconds']:.2f}s", flush=True)
                for a in res.get("anomalies", []):
                    print(f"    ! tiercel: {a}")
                runs[system].append(res)
        wall = {s: median([x["seconds"] for x in runs[s]]) for s in systems}
        rows: list[list[object]] = []
        for s in systems:
            extra = ["-", "-", "-"]
            if s == "tiercel":
                t = runs[s]
                extra = [f"{median([x['submit_seconds'] for x in t]) * 1000:.0f}",
                         f"{median([x['manager_cpu'] for x in t]):.1f}", f"{median([x['worker_cpu'] for x in t]):.1f}"]
            cpu = median([x["total_cpu"] for x in runs[s]])
            rows.append([s, fmt_num(n), f"{wall[s]:.2f}", fmt_num(n / wall[s]), f"{wall[s] / n * 1e6:.0f}",
                         f"{cpu:.1f}", f"{cpu / n * 1e6:.0f}", *extra])
        print_table(["system", "tasks", "wall s", "tasks/s", "us/task", "CPU s", "CPU us/task", "POST ms",
                     "mgr CPU s", "wkr CPU s"], rows, title=f"N = {n:,}")
        print("(CPU: user+system of everything the system ran, tasks included; for tiercel: manager + worker + "
              "tasks, without the client's polling. wkr CPU s: the worker process alone.)")
        if "tiercel" in runs:
            t = runs["tiercel"]
            print(f"tiercel breakdown: a task takes {median([x['task_seconds_mean'] for x in t]) * 1e6:.0f} us "
                  f"in the worker (spawn to reaped, from its started/ended), and the slots are busy "
                  f"{100 * median([x['slot_busy_fraction'] for x in t]):.0f}% of the wall time")
        ratios: dict[str, float] = {}
        if "tiercel" in wall:
            for base in ("xargs", "python"):
                if base in wall:
                    ratios[f"tiercel/{base}"] = wall["tiercel"] / wall[base]
            for name, value in ratios.items():
                print(f"{name:>15} wall-time ratio: {value:.2f}x")
            if "tiercel/python" in ratios:
                met = ratios["tiercel/python"] <= GOAL
                print(f"goal: Tiercel within {GOAL}x of the Python spawn floor -> "
                      f"{ratios['tiercel/python']:.2f}x {'MET' if met else 'NOT MET'}")
        all_results.append({"tasks": n, "wall_seconds": wall, "tasks_per_second": {s: n / wall[s] for s in wall},
                            "ratios": ratios, "runs": runs})
    append_json(args.json, "throughput", {"sizes": sizes, "slots": args.slots, "repeat": args.repeat,
                                          "sync": args.sync, "prefetch": args.prefetch, "systems": systems},
                env, all_results)
    return 0  # goals are reported, not enforced: `make bench` runs all three scripts


if __name__ == "__main__":
    main_guard(main)
