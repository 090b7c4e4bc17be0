"""The headline: ``tiercel run`` as a user types it, whole command, against the spawn floor.

In one invocation, interleaved round by round (floor, then Tiercel's two ways):

  floor B   2 threads × ``subprocess.run(["/bin/true", str(i)], capture_output=True)`` for i in 0..N-1:
            what starting N processes with the index as argument and their output kept costs from Python
            on 2 slots. Run in a fresh interpreter, timed from the outside like the command.
  run       ``tiercel run --workers 2 --queue N --quiet -- /bin/true`` (each task gets its index as the
            last argument, as the floor does), timed from the outside: the process's start, a manager
            and a worker started, the job, and the stop, everything the user waits for
  service   a manager and a worker (--slots 2) started beforehand, one job of the same tasks submitted
            with the Python client, timed from the POST until ``Job.wait()`` returns (the client's long
            poll: the manager answers as the job ends); the service-mode figure

Usage: .venv/bin/python bench/run.py [--tasks 10000,100000] [--repeat R] [--json FILE]
The first size is run --repeat times (medians shown), larger ones once each.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
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
    median,
    print_environment,
    print_table,
)

GOAL_RUN = 1.3  # the whole command, at most this many times floor B
GOAL_SERVICE = 1.1  # service mode, the job alone
TIERCEL = [sys.executable, "-m", "tiercel"]

FLOOR = """
import subprocess, sys, threading
n = int(sys.argv[1]); it = iter(range(n)); lock = threading.Lock()
def slot():
    while True:
        with lock:
            i = next(it, None)
        if i is None:
            return
        subprocess.run(["/bin/true", str(i)], capture_output=True)
threads = [threading.Thread(target=slot) for _ in range(2)]
for t in threads: t.start()
for t in threads: t.join()
"""


def timed(argv: list[str], cwd: Path, timeout: float) -> float:
    t0 = time.perf_counter()
    out = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    seconds = time.perf_counter() - t0
    if out.returncode != 0:
        raise BenchError(f"{' '.join(argv[:6])} ... exited {out.returncode}: {(out.stderr or out.stdout)[-800:]}")
    return seconds


def floor_b(n: int, cwd: Path, timeout: float) -> float:
    return timed([sys.executable, "-c", FLOOR, str(n)], cwd, timeout)


def tiercel_run(n: int, cwd: Path, timeout: float) -> float:
    return timed([*TIERCEL, "run", "--workers", "2", "--queue", str(n), "--quiet", "--", "/bin/true"], cwd, timeout)


def service(n: int, parent: Path | None, keep: bool, timeout: float) -> float:
    with Cluster(sync="FULL", parent=parent, keep=keep) as cl:
        cl.start_manager()
        cl.start_worker(2)
        with cl.client() as c:
            cl.wait_workers(c, 1)
            t0 = time.perf_counter()
            job = c.submit(["/bin/true"], queue=n).wait(timeout=timeout)  # the client's long poll
            seconds = time.perf_counter() - t0
    if job.data["state"] != "done" or job.data["done"] != n:
        raise BenchError(f"the service-mode job ended {job.data['state']} with {job.data['done']} of {n} done")
    return seconds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", default="10000,100000", metavar="N,N", help="sizes (default 10000,100000)")
    ap.add_argument("--repeat", type=int, default=3, metavar="R", help="rounds at the first size (default 3)")
    ap.add_argument("--timeout", type=float, default=1800.0, metavar="S", help="give up on one run after S s")
    common_args(ap)
    args = ap.parse_args()
    sizes = [int(x) for x in args.tasks.split(",") if x.strip()]
    if not sizes or min(sizes) < 1 or args.repeat < 1:
        ap.error("--tasks and --repeat must be positive")
    env = environment(args.state_parent)
    print_environment(env)
    print("/bin/true with the index as its argument, 2 slots; floor B: 2 threads x subprocess.run(capture_output=True)")
    results: list[dict[str, Any]] = []
    rows: list[list[object]] = []
    with tempfile.TemporaryDirectory(prefix="tiercel-bench-run-") as tmp:
        cwd = Path(tmp)
        for k, n in enumerate(sizes):
            rounds = args.repeat if k == 0 else 1
            runs: dict[str, list[float]] = {"floor": [], "run": [], "service": []}
            for r in range(rounds):
                print(f"  N={n:,} round {r + 1}/{rounds}:", end="", flush=True)
                for name in ("floor", "run", "service"):
                    if name == "floor":
                        seconds = floor_b(n, cwd, args.timeout)
                    elif name == "run":
                        seconds = tiercel_run(n, cwd, args.timeout)
                    else:
                        seconds = service(n, args.state_parent, args.keep, args.timeout)
                    runs[name].append(seconds)
                    print(f" {name} {runs[name][-1]:.2f}s", end="", flush=True)
                print(f"  (run/floor {runs['run'][-1] / runs['floor'][-1]:.2f})", flush=True)
            f, r_, s = (median(runs[x]) for x in ("floor", "run", "service"))
            results.append({"tasks": n, "rounds": rounds, "floor_b": f, "tiercel_run": r_, "service": s,
                            "run_ratio": r_ / f, "service_ratio": s / f, "runs": runs})
            rows.append([fmt_num(n), str(rounds), f"{f:.2f}", f"{r_:.2f}", f"{r_ / f:.2f}", f"{s:.2f}",
                         f"{s / f:.2f}", fmt_num(n / r_)])
    print_table(["tasks", "rounds", "floor B s", "tiercel run s", "run / floor", "service s", "service / floor",
                 "run tasks/s"], rows, title="tiercel run, the whole command, vs the spawn floor (medians)")
    for res in results:
        print(f"goal: tiercel run <= {GOAL_RUN}x floor B at N={res['tasks']:,} -> {res['run_ratio']:.2f}x "
              f"{'MET' if res['run_ratio'] <= GOAL_RUN else 'NOT MET'}; service mode <= {GOAL_SERVICE}x -> "
              f"{res['service_ratio']:.2f}x {'MET' if res['service_ratio'] <= GOAL_SERVICE else 'NOT MET'}")
    append_json(args.json, "run", {"tasks": sizes, "repeat": args.repeat}, env, results)
    return 0


if __name__ == "__main__":
    main_guard(main)
