"""Federation: one array over three peer managers against the same slots on one manager, and more.

  overhead   N no-op tasks (workers --executor noop) submitted to manager A of three peers, each with
             one worker of S slots, against one manager with three such workers: wall time from submit
             to the job done at A (every result durable there), and the ratio (goal: at most 1.3x)
  messages   peer messages each way per forwarded task, from `tiercel peers` (ranges, not tasks)
  latency    B reached through tests/netem_proxy.py (25 ms each way: a 50 ms round trip); A has no
             worker, B one of S slots; K tasks of `sleep 2` submitted at A: how busy B's slots are from
             the first task's start to the last one's end (goal: at least 95 %)
  recovery   A without workers, B and C with a worker each; kill -9 of B while it runs ranges of A's
             array: seconds until the ranges B held run elsewhere (the peer time-out is part of it)

Every manager binds 127.0.0.1 only. Usage:
  .venv/bin/python bench/federation.py [--tasks N] [--slots S] [--sleep-tasks K] [--timeout T] [--json FILE]
"""

from __future__ import annotations

import argparse
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from common import (
    TIERCEL,
    BenchError,
    Cluster,
    append_json,
    common_args,
    cpu_seconds,
    environment,
    fmt_num,
    main_guard,
    print_environment,
    print_table,
    run_job,
)

ROOT = Path(__file__).resolve().parent.parent
KEEP = False  # --keep: the state dirs (logs, stores) stay


def federation(n: int, slots: int, *, executor: str, timeout: float, workers: tuple[int, ...] | None = None,
               url_of: Any = None, parent: Path | None = None) -> list[Cluster]:
    """n managers, the last started first; each earlier one connects out to the later ones with a peer token."""
    names = [chr(ord("A") + i) for i in range(n)]
    clusters: dict[str, Cluster] = {}
    tokens: dict[str, dict[str, Path]] = {x: {} for x in names}
    urls: dict[str, str] = {}
    try:
        for i, name in enumerate(reversed(names)):
            c = clusters[name] = Cluster(parent=parent, keep=KEEP)
            lines = []
            for other in names:
                if other == name:
                    continue
                lines += [f"[peers.{other}]", f'user = "fed-{other.lower()}"', f'timeout = "{timeout}s"',
                          'summary_interval = "0.5s"']
                if other in tokens[name]:
                    lines += [f'url = "{urls[other]}"', f'token_file = "{tokens[name][other]}"']
                lines.append("")
            config = c.state / "peers.toml"
            config.write_text("\n".join(lines))
            c.start_manager("--config", str(config), "--worker-timeout", "5")
            urls[name] = url_of(name, c) if url_of is not None else c.url
            with c.client() as admin:
                for earlier in names[:n - 1 - i]:
                    token = admin.json("POST", "/v1/tokens", json={"user": earlier, "role": "peer"})["token"]
                    path = c.state / f"peer-{earlier}.token"
                    path.write_text(token + "\n")
                    path.chmod(0o600)
                    tokens[earlier][name] = path
        ordered = [clusters[x] for x in names]
        for c, count in zip(ordered, workers if workers is not None else (1,) * n, strict=True):
            for _ in range(count):
                c.start_worker(slots, executor=executor)
        for c, count in zip(ordered, workers if workers is not None else (1,) * n, strict=True):
            with c.client() as cl:
                c.wait_workers(cl, count)
        wait_linked(ordered, [x > 0 for x in (workers if workers is not None else (1,) * n)])
        return ordered
    except BaseException:
        for c in clusters.values():
            c.close(failed=True)
        raise


def wait_linked(clusters: list[Cluster], has_slots: list[bool], timeout: float = 60.0) -> None:
    """Every link up, and the origin (the first) sees the slots of every peer that has a worker."""
    names = [chr(ord("A") + i) for i in range(len(clusters))]
    slots = dict(zip(names, has_slots, strict=True))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ok = True
        for i, c in enumerate(clusters):
            with c.client() as cl:
                rows = cl.json("GET", "/v1/peers")
            ok = ok and all(r["state"] == "up" and r["summary_at"] and
                            (i > 0 or not slots[r["name"]] or r["offer"]["slots_total"] > 0) for r in rows)
        if ok:
            return
        time.sleep(0.1)
    raise BenchError("the peers did not all link up (and see each other's slots) within 60 s")


def close(clusters: list[Cluster]) -> None:
    for c in clusters:
        c.close()


