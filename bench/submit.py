"""Submitting a huge job array: time to accept it durably, and the manager's memory.

A manager with no workers. Its RSS (VmRSS of /proc/PID/status; PID from manager.json) is read,
one job of 1,000,000 tasks (``queue=1000000``) is submitted with the Python client and timed until
the POST returns (the job is then accepted and durable), RSS is read again, and a
``GET /v1/jobs/ID`` is timed. Then, on a fresh manager, the same for 10 such jobs in a row, to show
that memory does not grow with the number of tasks.

Usage: .venv/bin/python bench/submit.py [--tasks N] [--jobs J] [--json FILE]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from common import (
    BenchError,
    Cluster,
    append_json,
    common_args,
    environment,
    fmt_num,
    main_guard,
    peak_rss_mb,
    print_environment,
    print_table,
    rss_mb,
)

GOAL_SECONDS = 1.0
GOAL_GROWTH_MB = 100.0


def timed(fn: Any, *args: Any, **kw: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn(*args, **kw)
    return time.perf_counter() - t0, out


def submit_series(tasks: int, jobs: int, sync: str, parent: Path | None, keep: bool) -> dict[str, Any]:
    """Start a manager, submit ``jobs`` jobs of ``tasks`` tasks one after the other, measure each."""
    with Cluster(sync=sync, parent=parent, keep=keep) as cl:
        cl.start_manager()
        pid = cl.manager_pid
        with cl.client(timeout=120) as c:
            c.whoami()  # a first request, so connection set-up is not counted in the first submit
            c.jobs()
            time.sleep(0.2)
            before = rss_mb(pid)
            rows: list[dict[str, Any]] = []
            for _ in range(jobs):
                post_s, job = timed(c.submit, ["/bin/true"], queue=tasks, append_index=False)
                after = rss_mb(pid)
                get_s, data = timed(c.json, "GET", f"/v1/jobs/{job.id}")
                if data["total"] != tasks or data["queued"] != tasks:
                    raise BenchError(f"job {job.id}: expected {tasks} queued tasks, got {data}")
                rows.append({"job": job.id, "submit_seconds": post_s, "get_seconds": get_s, "rss_mb": after})
            list_s, listed = timed(c.jobs)
            if len(listed) != jobs:
                raise BenchError(f"GET /v1/jobs listed {len(listed)} jobs, expected {jobs}")
            time.sleep(0.2)
            settled = rss_mb(pid)
            peak = peak_rss_mb(pid)
            db = sum(p.stat().st_size for p in cl.state.glob("tiercel.db*"))
    return {"tasks": tasks, "jobs": rows, "rss_before_mb": before, "rss_after_mb": settled, "peak_rss_mb": peak,
            "growth_mb": settled - before, "list_seconds": list_s, "db_bytes": db}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=int, default=1_000_000, metavar="N", help="tasks per job (default 1,000,000)")
    ap.add_argument("--jobs", type=int, default=10, metavar="J", help="jobs in the series (default 10; 0 skips it)")
    ap.add_argument("--sync", choices=["FULL", "NORMAL"], default="FULL", help="manager --sync (default FULL)")
    common_args(ap)
    args = ap.parse_args()
    if args.tasks < 1 or args.jobs < 0:
        ap.error("--tasks must be at least 1 and --jobs at least 0")

    env = environment(args.state_parent)
    print_environment(env)
    print(f"manager --sync {args.sync}, no workers; job = ['/bin/true'], queue={args.tasks:,}, append_index=False")

    one = submit_series(args.tasks, 1, args.sync, args.state_parent, args.keep)
    j = one["jobs"][0]
    print_table(
        ["measure", "value", "goal"],
        [
            ["submit (POST until accepted and durable)", f"{j['submit_seconds']:.3f} s", f"< {GOAL_SECONDS:g} s"],
            ["GET /v1/jobs/ID afterwards", f"{j['get_seconds'] * 1000:.1f} ms", ""],
            ["manager RSS before", f"{one['rss_before_mb']:.1f} MB", ""],
            ["manager RSS right after the POST", f"{j['rss_mb']:.1f} MB", ""],
            ["manager RSS growth", f"{j['rss_mb'] - one['rss_before_mb']:.1f} MB", f"< {GOAL_GROWTH_MB:g} MB"],
            ["manager peak RSS (VmHWM)", f"{one['peak_rss_mb']:.1f} MB", ""],
            ["SQLite files", f"{one['db_bytes'] / 1024:.0f} kB", ""],
        ],
        title=f"one job of {args.tasks:,} tasks",
    )
    growth = j["rss_mb"] - one["rss_before_mb"]
    met_t, met_m = j["submit_seconds"] < GOAL_SECONDS, growth < GOAL_GROWTH_MB
    print(f"goal: submit under {GOAL_SECONDS:g} s -> {j['submit_seconds']:.3f} s {'MET' if met_t else 'NOT MET'}")
    print(f"goal: RSS growth under {GOAL_GROWTH_MB:g} MB -> {growth:.1f} MB {'MET' if met_m else 'NOT MET'}")
    results: dict[str, Any] = {"single": one}

    if args.jobs:
        many = submit_series(args.tasks, args.jobs, args.sync, args.state_parent, args.keep)
        base = many["rss_before_mb"]
        rows: list[list[object]] = []
        for k, r in enumerate(many["jobs"], 1):
            rows.append([r["job"], fmt_num(k * args.tasks), f"{r['submit_seconds']:.3f}",
                         f"{r['get_seconds'] * 1000:.1f}", f"{r['rss_mb']:.1f}", f"{r['rss_mb'] - base:+.1f}"])
        print_table(["job", "tasks so far", "submit s", "GET ms", "RSS MB", "growth MB"], rows,
                    title=f"{args.jobs} jobs of {args.tasks:,} tasks in a row "
                          f"(fresh manager, RSS before: {base:.1f} MB)")
        total = args.jobs * args.tasks
        worst = max(r["submit_seconds"] for r in many["jobs"])
        print(f"after {args.jobs} jobs ({total:,} tasks): RSS {many['rss_after_mb']:.1f} MB, growth "
              f"{many['growth_mb']:+.1f} MB = {many['growth_mb'] * 1024 * 1024 / total:.2f} bytes per task; "
              f"peak {many['peak_rss_mb']:.1f} MB; GET /v1/jobs (list) {many['list_seconds'] * 1000:.1f} ms; "
              f"SQLite {many['db_bytes'] / 1024:.0f} kB")
        met = many["growth_mb"] < GOAL_GROWTH_MB
        print(f"goal: RSS growth under {GOAL_GROWTH_MB:g} MB for all {args.jobs} jobs -> "
              f"{many['growth_mb']:.1f} MB {'MET' if met else 'NOT MET'}; slowest submit {worst:.3f} s "
              f"{'MET' if worst < GOAL_SECONDS else 'NOT MET'}")
        results["series"] = many

    append_json(args.json, "submit", {"tasks": args.tasks, "jobs": args.jobs, "sync": args.sync}, env, results)
    return 0


if __name__ == "__main__":
    main_guard(main)
