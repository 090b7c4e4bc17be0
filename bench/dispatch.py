"""The manager's dispatch ceiling: how many tasks per second it can hand out and record.

A manager and K workers that complete tasks at once without spawning anything
(``--executor noop --slots 64``), so the manager, the channel and the store are all that is measured.
One job of N tasks is submitted with the Python client and timed until a GET /v1/jobs/ID (polled
every 20 ms) sees it done. It is run once per manager ``--sync`` mode (NORMAL, then FULL), each on a
fresh manager. Every result is still written to SQLite and acknowledged only once durable.

Usage: .venv/bin/python bench/dispatch.py [--tasks N] [--workers K] [--slots S] [--sync MODE] [--json FILE]
"""

from __future__ import annotations

import argparse
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
    peak_rss_mb,
    print_environment,
    print_table,
    run_job,
)

GOAL = 100_000  # tasks per second


def bench_dispatch(n: int, workers: int, slots: int, prefetch: int | None, sync: str, timeout: float,
                   parent: Path | None, keep: bool) -> dict[str, Any]:
    with Cluster(sync=sync, parent=parent, keep=keep) as cl:
        cl.start_manager()
        procs = [cl.start_worker(slots, executor="noop", prefetch=prefetch, name=f"noop-{k}") for k in range(workers)]
        with cl.client() as c:
            cl.wait_workers(c, workers)
            m0, w0 = cpu_seconds(cl.manager_pid), sum(cpu_seconds(p.pid) for p in procs)
            run = run_job(c, {"command": ["/bin/true"], "queue": n, "append_index": False},
                          poll=0.02, timeout=timeout, check=cl.check_alive)
            m1, w1 = cpu_seconds(cl.manager_pid), sum(cpu_seconds(p.pid) for p in procs)
            peak = peak_rss_mb(cl.manager_pid)
            per_worker = [w["tasks_run"] for w in c.workers()]
    d = run.data
    if d["state"] != "done" or d["done"] != n:
        raise BenchError(f"job ended {d['state']} with {d['done']} of {n} done, {d['failed']} failed")
    return {"sync": sync, "seconds": run.seconds, "tasks_per_second": n / run.seconds,
            "submit_seconds": run.submit_seconds, "manager_cpu": m1 - m0, "workers_cpu": w1 - w0,
            "manager_peak_rss_mb": peak, "tasks_per_worker": per_worker, "anomalies": run.anomalies}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=int, default=200_000, metavar="N", help="tasks in the job (default 200,000)")
    ap.add_argument("--workers", type=int, default=2, metavar="K", help="noop workers (default 2)")
    ap.add_argument("--slots", type=int, default=64, help="worker --slots (default 64)")
    ap.add_argument("--prefetch", type=int, metavar="N", help="worker --prefetch (default: the worker's own)")
    ap.add_argument("--sync", default="NORMAL,FULL", metavar="MODES",
                    help="manager --sync modes to run, comma-separated (default NORMAL,FULL)")
    ap.add_argument("--repeat", type=int, default=1, metavar="R", help="runs per mode; the median is shown")
    ap.add_argument("--timeout", type=float, default=600.0, metavar="S", help="give up on one run after S s")
    common_args(ap)
    args = ap.parse_args()
    modes = [m.strip().upper() for m in args.sync.split(",") if m.strip()]
    if any(m not in ("NORMAL", "FULL") for m in modes) or not modes:
        ap.error("--sync must list NORMAL and/or FULL")
    if args.tasks < 1 or args.workers < 1 or args.slots < 1 or args.repeat < 1:
        ap.error("--tasks, --workers, --slots and --repeat must be at least 1")

    env = environment(args.state_parent)
    print_environment(env)
    print(f"{args.tasks:,} tasks on {args.workers} worker(s) --executor noop --slots {args.slots}"
          f"{'' if args.prefetch is None else f' --prefetch {args.prefetch}'}; poll 20 ms; "
          f"median of {args.repeat} run(s) per mode")
    results: list[dict[str, Any]] = []
    rows: list[list[object]] = []
    for mode in modes:
        runs = []
        for r in range(args.repeat):
            print(f"  --sync {mode} run {r + 1}/{args.repeat} ...", end="", flush=True)
            res = bench_dispatch(args.tasks, args.workers, args.slots, args.prefetch, mode, args.timeout,
                                 args.state_parent, args.keep)
            print(f" {res['seconds']:.2f}s ({res['tasks_per_second']:,.0f} tasks/s)", flush=True)
            for a in res["anomalies"]:
                print(f"    ! {a}")
            runs.append(res)
        wall = median([x["seconds"] for x in runs])
        mgr_cpu = median([x["manager_cpu"] for x in runs])
        wkr_cpu = median([x["workers_cpu"] for x in runs])
        rows.append([mode, fmt_num(args.tasks), f"{wall:.2f}", fmt_num(args.tasks / wall), f"{mgr_cpu:.1f}",
                     f"{100 * mgr_cpu / wall:.0f}%", f"{wkr_cpu:.1f}",
                     f"{median([x['manager_peak_rss_mb'] for x in runs]):.0f}"])
        results.append({"sync": mode, "wall_seconds": wall, "tasks_per_second": args.tasks / wall, "runs": runs})
    print_table(["--sync", "tasks", "wall s", "tasks/s", "mgr CPU s", "mgr CPU", "wkrs CPU s", "mgr peak MB"],
                rows, title="dispatch ceiling")
    by_mode = {r["sync"]: r["tasks_per_second"] for r in results}
    if "NORMAL" in by_mode and "FULL" in by_mode:
        print(f"FULL/NORMAL throughput ratio: {by_mode['FULL'] / by_mode['NORMAL']:.2f}")
    for mode, tps in by_mode.items():
        print(f"goal: >= {GOAL:,} tasks/s -> --sync {mode}: {tps:,.0f} tasks/s {'MET' if tps >= GOAL else 'NOT MET'}")
    append_json(args.json, "dispatch", {"tasks": args.tasks, "workers": args.workers, "slots": args.slots,
                                        "prefetch": args.prefetch, "sync": modes, "repeat": args.repeat},
                env, results)
    return 0


if __name__ == "__main__":
    main_guard(main)
