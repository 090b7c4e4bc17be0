"""How fast the command line answers: each command that talks to a manager, against `python3 -c pass`.

A manager and one worker on 127.0.0.1; each command runs as a user runs it (the `tiercel` entry
point, a new process each time), R times, interleaved with the bare interpreter, and the median
wall time is shown with its ratio to the interpreter. Goal: every command < 150 ms, and a one-task
job's `submit` then `wait` < 300 ms.

Usage: .venv/bin/python bench/cli_latency.py [--repeat R] [--json FILE]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from common import (
    Cluster,
    append_json,
    common_args,
    environment,
    main_guard,
    median,
    print_environment,
    print_table,
)

GOAL_MS = 150.0
PAIR_GOAL_MS = 300.0
TIERCEL = str(Path(sys.executable).with_name("tiercel"))


def timed(argv: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, timeout=60)
    seconds = time.perf_counter() - t0
    if done.returncode not in (0, 1):
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.decode()[-500:]}")
    return seconds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=15, metavar="R", help="runs of each command (default 15)")
    common_args(ap)
    args = ap.parse_args()
    env_info = environment(args.state_parent)
    print_environment(env_info)
    with Cluster(sync="FULL", parent=args.state_parent, keep=args.keep) as cl:
        cl.start_manager()
        cl.start_worker(2, name="w")
        with cl.client() as c:
            cl.wait_workers(c, 1)
            job = c.submit(["true"], queue=10).wait(timeout=60)
        env = {**os.environ, "TIERCEL_URL": cl.url, "TIERCEL_TOKEN": cl.admin_token, "NO_COLOR": "1"}
        commands: dict[str, list[str]] = {
            "python3 -c pass": [sys.executable, "-c", "pass"],
            "tiercel --version": [TIERCEL, "--version"],
            "tiercel status": [TIERCEL, "status"],
            f"tiercel status {job.id}": [TIERCEL, "status", str(job.id)],
            "tiercel workers": [TIERCEL, "workers"],
            f"tiercel logs {job.id}": [TIERCEL, "logs", str(job.id)],
            f"tiercel wait {job.id}": [TIERCEL, "wait", str(job.id)],
            "tiercel submit --hold -- true": [TIERCEL, "submit", "--hold", "--", "true"],
            "tiercel cancel (the held one)": [],  # filled per round
        }
        times: dict[str, list[float]] = {name: [] for name in commands}
        pairs: list[float] = []
        for _ in range(args.repeat):
            for name, argv in commands.items():
                if not argv:
                    continue
                times[name].append(timed(argv, env))
            held = c.jobs()[0]["id"]
            times["tiercel cancel (the held one)"].append(timed([TIERCEL, "cancel", str(held)], env))
            t0 = time.perf_counter()
            out = subprocess.run([TIERCEL, "submit", "--json", "--", "true"], env=env, capture_output=True,
                                 timeout=60, text=True)
            new = out.stdout.split('"id": ')[1].split(",")[0]
            subprocess.run([TIERCEL, "wait", "-q", new], env=env, capture_output=True, timeout=60)
            pairs.append(time.perf_counter() - t0)
    floor = median(times["python3 -c pass"])
    rows: list[list[object]] = []
    results: dict[str, Any] = {}
    for name, xs in times.items():
        m = median(xs)
        results[name] = m
        met = "" if name == "python3 -c pass" else ("MET" if m * 1000 < GOAL_MS else "NOT MET")
        rows.append([name, f"{m * 1000:.0f}", f"{min(xs) * 1000:.0f}", f"{max(xs) * 1000:.0f}",
                     f"{m / floor:.1f}x", met])
    pair = median(pairs)
    results["submit + wait of a one-task job"] = pair
    rows.append(["submit + wait of a one-task job", f"{pair * 1000:.0f}", f"{min(pairs) * 1000:.0f}",
                 f"{max(pairs) * 1000:.0f}", f"{pair / floor:.1f}x",
                 "MET" if pair * 1000 < PAIR_GOAL_MS else "NOT MET"])
    print_table(["command", "median ms", "min", "max", "vs python", f"goal < {GOAL_MS:.0f} ms"], rows,
                title=f"the command line against a live manager, median of {args.repeat}")
    append_json(args.json, "cli_latency", {"repeat": args.repeat}, env_info, results)
    return 0


if __name__ == "__main__":
    main_guard(main)
