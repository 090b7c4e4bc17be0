"""A Snakemake workflow on Tiercel workers against Snakemake's own local executor.

The workflow is split → N steps → merge (each step squares a number, the merge concatenates them;
``--sleep S`` makes each step also sleep S seconds). It runs twice on the same machine with the same
parallelism: with ``snakemake --executor tiercel --jobs 100`` on a manager with one worker of
``--slots`` slots, and with ``snakemake --cores SLOTS`` (the local executor, which runs each job's
command itself). For each: the wall time of the whole ``snakemake`` command, and for Tiercel the
requests the plugin made to the manager — one submission per job, the status requests (one per
status round for all active jobs; ``--interval`` seconds apart), and what polling each job on its
own would have cost (the sum over rounds of the jobs asked about). A job under Tiercel runs as its
own ``python -m snakemake`` process on the worker, as under every cluster executor: the gap between
the two wall times is mostly that start-up, paid once per job.

The plugin must be installed (``make test`` does it; or
``.venv/bin/pip install -e integrations/snakemake-executor-plugin-tiercel``).

Usage: .venv/bin/python bench/snakemake_flow.py [--steps N] [--slots K] [--sleep S] [--interval I] [--repeat R]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

from common import (
    BenchError,
    Cluster,
    append_json,
    common_args,
    environment,
    main_guard,
    median,
    print_environment,
    print_table,
)

STATUS_LINE = re.compile(r"tiercel: status request (\d+): (\d+) active jobs in one request")
SUMMARY_LINE = re.compile(r"tiercel: (\d+) jobs submitted; their state read in (\d+) status requests")


def write_workflow(workdir: Path, steps: int, sleep: float) -> None:
    pause = f"sleep {sleep:g}; " if sleep > 0 else ""
    workdir.mkdir(parents=True)
    (workdir / "Snakefile").write_text(textwrap.dedent(f"""\
        N = {steps}

        rule all:
            input: "merged.txt"

        rule split:
            output: expand("parts/{{i}}.txt", i=range(N))
            run:
                for i, path in enumerate(output):
                    with open(path, "w") as f:
                        f.write(f"{{i}}\\n")

        rule step:
            input: "parts/{{i}}.txt"
            output: "steps/{{i}}.txt"
            shell: "{pause}n=$(cat {{input}}); echo $((n * n)) > {{output}}"

        rule merge:
            input: expand("steps/{{i}}.txt", i=range(N))
            output: "merged.txt"
            shell: "cat {{input}} > {{output}}"
        """))


def check_merged(workdir: Path, steps: int) -> None:
    got = (workdir / "merged.txt").read_text().split()
    if got != [str(i * i) for i in range(steps)]:
        raise BenchError(f"wrong merged output in {workdir}: {got[:5]}...")


def snakemake(args: list[str], workdir: Path, env: dict[str, str], timeout: float) -> tuple[float, str]:
    """Run ``python -m snakemake ARGS`` in ``workdir``; its wall time and its log (stderr)."""
    t0 = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=workdir, env=env, capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BenchError(f"snakemake {' '.join(args)} did not finish within {timeout:g}s") from None
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise BenchError(f"snakemake {' '.join(args)} exited with {done.returncode}: {done.stderr[-1500:]}")
    return seconds, done.stderr


def run_local(root: Path, steps: int, slots: int, sleep: float, timeout: float) -> dict[str, Any]:
    workdir = root / "local"
    write_workflow(workdir, steps, sleep)
    seconds, _ = snakemake(["--cores", str(slots)], workdir, dict(os.environ), timeout)
    check_merged(workdir, steps)
    return {"seconds": seconds, "jobs": steps + 2}


def run_tiercel(root: Path, steps: int, slots: int, sleep: float, interval: int, timeout: float,
                parent: Path | None, keep: bool) -> dict[str, Any]:
    workdir = root / "tiercel"
    write_workflow(workdir, steps, sleep)
    with Cluster(parent=parent, keep=keep) as cl:
        cl.start_manager()
        cl.start_worker(slots)
        with cl.client() as c:
            cl.wait_workers(c, 1)
            env = {**os.environ, "TIERCEL_URL": cl.url, "TIERCEL_TOKEN": cl.admin_token}
            seconds, log = snakemake(["--executor", "tiercel", "--jobs", "100", "--verbose",
                                      "--seconds-between-status-checks", str(interval)], workdir, env, timeout)
            jobs = c.jobs(everyone=True)
        cl.check_alive()
    check_merged(workdir, steps)
    summary = SUMMARY_LINE.search(log)
    rounds = [int(k) for _, k in STATUS_LINE.findall(log)]
    if summary is None or int(summary.group(2)) != len(rounds):
        raise BenchError(f"the plugin's summary and its status lines disagree: {log[-1500:]}")
    submitted = int(summary.group(1))
    if submitted != len(jobs) or any(j["state"] != "done" for j in jobs):
        raise BenchError(f"expected {submitted} done Tiercel jobs, found {[(j['id'], j['state']) for j in jobs]}")
    return {"seconds": seconds, "jobs": submitted, "submits": submitted, "status_requests": len(rounds),
            "per_job_polls": sum(rounds), "most_at_once": max(rounds, default=0)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=50, metavar="N", help="parallel steps between split and merge "
                                                                       "(default 50)")
    ap.add_argument("--slots", type=int, default=2, metavar="K",
                    help="worker slots, and --cores of the local run (default 2)")
    ap.add_argument("--sleep", type=float, default=0.0, metavar="S", help="seconds each step sleeps (default 0)")
    ap.add_argument("--interval", type=int, default=1, metavar="I",
                    help="snakemake --seconds-between-status-checks for the Tiercel run (default 1)")
    ap.add_argument("--repeat", type=int, default=1, metavar="R", help="runs of each; medians shown (default 1)")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds allowed per snakemake run (default 900)")
    common_args(ap)
    args = ap.parse_args()
    if args.steps < 1 or args.slots < 1 or args.interval < 1 or args.repeat < 1 or args.sleep < 0:
        ap.error("--steps, --slots, --interval and --repeat must be at least 1, --sleep at least 0")
    if importlib.util.find_spec("snakemake_executor_plugin_tiercel") is None:
        raise BenchError("the Snakemake plugin is not installed: "
                         ".venv/bin/pip install -e integrations/snakemake-executor-plugin-tiercel")

    env = environment(args.state_parent)
    print_environment(env)
    print(f"workflow: split -> {args.steps} steps -> merge ({args.steps + 2} jobs, and the local rule 'all'); "
          f"{args.slots} worker slots / --cores {args.slots}; steps sleep {args.sleep:g} s; "
          f"status checks every {args.interval} s")

    locals_: list[dict[str, Any]] = []
    tiercels: list[dict[str, Any]] = []
    for _ in range(args.repeat):
        root = Path(tempfile.mkdtemp(prefix="tiercel-snakemake-", dir=args.state_parent))
        try:
            locals_.append(run_local(root, args.steps, args.slots, args.sleep, args.timeout))
            tiercels.append(run_tiercel(root, args.steps, args.slots, args.sleep, args.interval, args.timeout,
                                        args.state_parent, args.keep))
        finally:
            if not args.keep:
                shutil.rmtree(root, ignore_errors=True)

    local_s = median([r["seconds"] for r in locals_])
    tiercel_s = median([r["seconds"] for r in tiercels])
    t = sorted(tiercels, key=lambda r: r["seconds"])[len(tiercels) // 2]  # request counts of the middle run
    print_table(
        ["executor", "jobs", "wall s", "per job s", "submits", "status requests", "per-job polling would be"],
        [
            [f"local (--cores {args.slots})", locals_[0]["jobs"], f"{local_s:.1f}",
             f"{local_s / locals_[0]['jobs']:.2f}", "-", "-", "-"],
            [f"tiercel ({args.slots} slots)", t["jobs"], f"{tiercel_s:.1f}", f"{tiercel_s / t['jobs']:.2f}",
             t["submits"], t["status_requests"], t["per_job_polls"]],
        ],
        title=f"split -> {args.steps} steps -> merge" + (f" (median of {args.repeat})" if args.repeat > 1 else ""),
    )
    print(f"tiercel: {t['status_requests']} status requests for {t['jobs']} jobs (at most {t['most_at_once']} active "
          f"in one request); {t['submits'] + t['status_requests'] + 1} requests in all (with the start-up check)")
    append_json(args.json, "snakemake_flow",
                {"steps": args.steps, "slots": args.slots, "sleep": args.sleep, "interval": args.interval,
                 "repeat": args.repeat}, env, {"local": locals_, "tiercel": tiercels})
    return 0


if __name__ == "__main__":
    main_guard(main)
