"""Policies side by side on real traces: FCFS vs EASY backfill vs fair share (+ backfill).

Runs the simulator (the manager's own engine and policies, in virtual time) over the SWF traces in
../shared/data/traces and prints utilisation, mean wait, mean and p95 bounded
slowdown (threshold 10 s), makespan and the simulator's own speed (jobs/s).

Usage: .venv/bin/python bench/policies.py [--json FILE] [--limit N]
"""

from __future__ import annotations

import argparse
import gzip
import time
from pathlib import Path

from common import append_json, environment, main_guard, print_environment, print_table

from tiercel.core.problems import Problem
from tiercel.core.sim import SimJob, simulate
from tiercel.core.sim.swf import SwfJob, parse_line
from tiercel.queues import single

TRACES = Path(__file__).resolve().parents[2] / "shared" / "data" / "traces"
CHAINS = (["fcfs"], ["backfill"], ["fairshare", "backfill"])
CASES = (
    # trace, slots, submit-time scale, label
    ("NASA-iPSC-1993-3.1-cln.swf.gz", 128, 1.0, "NASA iPSC/860, 128 nodes, as recorded"),
    ("NASA-iPSC-1993-3.1-cln.swf.gz", 128, 0.5, "NASA iPSC/860, 128 nodes, arrivals twice as fast"),
    ("LCG-2005-1.swf.gz", 2000, 1.0, "LCG grid, first 100,000 jobs on 2,000 slots"),
)


def load(path: Path, scale: float, limit: int | None) -> list[SimJob]:
    jobs: list[SimJob] = []
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            item = parse_line(line, lineno)
            if isinstance(item, SwfJob):
                jobs.append(SimJob(item.id, item.user, item.submit * scale, item.runtime, item.procs,
                                   max(item.requested_time or 0.0, item.runtime)))
            elif isinstance(item, Problem):
                print(f"  skipped {item.message()}")
            if limit is not None and len(jobs) >= limit:
                break
    return jobs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=100_000, help="jobs per trace (default 100,000)")
    parser.add_argument("--json", type=Path, help="append results to this file, one JSON object per line")
    args = parser.parse_args()
    env = environment()
    print_environment(env)
    results = []
    for trace, slots, scale, label in CASES:
        jobs = load(TRACES / trace, scale, args.limit)
        rows = []
        for names in CHAINS:
            queue = single(names)
            assert not isinstance(queue, Problem)
            started = time.perf_counter()
            r = simulate(jobs, slots, queue.chain)
            elapsed = time.perf_counter() - started
            policies = "+".join(n for n in queue.policies if n != "fcfs") or "fcfs"
            rows.append([policies, f"{r.jobs:,}", f"{r.utilisation:.1%}", f"{r.mean_wait:,.0f}",
                         f"{r.mean_bounded_slowdown:,.2f}", f"{r.p95_bounded_slowdown:,.2f}", f"{r.makespan:,.0f}",
                         f"{elapsed:.1f}", f"{r.jobs / elapsed:,.0f}"])
            results.append({"trace": trace, "slots": slots, "scale": scale, "policies": list(queue.policies),
                            "jobs": r.jobs, "skipped": r.skipped, "utilisation": r.utilisation,
                            "mean_wait": r.mean_wait, "mean_bounded_slowdown": r.mean_bounded_slowdown,
                            "p95_bounded_slowdown": r.p95_bounded_slowdown, "makespan": r.makespan,
                            "seconds": elapsed})
        print_table(["policy", "jobs", "util", "mean wait s", "mean bsld", "p95 bsld", "makespan s", "sim s",
                     "jobs/s"], rows, title=label)
    append_json(args.json, "policies", {"limit": args.limit}, env, results)
    return 0


if __name__ == "__main__":
    main_guard(main)
