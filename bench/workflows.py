"""Dependencies at scale: a layered DAG of many jobs, and two arrays joined task by task (corr).

1. A workflow of L layers of W one-task jobs, each job after K jobs of the layer before (10,000
   jobs and 49,500 edges by default), submitted whole with POST /v1/workflows: the time until the
   manager has stored it (goal < 2 s), then the time until every job is done on noop workers, and
   that per job (the scheduling overhead of a dependency, next to a run of as many independent
   one-task jobs).
2. Two N-task arrays, the second after the first with corr (task i after task i), against one
   2N-task array, on the same noop workers: the ratio of their wall times (goal <= 1.2).

Usage: .venv/bin/python bench/workflows.py [--layers L] [--width W] [--fan K] [--tasks N] [--json FILE]
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
    print_environment,
    print_table,
    run_job,
)

from tiercel.client import Client

SUBMIT_GOAL = 2.0
CORR_GOAL = 1.2


def noop_cluster(parent: Path | None, keep: bool, workers: int = 2, slots: int = 64) -> Cluster:
    cl = Cluster(sync="FULL", parent=parent, keep=keep)
    cl.start_manager()
    for k in range(workers):
        cl.start_worker(slots, executor="noop", name=f"noop-{k}")
    return cl


def wait_all(c: Client, ids: list[int], timeout: float) -> float:
    """Poll the jobs' states in batches until every one has ended; when the last was seen ended."""
    deadline = time.monotonic() + timeout
    left = set(ids)
    while left:
        if time.monotonic() > deadline:
            raise BenchError(f"{len(left)} of {len(ids)} jobs had not ended within {timeout:g}s")
        for row in c.jobs_by_id(sorted(left)):
            if row["state"] in ("done", "failed", "cancelled"):
                if row["state"] != "done":
                    raise BenchError(f"job {row['id']} ended {row['state']}: {row.get('reason')}")
                left.discard(int(row["id"]))
        if left:
            time.sleep(0.05)
    return time.perf_counter()


def bench_dag(layers: int, width: int, fan: int, parent: Path | None, keep: bool, timeout: float) -> dict[str, Any]:
    jobs: list[dict[str, Any]] = []
    for layer in range(layers):
        for i in range(width):
            after = [f"j{layer - 1}_{(i + k) % width}" for k in range(fan)] if layer else []
            jobs.append({"name": f"j{layer}_{i}", "command": ["/bin/true"], "append_index": False, "after": after})
    edges = sum(len(j["after"]) for j in jobs)
    with noop_cluster(parent, keep) as cl, cl.client() as c:
        cl.wait_workers(c, 2)
        t0 = time.perf_counter()
        made = c.json("POST", "/v1/workflows", json={"name": "dag", "jobs": jobs}, timeout=120)
        submitted = time.perf_counter() - t0
        ids = [int(j["id"]) for j in made["jobs"]]
        ended = wait_all(c, ids, timeout)
        dag_seconds = ended - t0
        # as many independent one-task jobs, one POST each, on the same manager and workers
        t1 = time.perf_counter()
        plain = [c.submit(["/bin/true"], append_index=False).id for _ in range(len(jobs))]
        plain_submit = time.perf_counter() - t1
        plain_seconds = wait_all(c, plain, timeout) - t1
    return {"jobs": len(jobs), "edges": edges, "submit_seconds": submitted, "dag_seconds": dag_seconds,
            "per_job_ms": 1000 * (dag_seconds - submitted) / len(jobs), "plain_seconds": plain_seconds,
            "plain_submit_seconds": plain_submit,
            "plain_per_job_ms": 1000 * (plain_seconds - plain_submit) / len(jobs)}


def bench_corr(n: int, parent: Path | None, keep: bool, timeout: float) -> dict[str, Any]:
    with noop_cluster(parent, keep) as cl, cl.client() as c:
        cl.wait_workers(c, 2)
        one = run_job(c, {"command": ["/bin/true"], "queue": 2 * n, "append_index": False}, timeout=timeout)
        t0 = time.perf_counter()
        first = c.submit(["/bin/true"], queue=n, append_index=False)
        second = run_job(c, {"command": ["/bin/true"], "queue": n, "append_index": False,
                             "after": [f"{first.id}:corr"]}, timeout=timeout)
        pair = time.perf_counter() - t0
        if first.refresh().state != "done" or second.data["state"] != "done":
            raise BenchError(f"the corr pair ended {first.state} and {second.data['state']}: {second.data}")
    return {"tasks": n, "one_array_seconds": one.seconds, "corr_pair_seconds": pair, "ratio": pair / one.seconds}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", type=int, default=100, metavar="L", help="layers of the DAG (default 100)")
    ap.add_argument("--width", type=int, default=100, metavar="W", help="jobs per layer (default 100)")
    ap.add_argument("--fan", type=int, default=5, metavar="K", help="parents of each job (default 5)")
    ap.add_argument("--tasks", type=int, default=100_000, metavar="N", help="tasks of each corr array")
    ap.add_argument("--only", default="dag,corr", metavar="PARTS", help="dag and/or corr (default both)")
    ap.add_argument("--timeout", type=float, default=900.0, metavar="S", help="give up on one part after S s")
    common_args(ap)
    args = ap.parse_args()
    parts = {p.strip() for p in args.only.split(",") if p.strip()}
    env = environment(args.state_parent)
    print_environment(env)
    results: dict[str, Any] = {}
    if "dag" in parts:
        dag = results["dag"] = bench_dag(args.layers, args.width, args.fan, args.state_parent, args.keep,
                                         args.timeout)
        print_table(["what", "jobs", "edges", "submit s", "all done s", "ms per job"], [
            ["layered DAG (one workflow)", fmt_num(dag["jobs"]), fmt_num(dag["edges"]),
             f"{dag['submit_seconds']:.2f}", f"{dag['dag_seconds']:.2f}", f"{dag['per_job_ms']:.2f}"],
            ["independent one-task jobs", fmt_num(dag["jobs"]), "0", f"{dag['plain_submit_seconds']:.2f}",
             f"{dag['plain_seconds']:.2f}", f"{dag['plain_per_job_ms']:.2f}"],
        ], title=f"{args.layers} layers x {args.width} jobs, each after {args.fan} of the layer before; noop workers")
        print(f"goal: submit < {SUBMIT_GOAL:g} s -> {dag['submit_seconds']:.2f} s "
              f"{'MET' if dag['submit_seconds'] < SUBMIT_GOAL else 'NOT MET'}")
    if "corr" in parts:
        corr = results["corr"] = bench_corr(args.tasks, args.state_parent, args.keep, args.timeout)
        print_table(["what", "tasks", "wall s"], [
            [f"one array of {fmt_num(2 * args.tasks)}", fmt_num(2 * args.tasks), f"{corr['one_array_seconds']:.2f}"],
            [f"two arrays of {fmt_num(args.tasks)}, the second after:corr", fmt_num(2 * args.tasks),
             f"{corr['corr_pair_seconds']:.2f}"],
        ], title="corr against one array, 2 noop workers x 64 slots")
        met = "MET" if corr["ratio"] <= CORR_GOAL else "NOT MET"
        print(f"goal: ratio <= {CORR_GOAL:g} -> {corr['ratio']:.2f} {met}")
    append_json(args.json, "workflows", vars(args) | {"state_parent": str(args.state_parent)}, env, results)
    return 0


if __name__ == "__main__":
    main_guard(main)