def overhead(tasks: int, slots: int, timeout: float, parent: Path | None, repeat: int) -> dict[str, Any]:
    """The same array on one manager and on three peers, ``repeat`` times each, alternating; medians."""
    one = Cluster(parent=parent, keep=KEEP)
    fed: list[Cluster] = []
    singles: list[float] = []
    feds: list[float] = []
    spec = {"command": ["true"], "array": f"0-{tasks - 1}"}
    try:
        one.start_manager()
        for _ in range(3):
            one.start_worker(slots, executor="noop")
        with one.client() as c:
            one.wait_workers(c, 3)
        fed = federation(3, slots, executor="noop", timeout=timeout, parent=parent)
        where: dict[str, int] = {}
        cpu_one = cpu_fed = 0.0
        with one.client() as c1, fed[0].client() as ca:
            for _ in range(repeat):
                before = cpu_seconds(one.manager_pid)
                singles.append(run_job(c1, dict(spec), poll=0.05, timeout=1800).seconds)
                cpu_one += cpu_seconds(one.manager_pid) - before
                before = sum(cpu_seconds(c.manager_pid) for c in fed)
                run = run_job(ca, dict(spec), poll=0.05, timeout=1800)
                cpu_fed += sum(cpu_seconds(c.manager_pid) for c in fed) - before
                feds.append(run.seconds)
            for t in ca.json("GET", f"/v1/jobs/{run.job_id}/tasks", params={"final": "true"}):
                key = t["worker"] if t["worker"].startswith("peer:") else "A (home)"
                where[key] = where.get(key, 0) + 1
            peers = ca.json("GET", "/v1/peers")
    finally:
        one.close()
        close(fed)
    forwarded = sum(p["forwarded_tasks"] for p in peers)
    messages = sum(p["messages_out"] + p["messages_in"] for p in peers)
    single, federated = statistics.median(singles), statistics.median(feds)
    return {"tasks": tasks, "slots_each": slots, "repeat": repeat, "one_manager_s": single, "federated_s": federated,
            "one_manager_runs": singles, "federated_runs": feds, "ratio": federated / single, "where_last": where,
            "forwarded": forwarded, "messages": messages, "manager_cpu_one_s": cpu_one / repeat,
            "manager_cpu_federated_s": cpu_fed / repeat,
            "messages_per_forwarded_task": messages / forwarded if forwarded else None}


