"""Data-aware placement against data-blind placement, on the same job, workers and real Gfarm.

A Gfarm of three file-system nodes on loopback (scripts/services/gfarm_up.sh), one worker per node
that is used, N tasks each reading its own file of S bytes. Copies between nodes are held to a
fixed rate (--rate, a bandwidth limit on the copy step: the kernel here shapes no traffic).

* data-aware: the job names its inputs (--input gfarm:///.../f_{index}); Tiercel places each task
  where its file is, and copies a file to a free node only when that beats waiting (once).
* data-blind: the same command without --input, placed by the pool's default (first come, first
  served on whichever worker is free); a task whose node lacks its file copies it there first
  (gfrep, at the same rate), as a user would script it.

Two scenarios: "free" (files split between nodes 1 and 2, workers on both: every task can read
locally), and "node3" (files on nodes 1 and 2, a third worker on node 3 that holds nothing).
Reported: wall time, tasks that read a replica already on their node, replicas made, bytes copied
and their ratio to the minimum the job's placement needed (each missing file to each node that
ran its task, once). Goals: within 1.1x of that minimum, and >= 95 % local reads in "free".

Usage: .venv/bin/python bench/data_placement.py [--tasks N] [--size BYTES] [--rate BYTES/S] [--json FILE]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from common import (
    TIERCEL,
    BenchError,
    Cluster,
    append_json,
    common_args,
    environment,
    main_guard,
    print_environment,
    print_table,
    spawn,
)

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ROOT / "scripts" / "services"

BLIND = """f={folder}/in/f_$TIERCEL_TASK_INDEX
if gfwhere "$f" | grep -qw "$BENCH_NODE"; then echo "local $BENCH_NODE"
else gfrep -q -D "$BENCH_NODE" "$f" && sleep {copy_s} && echo "copied $BENCH_NODE"; fi
gfexport -h "$BENCH_NODE" "$f" > /dev/null && sleep {task_s}"""
AWARE = 'cat $TIERCEL_INPUTS > /dev/null && echo "local $TIERCEL_DATA_NODE" && sleep {task_s}'


def gf(*argv: str, check: bool = True) -> str:
    out = subprocess.run(list(argv), capture_output=True, text=True, timeout=600)
    if check and out.returncode != 0:
        raise BenchError(f"{' '.join(argv)} failed: {out.stderr[-500:]}")
    return out.stdout


def start_gfarm(root: Path) -> dict[str, str]:
    env = {**os.environ, "GF_DIR": str(root / "gfarm"), "GF_PORT": "10701", "GF_NODE_PORT": "10710"}
    out = subprocess.run(["bash", str(SERVICES / "gfarm_up.sh")], env=env, capture_output=True, text=True,
                         timeout=900)
    if out.returncode != 0:
        raise BenchError(f"gfarm_up.sh failed: {out.stderr[-1500:]}")
    os.environ["GFARM_CONFIG_FILE"] = str(root / "gfarm" / "etc" / "gfarm2.conf")
    return env


def put_files(folder: str, n: int, size: int, placement: list[list[str]]) -> list[str]:
    """n files, file i on the nodes placement[i % len(placement)]."""
    gf("gfmkdir", "-p", folder + "/in")
    gf("gfchmod", "1777", folder)
    with tempfile.TemporaryDirectory() as tmp:
        blob = os.urandom(size)
        for group, nodes in enumerate(placement):
            local = Path(tmp, f"g{group}", "in")
            local.mkdir(parents=True)
            for i in range(group, n, len(placement)):
                (local / f"f_{i}").write_bytes(blob[i % 97:] + blob[:i % 97])
            Path(tmp, f"h{group}").write_text(nodes[0] + "\n")
            gf("gfpcopy", "-q", "-B", "-H", str(Path(tmp, f"h{group}")), str(local), f"gfarm://{folder}")
            for node in nodes[1:]:
                gf("gfrep", "-q", "-D", node, *[f"{folder}/in/f_{i}" for i in range(group, n, len(placement))])
    return [f"{folder}/in/f_{i}" for i in range(n)]


def where(paths: list[str]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for start in range(0, len(paths), 500):
        chunk = paths[start:start + 500]
        text = gf("gfwhere", *chunk, check=False)
        current = None
        for line in text.splitlines():
            if line.endswith(":") and line[:-1] in chunk:
                current = line[:-1]
            elif current and line.strip():
                out[current] = set(line.split())
                current = None
    return out


def run(mode: str, scenario: str, nodes: list[str], placement: list[list[str]], args: argparse.Namespace,
        parent: Path) -> dict[str, Any]:
    folder = f"/bench/{uuid.uuid4().hex[:10]}"
    files = put_files(folder, args.tasks, args.size, placement)
    before = where(files)
    with Cluster(parent=parent) as cl:
        config = cl.state / "manager.toml"  # copies held to the rate: [data] copy_rate
        config.write_text(f'[data]\ncopy_rate = "{args.rate:.0f}B/s"\n')
        cl.start_manager("--config", str(config))
        for node in nodes:
            cl.workers.append(spawn([*TIERCEL, "worker", "--manager", cl.url, "--slots", str(args.slots),
                                     "--token-file", str(cl.state / "worker.token"), "--data-host", node,
                                     "--name", node], cl.log, env={**os.environ, "BENCH_NODE": node}))
        with cl.client() as c:
            cl.wait_workers(c, len(nodes))
            task_s, copy_s = f"{args.task_seconds:g}", f"{args.size / args.rate:.3f}"
            t0 = time.perf_counter()
            if mode == "aware":
                job = c.submit(AWARE.format(task_s=task_s), queue=args.tasks, append_index=False,
                               inputs=[f"gfarm://{folder}/in/f_{{index}}"])
            else:
                job = c.submit(BLIND.format(folder=folder, task_s=task_s, copy_s=copy_s), queue=args.tasks,
                               append_index=False)
            job.wait(timeout=1800, poll=0.05)
            wall = time.perf_counter() - t0
            if job.state != "done":
                raise BenchError(f"{mode} job ended {job.state}: {cl.tail_log()}")
            ran = {o.index: o.stdout.decode().split() for o in job.outputs()}
    after = where(files)
    copies = sum(len(after[f] - before[f]) for f in files)
    local = sum(1 for i, f in enumerate(files) if ran[i] and ran[i][0] == "local" and ran[i][1] in before[f])
    if mode == "aware":  # a task on a node its file was copied to first reads locally, after one copy
        local = sum(1 for i, f in enumerate(files) if ran[i][1] in before[f])
    needed = {(f, ran[i][1]) for i, f in enumerate(files) if ran[i][1] not in before[f]}
    return {"scenario": scenario, "mode": mode, "wall_s": round(wall, 2), "local": local, "tasks": args.tasks,
            "replicas_made": copies, "bytes_copied": copies * args.size, "min_bytes": len(needed) * args.size}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=int, default=120, help="tasks, each reading its own file (default 120)")
    ap.add_argument("--size", type=int, default=1_000_000, help="bytes per file (default 1 MB)")
    ap.add_argument("--rate", type=float, default=10e6, help="copy rate between nodes, bytes/s (default 10 MB/s)")
    ap.add_argument("--task-seconds", type=float, default=0.3, help="what each task does after reading (sleep)")
    ap.add_argument("--slots", type=int, default=2, help="slots per worker (default 2)")
    common_args(ap)
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise BenchError("starting Gfarm needs root")
    env_info = environment(args.state_parent)
    print_environment(env_info)
    root = Path(tempfile.mkdtemp(prefix="tiercel-bench-gfarm-", dir=args.state_parent))
    root.chmod(0o755)
    gf_env = start_gfarm(root)
    results: list[dict[str, Any]] = []
    try:
        scenarios = [("free", ["gfnode1", "gfnode2"], [["gfnode1"], ["gfnode2"]]),
                     ("node3", ["gfnode1", "gfnode2", "gfnode3"], [["gfnode1", "gfnode2"]])]
        for scenario, nodes, placement in scenarios:
            for mode in ("blind", "aware"):
                parent = args.state_parent or Path(tempfile.gettempdir())
                results.append(run(mode, scenario, nodes, placement, args, parent))
                print(f"  {scenario} {mode}: {results[-1]}", file=sys.stderr)
    finally:
        subprocess.run(["bash", str(SERVICES / "gfarm_down.sh"), "--purge"], env=gf_env, capture_output=True,
                       timeout=120)
        shutil.rmtree(root, ignore_errors=True)
    rows = []
    for r in results:
        ratio = r["bytes_copied"] / r["min_bytes"] if r["min_bytes"] else 1.0
        rows.append([r["scenario"], r["mode"], f"{r['wall_s']:.2f}", f"{100 * r['local'] / r['tasks']:.1f}",
                     r["replicas_made"], f"{r['bytes_copied'] / 1e6:.1f}", f"{r['min_bytes'] / 1e6:.1f}",
                     f"{ratio:.2f}"])
    print_table(["scenario", "placement", "wall s", "local reads %", "replicas made", "MB copied",
                 "min MB", "copied/min"], rows,
                title=f"{args.tasks} tasks x {args.size / 1e6:g} MB, copies at {args.rate / 1e6:g} MB/s, "
                      f"{args.task_seconds:g} s per task, {args.slots} slots per worker")
    for scenario in ("free", "node3"):
        b, a = (next(r for r in results if r["scenario"] == scenario and r["mode"] == m) for m in ("blind", "aware"))
        print(f"{scenario}: wall time aware/blind {a['wall_s'] / b['wall_s']:.2f}x; "
              f"bytes copied aware/blind {a['bytes_copied'] / max(1, b['bytes_copied']):.2f}x")
    append_json(args.json, "data_placement", vars(args) | {"json": None, "state_parent": None}, env_info, results)
    return 0


if __name__ == "__main__":
    main_guard(main)
