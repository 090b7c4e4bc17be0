"""Short tasks on the local Slurm: native arrays vs pilots vs `sbatch --array` by hand, and the pool.

N tasks of /bin/true (each well under a second), one system after the other:

  by hand   sbatch --array chunks of at most MaxArraySize (1001) with --wrap true; timed until squeue
            lists none of them. Each element is a Slurm job step: this is what a user with a script gets.
  native    a Tiercel manager with a Slurm site in native mode (poll every 1 s): the job becomes arrays
            of ≤1001 elements; each element runs the sh script of tiercel.sites.shim (no Python on the
            node), which leaves its exit status and output for the site's poll to report back
  pilots    the same site in pilot mode: up to P pilots of S slots each, started by sbatch when the job
            waits, pulling tasks over the worker channel
  pool      the same number of slots as the pilots, as ordinary workers started by hand (the goal for
            pilots: approach this while issuing a handful of sbatch calls)

For each: wall time, tasks/s, and the batch-system commands issued (sbatch, squeue, scancel).
Slurm must be running (make test starts it: scripts/services/slurm_up.sh, run as root).

Usage: .venv/bin/python bench/sites.py [--tasks N] [--pilots P] [--slots S] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
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
    print_environment,
    print_table,
    run_job,
)

MAX_ARRAY = 1001


def slurm_ready() -> None:
    if shutil.which("sbatch") is None or subprocess.run(["scontrol", "ping"], capture_output=True).returncode:
        raise BenchError("Slurm is not running: start it with scripts/services/slurm_up.sh (as root)")


def by_hand(tasks: int, workdir: Path) -> dict[str, Any]:
    commands = {"sbatch": 0, "squeue": 0}
    ids = []
    t0 = time.perf_counter()
    for start in range(0, tasks, MAX_ARRAY):
        stop = min(tasks, start + MAX_ARRAY) - 1
        out = subprocess.run(["sbatch", "--parsable", f"--array=0-{stop - start}", "--job-name=bench-hand",
                              f"--output={workdir}/%A_%a.out", "--wrap", "true"],
                             capture_output=True, text=True, check=True)
        commands["sbatch"] += 1
        ids.append(out.stdout.strip().split(";")[0])
    while True:
        commands["squeue"] += 1
        left = subprocess.run(["squeue", "-h", "-o", "%i", "-j", ",".join(ids)], capture_output=True, text=True)
        if not left.stdout.strip():
            break
        time.sleep(1.0)
    return {"seconds": time.perf_counter() - t0, "commands": commands}


def tiercel(tasks: int, config: str, *, site: str | None = "slurm", workers: int = 0, slots: int = 1
            ) -> dict[str, Any]:
    with Cluster() as cluster:
        path = cluster.state / "tiercel.toml"
        path.write_text(config.format(spool=cluster.state / "spool"))
        cluster.start_manager("--config", str(path))
        client = cluster.client()
        for n in range(workers):
            cluster.start_worker(slots, name=f"pool-{n}")
        if workers:
            cluster.wait_workers(client, workers)
        spec: dict[str, Any] = {"command": ["true"], "queue": tasks, "append_index": False}
        if site:
            spec["site"] = site
        run = run_job(client, spec, poll=0.5,
                      timeout=3600, check=cluster.check_alive)
        if run.data["done"] != tasks:
            raise BenchError(f"only {run.data['done']} of {tasks} tasks done: {run.data}")
        rows = {r["name"]: r for r in client.json("GET", "/v1/sites")}
        commands = rows.get("slurm", {}).get("commands", {})
        return {"seconds": run.seconds, "commands": commands}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--pilots", type=int, default=2, help="pilots at most (pilot mode)")
    parser.add_argument("--slots", type=int, default=4, help="slots per pilot, and per pool worker")
    common_args(parser)
    args = parser.parse_args()
    slurm_ready()
    env = environment()
    print_environment(env)
    site = '[sites.slurm]\nkind = "slurm"\npoll_interval = "1s"\nspool = "{spool}"\n'
    pilots = (site + f'mode = "pilot"\nmax_pilots = {args.pilots}\nslots = {args.slots}\n'
              'pilot_walltime = "2h"\nidle_timeout = "20s"\n')
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="tiercel-bench-hand-") as d:
        results["sbatch --array by hand"] = by_hand(args.tasks, Path(d))
    results["tiercel native arrays"] = tiercel(args.tasks, site + 'mode = "native"\nmax_in_flight = 10000\n')
    results[f"tiercel pilots ({args.pilots}×{args.slots} slots)"] = tiercel(args.tasks, pilots)
    results[f"tiercel pool ({args.pilots}×{args.slots} slots)"] = tiercel(
        args.tasks, "", site=None, workers=args.pilots, slots=args.slots)
    base = results["sbatch --array by hand"]["seconds"]
    rows = []
    for name, r in results.items():
        c = r["commands"]
        rows.append([name, fmt_num(r["seconds"], 1), fmt_num(args.tasks / r["seconds"], 1),
                     fmt_num(base / r["seconds"], 2), c.get("sbatch", 0), c.get("squeue", 0),
                     c.get("scancel", 0)])
    print_table(["system", "seconds", "tasks/s", "speed vs by hand", "sbatch", "squeue", "scancel"], rows,
                title=f"{args.tasks:,} × true on the local Slurm")
    append_json(args.json, "sites", vars(args) | {"json": None}, env,
                {k: {"seconds": v["seconds"], "commands": v["commands"]} for k, v in results.items()})
    print(json.dumps({k: round(v["seconds"], 2) for k, v in results.items()}))
    return 0


if __name__ == "__main__":
    main_guard(main)
