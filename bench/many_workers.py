"""Many connected workers on one manager: K simulated workers speaking the real protocol, one no-op job.

A worker here is a WebSocket session of the real worker protocol (wire/: hello, tasks with their
seals, results, acknowledgements, heartbeats), not a `tiercel worker` process: K of them live as
asyncio sessions in a few processes (this script with ``--sim-child``), each with ``--slots`` slots,
and each finishes a task as soon as it arrives (like ``--executor noop``) and hands the result in at
once, one frame per task, with its credit. So the manager does per-task work for each of K
connections, which is what many workers cost it; a process running real tasks adds nothing to
that but time.

One run per worker count (default 1,000 then 10,000, each on a fresh manager, ``--sync FULL``):
every session connects (timed, until the manager lists K connected workers), then one job of N
no-op tasks (default 1,000,000) is submitted and timed until it is done. Every session counts each
task it is handed; afterwards the counts of all sessions are added up index by index and every
index must have been handed out exactly once (nothing re-sent, nothing lost), and the manager's
store must hold one settled attempt per task. The manager's CPU and peak RSS are reported.

Usage: .venv/bin/python bench/many_workers.py [--workers 1000,10000] [--tasks N] [--procs P] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
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
    peak_rss_mb,
    print_environment,
    print_table,
    rss_mb,
    run_job,
)

CONNECT_TIMEOUT = 300.0  # seconds for every session to connect
GOAL_WORKERS = 10_000


# ---- the simulated workers (child process) -----------------------------------


async def _session(url: str, token: str, name: str, slots: int, seen: bytearray, stats: dict[str, int],
                   stop: asyncio.Event) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import WebSocketException

    from tiercel.core.model import Outcome, Report, WorkerId, WorkerInfo
    from tiercel.wire.codec import decode_from_manager, encode, pack, unpack
    from tiercel.wire.messages import Ack, Error, Heartbeat, Hello, Results, Tasks, Welcome

    info = WorkerInfo(name=name, host=socket.gethostname(), slots=slots, cpus=1, memory_mb=1024)
    hello = pack([encode(Hello(WorkerId(str(uuid.uuid4())), info, slots))])
    beat_frame = pack([encode(Heartbeat())])
    deadline = time.monotonic() + CONNECT_TIMEOUT
    while True:  # as a worker does: a manager busy accepting thousands answers some late; try again
        try:
            ws = await connect(url, additional_headers={"Authorization": f"Bearer {token}"}, compression=None,
                               max_size=None, ping_interval=None, open_timeout=30)
            break
        except (OSError, TimeoutError, WebSocketException) as exc:
            if time.monotonic() > deadline:
                raise BenchError(f"{name} could not connect: {exc}") from None
            stats["retries"] += 1
            await asyncio.sleep(random.uniform(0.5, 2.0))
    async with ws:
        await ws.send(hello)
        stats["connected"] += 1
        heartbeat = 30.0

        async def beat() -> None:
            while True:
                await asyncio.sleep(heartbeat)
                await ws.send(beat_frame)

        beating = asyncio.create_task(beat())
        reader = asyncio.ensure_future(_frames(ws))
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while True:
                done, _ = await asyncio.wait({reader, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if stopping in done:
                    return
                frame = reader.result()
                if frame is None:
                    stats["closed"] += 1
                    return
                reader = asyncio.ensure_future(_frames(ws))
                reports = []
                for raw in unpack(frame):
                    m = decode_from_manager(raw)
                    if isinstance(m, Tasks):
                        now = time.time()
                        for t in m.tasks:
                            if t.index < len(seen) and seen[t.index] < 255:
                                seen[t.index] += 1
                            reports.append(Report(t.job, t.index, t.attempt, Outcome.DONE, 0, now, now, seal=t.seal))
                    elif isinstance(m, Ack):
                        stats["acked"] += len(m.done)
                    elif isinstance(m, Welcome):
                        heartbeat = m.heartbeat
                    elif isinstance(m, Error):
                        raise BenchError(f"the manager refused session {name}: {m.message}")
                if reports:
                    stats["results"] += len(reports)
                    await ws.send(pack([encode(Results(reports, len(reports)))]))
        finally:
            beating.cancel()
            reader.cancel()
            stopping.cancel()


async def _frames(ws: Any) -> bytes | None:
    try:
        while True:
            frame = await ws.recv()
            if isinstance(frame, bytes):
                return frame
    except Exception:  # the connection closed
        return None


async def _child(url: str, token: str, first: int, count: int, slots: int, tasks: int, out: Path) -> None:
    seen = bytearray(tasks)
    stats = {"connected": 0, "results": 0, "acked": 0, "closed": 0, "retries": 0}
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    ws_url = url.replace("http://", "ws://").rstrip("/") + "/v1/worker"
    sessions = []
    for k in range(first, first + count):  # a few at a time, as workers starting on many hosts would
        sessions.append(asyncio.create_task(_session(ws_url, token, f"sim-{k}", slots, seen, stats, stop)))
        if len(sessions) % 25 == 0:
            await asyncio.sleep(0.1)
    results = await asyncio.gather(*sessions, return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    out.write_bytes(bytes(seen))
    shown = f" first: {errors[0]!r}" if errors else ""
    print(f"sessions {count} connected {stats['connected']} results {stats['results']} acked {stats['acked']} "
          f"closed {stats['closed']} retries {stats['retries']} errors {len(errors)}{shown}", file=sys.stderr)


# ---- the parent ------------------------------------------------------------


def _settled(state: Path, job: int) -> tuple[int, int]:
    """Settled attempts of the job in the manager's store, and the tasks they settle (read after the run)."""
    db = next(state.glob("*.db"), None)
    if db is None:
        raise BenchError(f"no SQLite store in {state}")
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        n, distinct = conn.execute("SELECT COUNT(*), COUNT(DISTINCT idx) FROM attempts WHERE job = ? AND final = 1",
                                   (job,)).fetchone()
    return int(n), int(distinct)