def latency(tasks: int, slots: int, timeout: float, parent: Path | None) -> dict[str, Any]:
    proxies: list[subprocess.Popen[bytes]] = []

    def url_of(name: str, c: Cluster) -> str:
        if name != "B":
            return c.url
        port_file = c.state / "proxy.port"
        proxies.append(subprocess.Popen([*TIERCEL[:1], "-m", "tests.netem_proxy", "--listen", "127.0.0.1:0",
                                         "--to", c.url.split("//", 1)[1], "--delay", "0.025", "--port-file",
                                         str(port_file)], cwd=ROOT, start_new_session=True,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + 30
        while not port_file.exists():
            if time.monotonic() > deadline:
                raise BenchError("the latency proxy did not start")
            time.sleep(0.05)
        return f"http://127.0.0.1:{port_file.read_text()}"

    try:
        fed = federation(2, slots, executor="process", timeout=timeout, workers=(0, 1), url_of=url_of,
                         parent=parent)
    except BaseException:
        for p in proxies:
            p.terminate()
        raise
    try:
        with fed[0].client() as c:
            rtt = c.json("GET", "/v1/peers")[0]["rtt_ms"]
            run = run_job(c, {"command": ["sleep", "2"], "array": f"0-{tasks - 1}", "append_index": False},
                          poll=0.2, timeout=1800)
            rows = c.json("GET", f"/v1/jobs/{run.job_id}/tasks", params={"final": "true"})
    finally:
        close(fed)
        for p in proxies:
            p.terminate()
            p.wait(timeout=10)
    start, end = min(r["started"] for r in rows), max(r["ended"] for r in rows)
    busy = sum(r["ended"] - r["started"] for r in rows) / (slots * (end - start))
    return {"tasks": tasks, "slots": slots, "rtt_ms": rtt, "wall_s": run.seconds, "busy": busy,
            "ideal_s": tasks * 2.0 / slots}


def recovery(slots: int, timeout: float, parent: Path | None) -> dict[str, Any]:
    fed = federation(3, slots, executor="process", timeout=timeout, workers=(0, 1, 1), parent=parent)
    try:
        a, b = fed[0], fed[1]
        with a.client() as c:
            job = c.submit(["sleep", "0.5"], array="0-399", append_index=False)

            def leases() -> list[dict[str, Any]]:
                return list(c.json("GET", f"/v1/jobs/{job.id}/explain")["forwarded"])
            deadline = time.monotonic() + 60
            while not any(x["peer"] == "B" and x["state"] == "accepted" for x in leases()):
                if time.monotonic() > deadline:
                    raise BenchError("B never took a range")
                time.sleep(0.05)
            held = {x["lease"] for x in leases() if x["peer"] == "B" and x["state"] != "retired"}
            assert b.manager is not None
            b.manager.send_signal(signal.SIGKILL)
            killed = time.perf_counter()
            taken = again = None
            deadline = time.monotonic() + 120
            while again is None:
                if time.monotonic() > deadline:
                    raise BenchError("B's ranges never ran elsewhere")
                now = leases()
                if taken is None and all(x["state"] == "retired" for x in now if x["lease"] in held):
                    taken = time.perf_counter() - killed
                if taken is not None and any(x["peer"] == "C" and x["epoch"] >= 2 and x["state"] == "accepted"
                                             for x in now):
                    again = time.perf_counter() - killed
                time.sleep(0.02)
    finally:
        close(fed)
    return {"timeout_s": timeout, "taken_back_s": taken, "running_elsewhere_s": again, "ranges_held": len(held)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", type=int, default=100_000, help="no-op tasks of the overhead run")
    p.add_argument("--slots", type=int, default=2, help="slots of each manager's one worker")
    p.add_argument("--sleep-tasks", type=int, default=80, help="2-second tasks of the latency run")
    p.add_argument("--sleep-slots", type=int, default=8, help="slots at the peer in the latency run")
    p.add_argument("--timeout", type=float, default=5.0, help="the peers' time-out (seconds)")
    p.add_argument("--repeat", type=int, default=5, help="runs of each side of the overhead measurement")
    p.add_argument("--only", choices=("overhead", "latency", "recovery"), action="append")
    common_args(p)
    args = p.parse_args()
    global KEEP
    KEEP = args.keep
    env = environment(args.state_parent)
    print_environment(env)
    only = set(args.only or ("overhead", "latency", "recovery"))
    results: dict[str, Any] = {}
    if "overhead" in only:
        r = results["overhead"] = overhead(args.tasks, args.slots, args.timeout, args.state_parent, args.repeat)
        print_table(["", "wall", "tasks/s"], [
            ["one manager, 3 workers", f"{r['one_manager_s']:.2f} s", fmt_num(args.tasks / r["one_manager_s"])],
            ["three peers, 1 worker each", f"{r['federated_s']:.2f} s", fmt_num(args.tasks / r["federated_s"])],
        ], title=f"{fmt_num(args.tasks)} no-op tasks, {args.slots} slots a worker, median of {args.repeat}")
        print(f"federated / one manager: {r['ratio']:.2f}x (goal <= 1.3x); runs: one manager "
              f"{', '.join(f'{x:.2f}' for x in r['one_manager_runs'])} s, federated "
              f"{', '.join(f'{x:.2f}' for x in r['federated_runs'])} s; the last ran at {r['where_last']}")
        print(f"managers' CPU a run: one manager {r['manager_cpu_one_s']:.2f} s, three peers together "
              f"{r['manager_cpu_federated_s']:.2f} s (on {env['cpus']} CPUs shared with the workers)")
        print(f"messages between peers per forwarded task: {r['messages_per_forwarded_task']:.4f} "
              f"({fmt_num(r['messages'])} messages each way together, {fmt_num(r['forwarded'])} tasks forwarded)")
    if "latency" in only:
        r = results["latency"] = latency(args.sleep_tasks, args.sleep_slots, args.timeout, args.state_parent)
        print(f"\n50 ms link (rtt seen {r['rtt_ms']} ms): {r['tasks']} tasks of sleep 2 on {r['slots']} slots at the "
              f"peer: {r['wall_s']:.1f} s (ideal {r['ideal_s']:.0f} s), slots busy {100 * r['busy']:.1f} % "
              "(goal >= 95 %)")
    if "recovery" in only:
        r = results["recovery"] = recovery(args.slots, args.timeout, args.state_parent)
        print(f"\nkill -9 of a peer holding {r['ranges_held']} range(s): taken back after {r['taken_back_s']:.2f} s, "
              f"running elsewhere after {r['running_elsewhere_s']:.2f} s (peer time-out {r['timeout_s']:g} s)")
    append_json(args.json, "federation", vars(args) | {"json": None, "state_parent": None}, env, results)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main_guard(main)
