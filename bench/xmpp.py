"""XMPP workers against WebSocket workers, presence against silence, and a pool of simulated XMPP workers.

Starts its own Prosody on loopback (scripts/services/prosody_up.sh: root, Debian's prosody package)
and, for each part, its own manager logged in to it. Three parts, in one run:

  throughput  N short tasks (/bin/true) on one worker with 2 slots, once over WebSocket and once
              over XMPP (STARTTLS, the manager and the worker both logged in to Prosody), in
              alternation, --repeat times; timed from the POST to the job seen done (polled every
              20 ms)
  requeue     kill -9 of an XMPP worker running 2 tasks: time until GET /v1/jobs/ID shows them
              queued again (polled every 2 ms); the manager's silence time-out is an hour, so only
              presence can do it. For scale, the same with a WebSocket worker, whose tasks wait for
              the silence time-out (--ws-timeout)
  pool        K simulated XMPP workers (each its own XMPP session, one slot, the real frames and
              presence) in --sim-procs processes, each task "running" --task-seconds; a job of
              K x --tasks-per-worker tasks; tasks/s against the ideal K / task-seconds. Kestrel's
              paper: 2-second tasks kept 900 workers near 100 % busy (~450 tasks/s)

Usage: .venv/bin/python bench/xmpp.py [--tasks 2000] [--repeat 3] [--workers 300,900] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
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
    cpu_seconds,
    environment,
    fmt_num,
    main_guard,
    median,
    print_environment,
    print_table,
    run_job,
    spawn,
)

ROOT = Path(__file__).resolve().parent.parent
MANAGER_JID = "tiercel@localhost"
PASSWORDS = {"tiercel": "tierpass", "w1": "w1pass", "sim": "simpass"}


# ---- Prosody -----------------------------------------------------------------------


class Prosody:
    def __init__(self) -> None:
        import socket

        self.dir = Path(tempfile.mkdtemp(prefix="tiercel-bench-prosody-"))
        self.dir.chmod(0o755)  # Prosody runs as user prosody
        ports = []
        for _ in range(2):
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                ports.append(s.getsockname()[1])
        self.c2s, self.tls = ports

    @property
    def ca(self) -> Path:
        return self.dir / "certs" / "localhost.crt"

    def env(self) -> dict[str, str]:
        return {**os.environ, "PROSODY_DIR": str(self.dir), "PROSODY_C2S_PORT": str(self.c2s),
                "PROSODY_TLS_PORT": str(self.tls), "PROSODY_SMACKS": "0",
                "PROSODY_ACCOUNTS": " ".join(f"{u}:{p}" for u, p in PASSWORDS.items())}

    def start(self) -> None:
        out = subprocess.run(["bash", str(ROOT / "scripts/services/prosody_up.sh")], env=self.env(),
                             capture_output=True, text=True, timeout=600)
        if out.returncode != 0:
            raise BenchError(f"Prosody did not start (needs root and Debian's prosody): {out.stdout}{out.stderr}")

    def pid(self) -> int:
        return int((self.dir / "run" / "prosody.pid").read_text().strip())

    def close(self) -> None:
        subprocess.run(["bash", str(ROOT / "scripts/services/prosody_down.sh")], env=self.env(),
                       capture_output=True, timeout=60)
        shutil.rmtree(self.dir, ignore_errors=True)


def xmpp_config(prosody: Prosody, root: Path, ping_interval: float = 15.0) -> Path:
    (root / "xmpp.password").write_text(PASSWORDS["tiercel"])
    (root / "xmpp.password").chmod(0o600)
    path = root / "xmpp.toml"
    path.write_text(
        "[xmpp]\n"
        f'jid = "{MANAGER_JID}"\npassword_file = "xmpp.password"\nserver = "127.0.0.1"\nport = {prosody.c2s}\n'
        f'tls = "starttls"\nca_file = "{prosody.ca}"\nworkers = ["w1@localhost", "sim@localhost"]\n'
        f"ping_interval = {ping_interval}\nping_timeout = 10\n")
    return path


def start_xmpp_manager(cl: Cluster, prosody: Prosody, *extra: str, ping_interval: float = 15.0) -> None:
    cl.start_manager("--config", str(xmpp_config(prosody, cl.state, ping_interval)), "-v", *extra)
    deadline = time.monotonic() + 60
    while "XMPP gateway online" not in cl.log.read_text(errors="replace"):
        if time.monotonic() > deadline:
            raise BenchError(f"the manager did not log in to Prosody: {cl.tail_log()}")
        cl.check_alive()
        time.sleep(0.05)


def start_xmpp_worker(cl: Cluster, prosody: Prosody, slots: int, name: str) -> subprocess.Popen[bytes]:
    pw = cl.state / "w1.password"
    pw.write_text(PASSWORDS["w1"])
    pw.chmod(0o600)
    proc = spawn([*TIERCEL, "worker", "--xmpp", f"w1@localhost/{name}", "--password-file", str(pw),
                  "--manager-jid", MANAGER_JID, "--xmpp-server", f"127.0.0.1:{prosody.c2s}",
                  "--xmpp-ca", str(prosody.ca), "--slots", str(slots), "--name", name], cl.log)
    cl.workers.append(proc)
    return proc


# ---- part 1: throughput ------------------------------------------------------------


def throughput(prosody: Prosody, transport: str, n: int, args: argparse.Namespace) -> dict[str, Any]:
    with Cluster(parent=args.state_parent, keep=args.keep) as cl:
        start_xmpp_manager(cl, prosody)
        worker = start_xmpp_worker(cl, prosody, 2, "bench") if transport == "xmpp" else cl.start_worker(2)
        with cl.client() as c:
            cl.wait_workers(c, 1, timeout=60)
            cpu0 = (cpu_seconds(cl.manager_pid), cpu_seconds(worker.pid))
            run = run_job(c, {"command": ["/bin/true"], "queue": n, "append_index": False}, poll=0.02,
                          timeout=120 + n * 0.01, check=cl.check_alive)
            cpu1 = (cpu_seconds(cl.manager_pid), cpu_seconds(worker.pid))
    if run.data["state"] != "done" or run.data["done"] != n:
        raise BenchError(f"{transport}: the job ended {run.data['state']} with {run.data['done']} of {n} done")
    return {"seconds": run.seconds, "manager_cpu": cpu1[0] - cpu0[0], "worker_cpu": cpu1[1] - cpu0[1]}


# ---- part 2: re-queue after kill -9 ----------------------------------------------------


def requeue(prosody: Prosody, transport: str, args: argparse.Namespace) -> float:
    timeout = "3600" if transport == "xmpp" else str(args.ws_timeout)
    with Cluster(parent=args.state_parent, keep=args.keep) as cl:
        start_xmpp_manager(cl, prosody, "--worker-timeout", timeout, ping_interval=600)
        worker = start_xmpp_worker(cl, prosody, 2, "doomed") if transport == "xmpp" else cl.start_worker(2)
        with cl.client() as c:
            cl.wait_workers(c, 1, timeout=60)
            job = c.submit(["sleep", "600"], queue=2, append_index=False)
            deadline = time.monotonic() + 60
            while job.refresh().data["running"] < 2:
                if time.monotonic() > deadline:
                    raise BenchError(f"the tasks did not start: {cl.tail_log()}")
                time.sleep(0.01)
            t0 = time.perf_counter()
            os.kill(worker.pid, signal.SIGKILL)
            while job.refresh().data["queued"] < 2:
                if time.perf_counter() - t0 > 3 * float(timeout) + 30:
                    raise BenchError(f"{transport}: tasks not re-queued: {cl.tail_log()}")
                time.sleep(0.002)
            seconds = time.perf_counter() - t0
            job.cancel()
    return seconds


# ---- part 3: many simulated XMPP workers -----------------------------------------------


async def simulate(first: int, count: int, c2s: int, ca: str, task_seconds: float, ready_file: Path) -> None:
    """``count`` XMPP workers in this process, each one slot, speaking the real worker protocol."""
    import msgpack
    import slixmpp

    from tiercel.gateways.xmpp.link import Assembler, Connector, Endpoint, make_client, on_frames, send_frame
    from tiercel.wire.messages import PROTOCOL_VERSION

    endpoint = Endpoint("127.0.0.1", c2s, "starttls", Path(ca))
    online = 0
    keep: list[asyncio.Future[None]] = []

    def one(i: int) -> slixmpp.ClientXMPP:
        client = make_client(f"sim@localhost/sim{i}", PASSWORDS["sim"], endpoint, xep_0199={})
        client.auto_authorize = None
        client.auto_subscribe = False
        asm = Assembler()
        wid = uuid.uuid4().hex
        state: dict[str, Any] = {"peer": None, "queue": [], "busy": False, "runner": None, "seen": False}

        def send(msg: dict[str, Any]) -> None:
            if state["peer"] is not None:
                send_frame(client, state["peer"], msgpack.packb(msg, use_bin_type=True))

        async def run_tasks() -> None:
            state["busy"] = True
            while state["queue"]:
                job, index, attempt, seal = state["queue"].pop(0)
                start = time.time()
                await asyncio.sleep(task_seconds)
                report = [job, index, attempt, "done", 0, start, time.time(), b"", b"", seal]
                send({"t": "res", "r": [report], "c": 1})
            state["busy"] = False

        def frame(msg: Any) -> None:
            data = asm.feed(str(msg["from"]), msg)
            if data is None:
                return
            m = msgpack.unpackb(data, raw=False, strict_map_key=False)
            for x in m["m"] if m.get("t") == "batch" else [m]:
                if x.get("t") == "tasks":
                    state["queue"].extend(x["tasks"])
                    if not state["busy"]:
                        state["runner"] = asyncio.ensure_future(run_tasks())
                elif x.get("t") == "reconnect":  # the manager lost track of us: start over, as the agent does
                    state["queue"].clear()
                    hello()

        def hello() -> None:
            send({"t": "hello", "v": PROTOCOL_VERSION, "id": wid, "name": f"sim{i}", "host": "sim", "slots": 1,
                  "credit": 0 if state["busy"] else 2, "held": [], "results": [], "ran": []})

        def presence(p: Any) -> None:
            if str(p["from"].bare) == MANAGER_JID and p["type"] != "unavailable" and state["peer"] is None:
                state["peer"] = p["from"]
                hello()

        async def started(_: Any) -> None:
            nonlocal online
            state["peer"] = None
            client.send_presence(ppriority=-1)
            client.send_presence(pto=MANAGER_JID, ppriority=-1)
            if not state["seen"]:
                state["seen"] = True
                online += 1

        on_frames(client, frame)
        client.add_event_handler("presence", presence)
        client.add_event_handler("session_start", started)
        # The worker's own connection loop: a login that stalls in the crowd is tried again.
        keep.append(asyncio.ensure_future(Connector(client, endpoint, backoff_max=5.0, login_timeout=300).run()))
        return client

    clients = []
    for i in range(first, first + count):
        clients.append(one(i))
        if len(clients) % 20 == 0:
            await asyncio.sleep(0.2)  # log in in waves: a thousand TLS handshakes at once time out
    while online < count:
        await asyncio.sleep(0.1)
    ready_file.write_text(str(online))
    await asyncio.Event().wait()


def pool(prosody: Prosody, k: int, args: argparse.Namespace) -> dict[str, Any]:
    with Cluster(parent=args.state_parent, keep=args.keep) as cl:
        start_xmpp_manager(cl, prosody, "--worker-timeout", "300", "--heartbeat", "60")
        procs = max(1, min(args.sim_procs, k))
        per = [k // procs + (1 if p < k % procs else 0) for p in range(procs)]
        first = 0
        ready = []
        for p, count in enumerate(per):
            flag = cl.state / f"sim{p}.ready"
            ready.append(flag)
            cl.workers.append(spawn([sys.executable, __file__, "--simulate", f"{first},{count}", "--c2s",
                                     str(prosody.c2s), "--ca", str(prosody.ca), "--task-seconds",
                                     str(args.task_seconds), "--ready-file", str(flag)], cl.log))
            first += count
        with cl.client() as c:
            cl.wait_workers(c, k, timeout=900)
            n = k * args.tasks_per_worker
            cpu0 = (cpu_seconds(cl.manager_pid), cpu_seconds(prosody.pid()))
            run = run_job(c, {"command": ["true"], "queue": n, "append_index": False}, poll=0.05,
                          timeout=120 + n * args.task_seconds, check=cl.check_alive)
            cpu = (cpu_seconds(cl.manager_pid) - cpu0[0], cpu_seconds(prosody.pid()) - cpu0[1])
    if run.data["done"] != n:
        raise BenchError(f"pool of {k}: {run.data['done']} of {n} done")
    ideal = k / args.task_seconds
    rate = n / run.seconds
    return {"workers": k, "tasks": n, "seconds": run.seconds, "tasks_per_s": rate, "ideal_per_s": ideal,
            "busy": rate / ideal, "manager_cpu": cpu[0], "prosody_cpu": cpu[1]}


# ---- main ----------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=int, default=2000, help="tasks of /bin/true per throughput run (2000)")
    ap.add_argument("--repeat", type=int, default=3, help="throughput and re-queue runs per transport (3)")
    ap.add_argument("--ws-timeout", type=float, default=5.0, help="silence time-out for the WebSocket re-queue")
    ap.add_argument("--workers", default="300,900", help="simulated XMPP pool sizes (300,900)")
    ap.add_argument("--sim-procs", type=int, default=2, help="processes the simulated workers share (2)")
    ap.add_argument("--task-seconds", type=float, default=2.0, help="a simulated task's duration (2 s)")
    ap.add_argument("--tasks-per-worker", type=int, default=10, help="tasks per simulated worker (10)")
    ap.add_argument("--only", default="throughput,requeue,pool", help="parts to run")
    ap.add_argument("--simulate", help=argparse.SUPPRESS)
    ap.add_argument("--c2s", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--ca", help=argparse.SUPPRESS)
    ap.add_argument("--ready-file", type=Path, help=argparse.SUPPRESS)
    common_args(ap)
    args = ap.parse_args()
    if args.simulate:
        first, count = (int(x) for x in args.simulate.split(","))
        asyncio.run(simulate(first, count, args.c2s, args.ca, args.task_seconds, args.ready_file))
        return 0

    parts = set(args.only.split(","))
    env = environment(args.state_parent)
    print_environment(env)
    prosody = Prosody()
    results: dict[str, Any] = {}
    try:
        prosody.start()
        if "throughput" in parts:
            runs: dict[str, list[dict[str, Any]]] = {"websocket": [], "xmpp": []}
            for _ in range(args.repeat):
                for transport in ("websocket", "xmpp"):
                    runs[transport].append(throughput(prosody, transport, args.tasks, args))
            rows: list[list[object]] = []
            for transport, rs in runs.items():
                s = median([r["seconds"] for r in rs])
                rows.append([transport, fmt_num(s, 2), fmt_num(args.tasks / s), fmt_num(median(
                    [r["manager_cpu"] for r in rs]), 2), fmt_num(median([r["worker_cpu"] for r in rs]), 2)])
            print_table(["transport", "seconds", "tasks/s", "manager CPU s", "worker CPU s"], rows,
                        f"throughput: {args.tasks:,} x /bin/true, one worker with 2 slots, median of {args.repeat}")
            ratio = median([r["seconds"] for r in runs["xmpp"]]) / median([r["seconds"] for r in runs["websocket"]])
            print(f"XMPP / WebSocket wall time: {ratio:.2f}x")
            results["throughput"] = runs
        if "requeue" in parts:
            xs = [requeue(prosody, "xmpp", args) for _ in range(args.repeat)]
            ws = requeue(prosody, "websocket", args)
            print_table(["worker", "kill -9 to re-queued (s)", "by"],
                        [["XMPP (median)", fmt_num(median(xs), 3), "presence unavailable"],
                         ["XMPP (worst)", fmt_num(max(xs), 3), "presence unavailable"],
                         ["WebSocket", fmt_num(ws, 3), f"silence time-out ({args.ws_timeout:g} s)"]],
                        "re-queue after kill -9 of a worker running 2 tasks")
            results["requeue"] = {"xmpp": xs, "websocket": ws}
        if "pool" in parts:
            pool_rows: list[list[object]] = []
            out = []
            for k in (int(x) for x in args.workers.split(",")):
                r = pool(prosody, k, args)
                out.append(r)
                results["pool"] = out
                pool_rows.append([k, fmt_num(r["tasks"]), fmt_num(r["seconds"], 1), fmt_num(r["tasks_per_s"]),
                                  fmt_num(r["ideal_per_s"]), f"{100 * r['busy']:.1f}%",
                                  fmt_num(r["manager_cpu"], 1), fmt_num(r["prosody_cpu"], 1)])
                print_table(["workers", "tasks", "seconds", "tasks/s", "ideal/s", "busy", "manager CPU s",
                             "Prosody CPU s"], pool_rows,
                            f"simulated XMPP workers, {args.task_seconds:g} s tasks, one Prosody and one manager "
                            "(Kestrel: 900 workers, ~450 tasks/s)")
    finally:
        prosody.close()
    append_json(args.json, "xmpp", {k: v for k, v in vars(args).items() if k not in ("json",)}, env,
                json.loads(json.dumps(results, default=str)))
    return 0


if __name__ == "__main__":
    main_guard(main)