def bench_workers(k: int, procs: int, slots: int, tasks: int, parent: Path | None, keep: bool) -> dict[str, Any]:
    with Cluster(sync="FULL", parent=parent, keep=keep) as cl:
        cl.start_manager("--worker-timeout", "120")
        token = (cl.state / "worker.token").read_text().strip()
        rss0 = rss_mb(cl.manager_pid)
        children: list[tuple[subprocess.Popen[bytes], Path]] = []
        t0 = time.perf_counter()
        per = -(-k // procs)
        for p in range(procs):
            first, count = p * per, min(per, k - p * per)
            if count <= 0:
                break
            out = cl.state / f"seen-{p}.bin"
            with open(cl.state / f"sim-{p}.log", "wb") as log:
                child = subprocess.Popen([sys.executable, __file__, "--sim-child", cl.url, token, str(first),
                                          str(count), str(slots), str(tasks), str(out)],
                                         stdout=subprocess.DEVNULL, stderr=log)
            children.append((child, out))
        try:
            with cl.client(timeout=300) as c:
                deadline = time.monotonic() + CONNECT_TIMEOUT
                while True:
                    connected = sum(1 for w in c.workers() if w["connected"])
                    if connected >= k:
                        break
                    for child, _ in children:
                        if child.poll() is not None:
                            raise BenchError(f"a simulator exited with {child.returncode}: "
                                             f"{(cl.state / 'sim-0.log').read_text()[-800:]}")
                    if time.monotonic() > deadline:
                        raise BenchError(f"{connected} of {k} workers connected within {CONNECT_TIMEOUT:g}s")
                    time.sleep(2.0)  # the listing of thousands of workers is not free for the manager
                connect_s = time.perf_counter() - t0
                rss_connected = rss_mb(cl.manager_pid)
                m0, s0 = cpu_seconds(cl.manager_pid), sum(cpu_seconds(ch.pid) for ch, _ in children)
                run = run_job(c, {"command": ["/bin/true"], "queue": tasks, "append_index": False},
                              poll=0.2, timeout=1800, check=cl.check_alive)
                m1, s1 = cpu_seconds(cl.manager_pid), sum(cpu_seconds(ch.pid) for ch, _ in children)
                peak = peak_rss_mb(cl.manager_pid)
        finally:
            for child, _ in children:
                with contextlib.suppress(ProcessLookupError):
                    child.send_signal(signal.SIGTERM)
            for child, _ in children:
                try:
                    child.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()
        counts = bytearray(tasks)
        for _, out in children:
            data = out.read_bytes() if out.exists() else b""
            if len(data) != tasks:
                raise BenchError(f"a simulator did not write its counts ({out})")
            for i, v in enumerate(data):
                if v:
                    counts[i] = min(255, counts[i] + v)
        settled, distinct = _settled(cl.state, run.job_id)
        d = run.data
        never = counts.count(0)
        twice = tasks - never - counts.count(1)
        if d["state"] != "done" or d["done"] != tasks:
            raise BenchError(f"job ended {d['state']} with {d['done']} of {tasks} done")
    return {"workers": k, "slots": slots, "tasks": tasks, "connect_seconds": connect_s, "seconds": run.seconds,
            "tasks_per_second": tasks / run.seconds, "handed_out_never": never, "handed_out_more_than_once": twice,
            "settled_attempts": settled, "settled_tasks": distinct, "manager_cpu": m1 - m0, "simulators_cpu": s1 - s0,
            "manager_rss_mb": {"idle": rss0, "connected": rss_connected, "peak": peak}}


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--sim-child":
        url, token, first, count, slots, tasks, out = sys.argv[2:9]
        try:  # uvloop, so that the simulators are not the bottleneck (whatever the manager's loop)
            import uvloop

            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        except ImportError:
            pass
        asyncio.run(_child(url, token, int(first), int(count), int(slots), int(tasks), Path(out)))
        return 0
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", default="1000,10000", metavar="K,K",
                    help="simulated worker counts, one run each (default 1000,10000)")
    ap.add_argument("--tasks", type=int, default=1_000_000, metavar="N",
                    help="no-op tasks in the job (default 1,000,000)")
    ap.add_argument("--slots", type=int, default=1, help="slots per simulated worker (default 1)")
    ap.add_argument("--procs", type=int, default=4, metavar="P", help="simulator processes (default 4)")
    common_args(ap)
    args = ap.parse_args()
    counts = [int(x) for x in args.workers.split(",") if x.strip()]
    if not counts or min(counts) < 1 or args.tasks < 1 or args.slots < 1 or args.procs < 1:
        ap.error("--workers, --tasks, --slots and --procs must be positive")
    env = environment(args.state_parent)
    print_environment(env)
    print(f"one job of {args.tasks:,} no-op tasks; simulated workers of {args.slots} slot(s) each, one frame per "
          f"result, in {args.procs} processes; manager --sync FULL")
    results = []
    rows = []
    for k in counts:
        print(f"  {k:,} workers ...", end="", flush=True)
        r = bench_workers(k, args.procs, args.slots, args.tasks, args.state_parent, args.keep)
        print(f" connected in {r['connect_seconds']:.1f}s, job {r['seconds']:.1f}s "
              f"({r['tasks_per_second']:,.0f} tasks/s)", flush=True)
        results.append(r)
        rss = r["manager_rss_mb"]
        rows.append([fmt_num(k), f"{r['connect_seconds']:.1f}", f"{r['seconds']:.1f}", fmt_num(r["tasks_per_second"]),
                     fmt_num(r["handed_out_never"]), fmt_num(r["handed_out_more_than_once"]),
                     f"{r['manager_cpu']:.1f}", f"{1e6 * r['manager_cpu'] / args.tasks:.0f}",
                     f"{rss['idle']:.0f} / {rss['connected']:.0f} / {rss['peak']:.0f}"])
    print_table(["workers", "connect s", "job s", "tasks/s", "never sent", "sent twice", "mgr CPU s",
                 "mgr µs/task", "mgr RSS MB idle/conn/peak"], rows, title="many workers, one manager")
    if len(results) > 1:
        base, top = results[0], results[-1]
        print(f"{top['workers']:,} workers / {base['workers']:,} workers throughput: "
              f"{top['tasks_per_second'] / base['tasks_per_second']:.2f}")
    ok = all(r["handed_out_never"] == 0 and r["handed_out_more_than_once"] == 0
             and r["settled_attempts"] == r["settled_tasks"] == r["tasks"] for r in results)
    print(f"every task handed out once and settled once in the store: {'yes' if ok else 'NO'}")
    if any(r["workers"] >= GOAL_WORKERS for r in results):
        print(f"goal: {GOAL_WORKERS:,} connected workers complete the job with every result once -> "
              f"{'MET' if ok else 'NOT MET'}")
    append_json(args.json, "many_workers", {"workers": counts, "tasks": args.tasks, "slots": args.slots,
                                            "procs": args.procs}, env, results)
    return 0 if ok else 1


if __name__ == "__main__":
    main_guard(main)
