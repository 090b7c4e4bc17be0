"""The PostgreSQL store against SQLite, and a standby manager taking over.

Starts its own PostgreSQL 15 (scripts/services/postgres_up.sh in a temporary dir, on a free port of
127.0.0.1; stopped and removed at the end) and gives every measurement a database of its own.
Five parts, in one invocation:

  throughput  N x /bin/true on 2 slots (one worker --slots 2), as throughput.py measures Tiercel:
              a manager on PostgreSQL (--store), one on SQLite (the same flags otherwise), and the
              Python spawn floor (throughput.py's 2-thread subprocess.run loop); rounds interleaved,
              median of R. Goal: PostgreSQL within 1.1x of SQLite.
  dispatch    the dispatch ceiling as dispatch.py measures it (2 workers --executor noop --slots 64),
              PostgreSQL and SQLite interleaved, median of R. Goal: >= 20,000 tasks/s on PostgreSQL.
  submit      a 1,000,000-task job array (as submit.py): the POST's time and the size of the jobs and
              attempts tables afterwards (pg_total_relation_size: heap, indexes and TOAST), SQLite
              (submit.py's own measurement) beside it. Goal: < 1 s and < 1 MB on PostgreSQL.
  takeover    two managers on one database (m1 active, m2 standby, --lease S), 4 noop workers given
              both URLs, a job of 100,000 tasks; once 30 % are done m1 gets SIGKILL. B is the number
              of tasks settled in the database at the kill (final attempt rows, read once m1 is dead
              and the count is stable; m2 restores exactly these when it takes the lease). Take-over
              time: from just before the kill to the first GET /v1/jobs/ID on m2 (polled every 20 ms)
              whose done+failed+cancelled exceeds B. Then the job is waited for: lost tasks =
              total - (done+failed+cancelled) as m2 reports at the end (all of them if the job never
              finishes), settled twice = task indices with more than one final attempt row. Median
              of K runs. Goal: <= 10 s, 0 lost, 0 settled twice.
  bloat       n_dead_tup of the attempts and jobs tables (pg_stat_user_tables, read once the manager
              has stopped and its connections are gone, so their statistics are flushed) after M noop
              tasks through one manager on PostgreSQL: once as is, once with another connection holding
              a transaction open (BEGIN; SELECT txid_current()) for the whole run, so that vacuum can
              remove nothing. The dispatch rate of both runs beside.

Every run also says how much of a CPU other work on the machine used meanwhile (/proc/stat less the
processes started here and PostgreSQL's): on a shared machine, --max-other-load PCT waits for quiet
before each run and runs a disturbed throughput or dispatch run again (twice at most).

Usage: .venv/bin/python bench/store_pg.py [--tasks N] [--repeat R] [--takeover-runs K] [--bloat-tasks M]
                                          [--lease S] [--only PARTS] [--max-other-load PCT] [--quick]
                                          [--json FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
from common import (
    TIERCEL,
    BenchError,
    Cluster,
    append_json,
    common_args,
    cpu_seconds,
    environment,
    fmt_num,
    fs_type,
    main_guard,
    median,
    own_cpu_seconds,
    peak_rss_mb,
    print_environment,
    print_table,
    run_job,
    spawn,
    stop_groups,
)
from psycopg import sql
from rest_load import machine_busy_seconds, wait_for_quiet
from submit import submit_series
from throughput import bench_python

from tiercel.client import Client

ROOT = Path(__file__).resolve().parent.parent
PG_UP = ROOT / "scripts" / "services" / "postgres_up.sh"
PG_DOWN = ROOT / "scripts" / "services" / "postgres_down.sh"
PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))

PARTS = ("throughput", "dispatch", "submit", "takeover", "bloat")
GOAL_RATIO = 1.1  # PostgreSQL's wall time at most this many times SQLite's (throughput)
GOAL_DISPATCH = 20_000  # tasks/s on PostgreSQL
GOAL_SUBMIT_SECONDS = 1.0
GOAL_SUBMIT_BYTES = 1_000_000
GOAL_TAKEOVER_SECONDS = 10.0
NOOP_SLOTS = 64  # --slots of every noop worker, as dispatch.py
DISPATCH_WORKERS = 2
TAKEOVER_WORKERS = 4
KILL_AT = 0.3  # kill the active manager once this fraction of the job is done
POLL = 0.02
QUIET_WAIT = [120.0]  # --quiet-wait: how long to wait for a quiet machine before a run
CONNECT_TIMEOUT = 10

DEFAULTS = {"tasks": 10_000, "repeat": 3, "dispatch_tasks": 200_000, "submit_tasks": 1_000_000,
            "takeover_runs": 5, "takeover_tasks": 100_000, "bloat_tasks": 1_000_000}
QUICK = {"tasks": 1_000, "repeat": 1, "dispatch_tasks": 20_000, "submit_tasks": 100_000,
         "takeover_runs": 1, "takeover_tasks": 20_000, "bloat_tasks": 20_000}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---- a throw-away PostgreSQL -------------------------------------------------


class Postgres:
    """PostgreSQL 15 from postgres_up.sh in a temporary dir of its own; a context manager that stops it."""

    def __init__(self, parent: Path | None, keep: bool) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="tiercel-bench-pg-", dir=parent))
        self.dir.chmod(0o755)  # as root the server runs as user postgres, which must reach it
        self.port = free_port()
        self.keep = keep
        self.started = False

    def env(self) -> dict[str, str]:
        return {**os.environ, "PG_DIR": str(self.dir), "PG_PORT": str(self.port), "PG_BIN": str(PG_BIN)}

    def __enter__(self) -> Postgres:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def start(self, timeout: float = 900.0) -> None:
        if os.geteuid() != 0 and not (PG_BIN / "initdb").exists():
            raise BenchError(f"PostgreSQL is not installed ({PG_BIN}/initdb) and installing it needs root")
        self.started = True  # from here on, close() runs postgres_down.sh
        try:
            out = subprocess.run(["bash", str(PG_UP)], env=self.env(), capture_output=True, text=True,
                                 timeout=timeout)
        except subprocess.TimeoutExpired:
            raise BenchError(f"{PG_UP.name} did not finish within {timeout:g}s") from None
        if out.returncode != 0:
            raise BenchError(f"{PG_UP.name} failed ({out.returncode}): {(out.stdout + out.stderr)[-2000:]}")

    def close(self) -> None:
        if self.started:
            with contextlib.suppress(subprocess.TimeoutExpired):
                subprocess.run(["bash", str(PG_DOWN)], env=self.env(), capture_output=True, timeout=120)
            self.started = False
        if self.keep:
            print(f"PostgreSQL dir kept in {self.dir}", file=sys.stderr)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str = "postgres", autocommit: bool = True) -> psycopg.Connection[tuple[Any, ...]]:
        return psycopg.connect(self.url(database), autocommit=autocommit, connect_timeout=CONNECT_TIMEOUT,
                               options="-c statement_timeout=120000")

    def query(self, database: str, text: str, args: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        with self.connect(database) as conn:
            return conn.execute(text, args).fetchall()

    def create_database(self) -> str:
        name = f"bench_{uuid.uuid4().hex[:12]}"
        with self.connect() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return name

    def drop_database(self, name: str) -> None:
        with self.connect() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def version(self) -> str:
        return str(self.query("postgres", "SHOW server_version")[0][0])

    def postmaster_pid(self) -> int:
        return int((self.dir / "data" / "postmaster.pid").read_text().split()[0])

    def cpu_seconds(self) -> float:
        """CPU of the server so far: the postmaster, the backends it reaped, and those alive now."""
        pid = self.postmaster_pid()
        total = cpu_seconds(pid, children=True)
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            with contextlib.suppress(OSError, ValueError, IndexError):
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rpartition(")")[2].split()[1])
                if ppid == pid:
                    total += cpu_seconds(int(entry))
        return total

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return (self.dir / "server.log").read_text(errors="replace")[-chars:]
        except OSError:
            return "(no server log)"


@contextlib.contextmanager
def database(pg: Postgres) -> Iterator[str]:
    """A brand-new database for one measurement, dropped afterwards."""
    name = pg.create_database()
    try:
        yield name
    finally:
        with contextlib.suppress(psycopg.Error):
            pg.drop_database(name)


# ---- one manager, its workers, one job ----------------------------------------------------


@dataclass
class StoreCluster(Cluster):
    """common.Cluster whose manager keeps its state in PostgreSQL when ``store`` is a URL."""

    store: str = ""

    def start_manager(self, *extra: str) -> str:
        return super().start_manager(*(["--store", self.store] if self.store else []), *extra)


def run_store(n: int, *, store: str, pg: Postgres | None, workers: int, slots: int, executor: str,
              timeout: float, parent: Path | None, keep: bool) -> dict[str, Any]:
    """One job of n x /bin/true through a manager on ``store`` (a PostgreSQL URL, or "" for SQLite)
    and its workers, timed as throughput.py and dispatch.py time it (run_job: POST to the job seen done
    by a GET polled every 20 ms). The manager is stopped before this returns."""
    with StoreCluster(sync="FULL", parent=parent, keep=keep, store=store) as cl:
        cl.start_manager()
        procs = [cl.start_worker(slots, executor=executor, name=f"{executor}-{k}") for k in range(workers)]
        with cl.client() as c:
            cl.wait_workers(c, workers)
            pids = [p.pid for p in procs]

            def cpus() -> tuple[float, float, float, float, float, float]:
                return (cpu_seconds(cl.manager_pid), sum(cpu_seconds(p) for p in pids),
                        sum(cpu_seconds(p, children=True) for p in pids), pg.cpu_seconds() if pg else 0.0,
                        cpu_seconds(os.getpid()), machine_busy_seconds())

            cpu0 = cpus()
            run = run_job(c, {"command": ["/bin/true"], "queue": n, "append_index": False},
                          poll=POLL, timeout=timeout, check=cl.check_alive)
            cpu1 = cpus()
            peak = peak_rss_mb(cl.manager_pid)
    d = run.data
    if d["state"] != "done" or d["done"] != n:
        raise BenchError(f"job ended {d['state']} with {d['done']} of {n} done, {d['failed']} failed")
    mgr, wkr, wkr_all, server, me, machine = (b - a for a, b in zip(cpu0, cpu1, strict=True))
    others = max(0.0, machine - (mgr + wkr_all + server + me))
    return {"seconds": run.seconds, "tasks_per_second": n / run.seconds, "submit_seconds": run.submit_seconds,
            "manager_cpu": mgr, "workers_cpu": wkr, "postgres_cpu": server,
            "total_cpu": mgr + wkr_all + server, "manager_peak_rss_mb": peak, "anomalies": run.anomalies,
            "other_load_percent": 100 * others / run.seconds}


def floor_run(n: int, timeout: float) -> dict[str, Any]:
    """throughput.py's Python spawn floor on 2 threads, and what the rest of the machine did meanwhile."""
    machine0, own0 = machine_busy_seconds(), own_cpu_seconds()
    res = bench_python(n, 2, timeout)
    others = max(0.0, machine_busy_seconds() - machine0 - (own_cpu_seconds() - own0))
    return {**res, "other_load_percent": 100 * others / res["seconds"]}


def quiet_run(max_other: float | None, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``run()``; with ``max_other``, after waiting for a quiet machine, and again (twice at most) while
    other work used more than ``max_other`` % of a CPU during it. The last attempt is kept."""
    attempts = 1 if max_other is None else 3
    res: dict[str, Any] = {}
    for attempt in range(1, attempts + 1):
        if max_other is not None:
            wait_for_quiet(max_other, QUIET_WAIT[0])
        res = run()
        res["attempts"] = attempt
        if max_other is None or res["other_load_percent"] <= max_other:
            break
        if attempt < attempts:
            print(f" (others used {res['other_load_percent']:.0f}% of a CPU: again)", end="", flush=True)
    return res


# ---- 1. throughput ----------------------------------------------------------------


def part_throughput(pg: Postgres, n: int, repeat: int, parent: Path | None, keep: bool,
                    max_other: float | None) -> dict[str, Any]:
    timeout = 120 + n * 0.01
    systems = ("postgresql", "sqlite", "python")
    runs: dict[str, list[dict[str, Any]]] = {s: [] for s in systems}
    for r in range(repeat):
        for system in systems:
            print(f"  throughput N={n:,} run {r + 1}/{repeat}: {system} ...", end="", flush=True)

            def one(system: str = system) -> dict[str, Any]:
                if system == "python":
                    return floor_run(n, timeout)
                if system == "sqlite":
                    return run_store(n, store="", pg=None, workers=1, slots=2, executor="process", timeout=timeout,
                                     parent=parent, keep=keep)
                with database(pg) as db:
                    return run_store(n, store=pg.url(db), pg=pg, workers=1, slots=2, executor="process",
                                     timeout=timeout, parent=parent, keep=keep)

            res = quiet_run(max_other, one)
            print(f" {res['seconds']:.2f}s (others: {res['other_load_percent']:.0f}% of a CPU)", flush=True)
            for a in res.get("anomalies", []):
                print(f"    ! {system}: {a}")
            runs[system].append(res)
    wall = {s: median([x["seconds"] for x in runs[s]]) for s in systems}
    rows: list[list[object]] = []
    for s in systems:
        t = runs[s]
        extra = ["-", "-", "-", "-"]
        if s != "python":
            extra = [f"{median([x['submit_seconds'] for x in t]) * 1000:.0f}",
                     f"{median([x['manager_cpu'] for x in t]):.1f}", f"{median([x['workers_cpu'] for x in t]):.1f}",
                     f"{median([x['postgres_cpu'] for x in t]):.1f}" if s == "postgresql" else "-"]
        rows.append([s, f"{wall[s]:.2f}", fmt_num(n / wall[s]), f"{wall[s] / wall['sqlite']:.2f}x",
                     f"{wall[s] / wall['python']:.2f}x", *extra,
                     f"{max(x['other_load_percent'] for x in t):.0f}%"])
    print_table(["system", "wall s", "tasks/s", "vs sqlite", "vs floor", "POST ms", "mgr CPU s", "wkr CPU s",
                 "PG CPU s", "others max"], rows, title=f"throughput: {n:,} x /bin/true on 2 slots, median of {repeat}")
    ratio = wall["postgresql"] / wall["sqlite"]
    met = ratio <= GOAL_RATIO
    print(f"goal: PostgreSQL within {GOAL_RATIO}x of SQLite -> {ratio:.2f}x {'MET' if met else 'NOT MET'}")
    return {"tasks": n, "wall_seconds": wall, "ratio_pg_sqlite": ratio,
            "ratio_pg_floor": wall["postgresql"] / wall["python"],
            "ratio_sqlite_floor": wall["sqlite"] / wall["python"], "met": met, "runs": runs}


# ---- 2. dispatch ceiling -------------------------------------------------------------


def part_dispatch(pg: Postgres, n: int, repeat: int, parent: Path | None, keep: bool,
                  max_other: float | None) -> dict[str, Any]:
    stores = ("postgresql", "sqlite")
    runs: dict[str, list[dict[str, Any]]] = {s: [] for s in stores}
    for r in range(repeat):
        for s in stores:
            print(f"  dispatch N={n:,} run {r + 1}/{repeat}: {s} ...", end="", flush=True)

            def one(s: str = s) -> dict[str, Any]:
                if s == "sqlite":
                    return run_store(n, store="", pg=None, workers=DISPATCH_WORKERS, slots=NOOP_SLOTS,
                                     executor="noop", timeout=600, parent=parent, keep=keep)
                with database(pg) as db:
                    return run_store(n, store=pg.url(db), pg=pg, workers=DISPATCH_WORKERS, slots=NOOP_SLOTS,
                                     executor="noop", timeout=600, parent=parent, keep=keep)

            res = quiet_run(max_other, one)
            print(f" {res['seconds']:.2f}s ({res['tasks_per_second']:,.0f} tasks/s; others: "
                  f"{res['other_load_percent']:.0f}% of a CPU)", flush=True)
            for a in res["anomalies"]:
                print(f"    ! {s}: {a}")
            runs[s].append(res)
    wall = {s: median([x["seconds"] for x in runs[s]]) for s in stores}
    rows: list[list[object]] = []
    for s in stores:
        t = runs[s]
        mgr = median([x["manager_cpu"] for x in t])
        rows.append([s, f"{wall[s]:.2f}", fmt_num(n / wall[s]), f"{mgr:.1f}", f"{100 * mgr / wall[s]:.0f}%",
                     f"{median([x['workers_cpu'] for x in t]):.1f}",
                     f"{median([x['postgres_cpu'] for x in t]):.1f}" if s == "postgresql" else "-",
                     f"{median([x['manager_peak_rss_mb'] for x in t]):.0f}",
                     f"{max(x['other_load_percent'] for x in t):.0f}%"])
    print_table(["store", "wall s", "tasks/s", "mgr CPU s", "mgr CPU", "wkrs CPU s", "PG CPU s", "mgr peak MB",
                 "others max"],
                rows, title=f"dispatch ceiling: {n:,} tasks, {DISPATCH_WORKERS} workers --executor noop "
                            f"--slots {NOOP_SLOTS}, median of {repeat}")
    tps = {s: n / wall[s] for s in stores}
    print(f"PostgreSQL/SQLite dispatch rate: {tps['postgresql'] / tps['sqlite']:.2f}")
    met = tps["postgresql"] >= GOAL_DISPATCH
    print(f"goal: >= {GOAL_DISPATCH:,} tasks/s on PostgreSQL -> {tps['postgresql']:,.0f} tasks/s "
          f"{'MET' if met else 'NOT MET'}")
    return {"tasks": n, "wall_seconds": wall, "tasks_per_second": tps, "met": met, "runs": runs}


# ---- 3. a 1,000,000-task submit --------------------------------------------------------------


TABLE_SIZES = ("SELECT pg_total_relation_size('jobs'), pg_total_relation_size('attempts'), "
               "pg_relation_size('jobs'), pg_relation_size('attempts')")


def part_submit(pg: Postgres, n: int, parent: Path | None, keep: bool) -> dict[str, Any]:
    print(f"  submit {n:,} tasks: postgresql ...", end="", flush=True)
    with database(pg) as db, StoreCluster(parent=parent, keep=keep, store=pg.url(db)) as cl:
        cl.start_manager()
        with cl.client(timeout=120) as c:
            c.whoami()  # a first request, so connection set-up is not counted (as submit.py)
            c.jobs()
            time.sleep(0.2)
            before = pg.query(db, TABLE_SIZES)[0]
            t0 = time.perf_counter()
            job = c.submit(["/bin/true"], queue=n, append_index=False)
            post_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            data = c.json("GET", f"/v1/jobs/{job.id}")
            get_s = time.perf_counter() - t0
            after = pg.query(db, TABLE_SIZES)[0]
            rows = pg.query(db, "SELECT (SELECT COUNT(*) FROM jobs), (SELECT COUNT(*) FROM attempts)")[0]
    if data["total"] != n or data["queued"] != n:
        raise BenchError(f"job {job.id}: expected {n} queued tasks, got {data}")
    print(f" {post_s:.3f}s", flush=True)
    print(f"  submit {n:,} tasks: sqlite ...", end="", flush=True)
    lite = submit_series(n, 1, "FULL", parent, keep)
    lite_s = lite["jobs"][0]["submit_seconds"]
    print(f" {lite_s:.3f}s", flush=True)
    size = int(after[0]) + int(after[1])
    print_table(["measure", "postgresql", "sqlite", "goal (postgresql)"], [
        ["submit (POST until accepted and durable)", f"{post_s:.3f} s", f"{lite_s:.3f} s",
         f"< {GOAL_SUBMIT_SECONDS:g} s"],
        ["GET /v1/jobs/ID afterwards", f"{get_s * 1000:.1f} ms", f"{lite['jobs'][0]['get_seconds'] * 1000:.1f} ms",
         ""],
        ["jobs + attempts, total relation size after", f"{size:,} B", "-", f"< {GOAL_SUBMIT_BYTES:,} B"],
        ["  of which jobs / attempts", f"{int(after[0]):,} / {int(after[1]):,} B", "-", ""],
        ["  before the submit", f"{int(before[0]) + int(before[1]):,} B", "-", ""],
        ["  heap only (pg_relation_size) jobs / attempts", f"{int(after[2]):,} / {int(after[3]):,} B", "-", ""],
        ["rows in jobs / attempts", f"{rows[0]} / {rows[1]}", "-", ""],
        ["SQLite files after the submit", "-", f"{lite['db_bytes']:,} B", ""],
    ], title=f"submit: one job of {n:,} tasks")
    met_t, met_b = post_s < GOAL_SUBMIT_SECONDS, size < GOAL_SUBMIT_BYTES
    print(f"goal: submit under {GOAL_SUBMIT_SECONDS:g} s -> {post_s:.3f} s {'MET' if met_t else 'NOT MET'}; "
          f"tables under {GOAL_SUBMIT_BYTES:,} B -> {size:,} B {'MET' if met_b else 'NOT MET'}")
    return {"tasks": n, "submit_seconds": post_s, "get_seconds": get_s,
            "bytes_before": {"jobs": int(before[0]), "attempts": int(before[1])},
            "bytes_after": {"jobs": int(after[0]), "attempts": int(after[1]),
                            "jobs_heap": int(after[2]), "attempts_heap": int(after[3])},
            "bytes_total": size, "rows": {"jobs": int(rows[0]), "attempts": int(rows[1])},
            "sqlite": {"submit_seconds": lite_s, "get_seconds": lite["jobs"][0]["get_seconds"],
                       "db_bytes": lite["db_bytes"]},
            "met": met_t and met_b}


# ---- 4. take-over -------------------------------------------------------------------------


def settled_in_db(pg: Postgres, db: str, job: int) -> int:
    return int(pg.query(db, "SELECT COUNT(DISTINCT idx) FROM attempts WHERE job = %s AND final", (job,))[0][0])


def settled_twice(pg: Postgres, db: str, job: int) -> list[int]:
    rows = pg.query(db, "SELECT idx FROM attempts WHERE job = %s AND final GROUP BY idx HAVING COUNT(*) > 1",
                    (job,))
    return [int(r[0]) for r in rows]


def _get(http: httpx.Client, url: str, token: str = "") -> tuple[int, Any]:
    """(status, JSON body) of a GET, or (0, None) when nothing answered."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        resp = http.get(url, headers=headers)
    except httpx.HTTPError:
        return 0, None
    try:
        return resp.status_code, resp.json()
    except ValueError:
        return resp.status_code, None


def _settled(d: dict[str, Any]) -> int:
    return int(d["done"]) + int(d["failed"]) + int(d["cancelled"])


def takeover_run(pg: Postgres, n: int, lease: float, parent: Path | None, keep: bool) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="tiercel-bench-takeover-", dir=parent))
    procs: dict[str, subprocess.Popen[bytes]] = {}
    workers: list[subprocess.Popen[bytes]] = []
    failed = True
    http = httpx.Client(timeout=5)

    def wait_for(what: str, cond: Any, timeout: float, poll: float = POLL) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = cond()
            if value:
                return value
            time.sleep(poll)
        raise BenchError(f"{what}: not within {timeout:g}s")

    try:
        with database(pg) as db:
            ports = {m: free_port() for m in ("m1", "m2")}
            urls = {m: f"http://127.0.0.1:{p}" for m, p in ports.items()}

            def start_manager(m: str) -> None:
                procs[m] = spawn([*TIERCEL, "manager", "--store", pg.url(db), "--name", m, "--lease", f"{lease:g}",
                                  "--listen", f"127.0.0.1:{ports[m]}", "--state-dir", str(root / m), "--quiet"],
                                 root / f"{m}.log")

            def health(m: str) -> str:
                status, body = _get(http, urls[m] + "/healthz")
                return str(body.get("status")) if status == 200 and isinstance(body, dict) else ""

            start_manager("m1")
            wait_for("m1 active", lambda: health("m1") == "ok" or procs["m1"].poll() is not None, 60)
            if procs["m1"].poll() is not None:
                raise BenchError(f"m1 exited with {procs['m1'].returncode}")
            wait_for("m1's admin.token", (root / "m1" / "admin.token").exists, 10)
            token = (root / "m1" / "admin.token").read_text().strip()
            start_manager("m2")
            wait_for("m2 standby", lambda: health("m2") == "standby" or procs["m2"].poll() is not None, 60)
            if procs["m2"].poll() is not None:
                raise BenchError(f"m2 exited with {procs['m2'].returncode}")
            both = f"{urls['m1']},{urls['m2']}"
            for k in range(TAKEOVER_WORKERS):
                workers.append(spawn([*TIERCEL, "worker", "--manager", both, "--slots", str(NOOP_SLOTS),
                                      "--token-file", str(root / "m1" / "worker.token"), "--executor", "noop",
                                      "--name", f"noop-{k}"], root / "workers.log"))
            with Client(both, token, timeout=30) as c:
                wait_for(f"{TAKEOVER_WORKERS} workers connected",
                         lambda: sum(1 for w in c.workers() if w["connected"]) >= TAKEOVER_WORKERS, 60)
                job = c.submit(["/bin/true"], queue=n, append_index=False)
            job_path = f"/v1/jobs/{job.id}"

            # Wait on m1 until KILL_AT of the job is done, then SIGKILL it.
            seen: dict[str, Any] = {}

            def far_enough() -> bool:
                status, body = _get(http, urls["m1"] + job_path, token)
                if status != 200:
                    raise BenchError(f"m1 answered {status} while the job ran: {body}")
                seen.update(body)
                if body["state"] in ("done", "failed", "cancelled"):
                    raise BenchError(f"the job finished before {KILL_AT:.0%} of it was seen done; use more tasks")
                return int(body["done"]) >= KILL_AT * n

            wait_for("the job to get far enough", far_enough, 300)
            t_kill = time.perf_counter()
            os.kill(procs["m1"].pid, signal.SIGKILL)
            procs["m1"].wait(timeout=10)
            done_at_kill = int(seen["done"])
            # What the database holds now is what m2 will restore; a commit sent just before the kill may
            # still land, so read until two reads 100 ms apart agree.
            base, stable_deadline = settled_in_db(pg, db, job.id), time.monotonic() + 3
            while time.monotonic() < stable_deadline:
                time.sleep(0.1)
                again = settled_in_db(pg, db, job.id)
                if again == base:
                    break
                base = again
            standby_after_base = health("m2") == "standby"

            # Poll m2 every 20 ms: first answer (it serves), then the first count beyond the base.
            t_serving = t_first = 0.0
            first_count = -1
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                if procs["m2"].poll() is not None:
                    raise BenchError(f"m2 exited with {procs['m2'].returncode} during the take-over")
                status, body = _get(http, urls["m2"] + job_path, token)
                now = time.perf_counter()
                if status == 200:
                    if not t_serving:
                        t_serving, first_count = now - t_kill, _settled(body)
                    if _settled(body) > base or body["state"] in ("done", "failed", "cancelled"):
                        t_first = now - t_kill
                        break
                time.sleep(POLL)
            if not t_first:
                raise BenchError("m2 accepted no result within 120 s of the kill"
                                 + ("" if t_serving else " (it never served the job)"))

            # Then the end of the job (bounded), lost and twice-settled tasks.
            end: dict[str, Any] = {}

            def finished() -> bool:
                status, body = _get(http, urls["m2"] + job_path, token)
                if status == 200:
                    end.update(body)
                    return bool(body["state"] in ("done", "failed", "cancelled"))
                return False

            finished_in_time = True
            try:
                wait_for("the job to finish on m2", finished, 300, poll=0.1)
            except BenchError:
                finished_in_time = False
            t_end = time.perf_counter() - t_kill
            lost = n - _settled(end) if end else n
            if end and end.get("state") != "done" and not lost:
                lost = n - int(end["done"])
            twice = settled_twice(pg, db, job.id)
            db_settled = settled_in_db(pg, db, job.id)
            failed = False
            return {"tasks": n, "done_at_kill": done_at_kill, "settled_in_db_at_kill": base,
                    "m2_standby_when_base_read": standby_after_base, "first_count_on_m2": first_count,
                    "seconds_to_serving": t_serving, "takeover_seconds": t_first, "seconds_to_job_end": t_end,
                    "finished": finished_in_time, "end": {k: end.get(k) for k in
                                                          ("state", "done", "failed", "cancelled", "total")},
                    "lost": lost, "settled_twice": len(twice), "settled_twice_indices": twice[:20],
                    "db_settled": db_settled}
    finally:
        http.close()
        stop_groups([*workers, *(p for m, p in procs.items() if p.returncode is None)])
        if failed:
            for f in sorted(root.glob("*.log")):
                print(f"\n-- {f.name}:\n{f.read_text(errors='replace')[-3000:]}", file=sys.stderr)
        if keep:
            print(f"take-over state kept in {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)


def part_takeover(pg: Postgres, n: int, runs_wanted: int, lease: float, parent: Path | None,
                  keep: bool, max_other: float | None) -> dict[str, Any]:
    runs: list[dict[str, Any]] = []
    for r in range(runs_wanted):
        print(f"  take-over run {r + 1}/{runs_wanted} ({n:,} tasks, --lease {lease:g}) ...", end="", flush=True)
        if max_other is not None:
            wait_for_quiet(max_other, QUIET_WAIT[0])
        res = takeover_run(pg, n, lease, parent, keep)
        print(f" {res['takeover_seconds']:.2f}s, lost {res['lost']}, twice {res['settled_twice']}", flush=True)
        if not res["m2_standby_when_base_read"]:
            print("    ! m2 was already active when the count at the kill was read")
        runs.append(res)
    rows: list[list[object]] = [
        [k + 1, fmt_num(x["done_at_kill"]), fmt_num(x["settled_in_db_at_kill"]), fmt_num(x["first_count_on_m2"]),
         f"{x['seconds_to_serving']:.2f}", f"{x['takeover_seconds']:.2f}", f"{x['seconds_to_job_end']:.2f}",
         x["lost"], x["settled_twice"]] for k, x in enumerate(runs)]
    med = median([x["takeover_seconds"] for x in runs])
    rows.append(["median", "", "", "", f"{median([x['seconds_to_serving'] for x in runs]):.2f}", f"{med:.2f}",
                 f"{median([x['seconds_to_job_end'] for x in runs]):.2f}", sum(x["lost"] for x in runs),
                 sum(x["settled_twice"] for x in runs)])
    print_table(["run", "done at kill", "B (db)", "m2 first", "to serving s", "take-over s", "to job end s", "lost",
                 "twice"], rows, title=f"take-over: kill -9 of the active manager, {TAKEOVER_WORKERS} noop workers, "
                                       f"{n:,} tasks, --lease {lease:g}")
    print("(done at kill: m1's last answer; B: tasks settled in the database at the kill; m2 first: settled "
          "count in m2's first answer; times from the kill; lost and twice: totals in the median row)")
    lost, twice = sum(x["lost"] for x in runs), sum(x["settled_twice"] for x in runs)
    met = med <= GOAL_TAKEOVER_SECONDS and lost == 0 and twice == 0
    print(f"goal: take-over <= {GOAL_TAKEOVER_SECONDS:g} s, 0 lost, 0 settled twice -> {med:.2f} s, {lost} lost, "
          f"{twice} twice {'MET' if met else 'NOT MET'}")
    return {"tasks": n, "lease": lease, "median_takeover_seconds": med, "lost": lost, "settled_twice": twice,
            "met": met, "runs": runs}


# ---- 5. table bloat ---------------------------------------------------------------------------


STATS = ("SELECT relname, n_live_tup, n_dead_tup, n_tup_ins, n_tup_upd, n_tup_del, n_tup_hot_upd, "
         "autovacuum_count, vacuum_count, autoanalyze_count FROM pg_stat_user_tables ORDER BY relname")
STAT_KEYS = ("n_live_tup", "n_dead_tup", "n_tup_ins", "n_tup_upd", "n_tup_del", "n_tup_hot_upd",
             "autovacuum_count", "vacuum_count", "autoanalyze_count")


def table_stats(pg: Postgres, db: str) -> dict[str, dict[str, int]]:
    """pg_stat_user_tables once every other connection to ``db`` but a holder of a transaction is gone
    (a backend's statistics are flushed when it exits)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        others = pg.query(db, "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() "
                              "AND pid <> pg_backend_pid() AND backend_type = 'client backend' "
                              "AND state IS DISTINCT FROM 'idle in transaction'")
        if int(others[0][0]) == 0:
            break
        time.sleep(0.1)
    else:
        raise BenchError("the manager's connections to the database did not go away within 30 s")
    time.sleep(0.5)
    with pg.connect(db) as conn:
        conn.execute("SELECT pg_stat_force_next_flush()")
        conn.execute("SELECT pg_stat_clear_snapshot()")
        rows = conn.execute(STATS).fetchall()
    return {str(r[0]): {k: int(v or 0) for k, v in zip(STAT_KEYS, r[1:], strict=True)} for r in rows}


def bloat_run(pg: Postgres, n: int, hold: bool, parent: Path | None, keep: bool,
              max_other: float | None) -> dict[str, Any]:
    with database(pg) as db:
        holder: psycopg.Connection[tuple[Any, ...]] | None = None
        xid = None
        try:
            if hold:
                holder = pg.connect(db, autocommit=False)
                holder.execute("SET statement_timeout = 0")
                row = holder.execute("SELECT txid_current()").fetchone()  # BEGIN is implicit
                xid = int(row[0]) if row else None
            if max_other is not None:
                wait_for_quiet(max_other, QUIET_WAIT[0])
            res = run_store(n, store=pg.url(db), pg=pg, workers=DISPATCH_WORKERS, slots=NOOP_SLOTS, executor="noop",
                            timeout=1200, parent=parent, keep=keep)
            stats = table_stats(pg, db)
            held = None
            if holder is not None:
                still = pg.query(db, "SELECT backend_xid::text FROM pg_stat_activity WHERE state = "
                                     "'idle in transaction' AND datname = current_database()")
                held = [r[0] for r in still]
        finally:
            if holder is not None:
                with contextlib.suppress(psycopg.Error):
                    holder.rollback()
                holder.close()
    return {"tasks": n, "held_transaction": hold, "held_xid": xid, "held_at_end": held, "stats": stats, **res}


def part_bloat(pg: Postgres, n: int, parent: Path | None, keep: bool, max_other: float | None) -> dict[str, Any]:
    runs: list[dict[str, Any]] = []
    for hold in (False, True):
        label = "with a transaction held open" if hold else "as is"
        print(f"  bloat: {n:,} noop tasks, {label} ...", end="", flush=True)
        res = bloat_run(pg, n, hold, parent, keep, max_other)
        print(f" {res['seconds']:.2f}s ({res['tasks_per_second']:,.0f} tasks/s; others: "
              f"{res['other_load_percent']:.0f}% of a CPU)", flush=True)
        for a in res["anomalies"]:
            print(f"    ! {a}")
        if hold and not res["held_at_end"]:
            print("    ! the held transaction was not open any more at the end")
        runs.append(res)
    rows: list[list[object]] = []
    for res in runs:
        label = "transaction held open" if res["held_transaction"] else "as is"
        for table in ("attempts", "jobs", "lease", "managers", "workers"):
            s = res["stats"].get(table, {})
            rows.append([label, table, fmt_num(s.get("n_live_tup", 0)), fmt_num(s.get("n_dead_tup", 0)),
                         fmt_num(s.get("n_tup_ins", 0)), fmt_num(s.get("n_tup_upd", 0)), fmt_num(s.get("n_tup_del", 0)),
                         s.get("autovacuum_count", 0)])
    print_table(["run", "table", "n_live_tup", "n_dead_tup", "inserted", "updated", "deleted", "autovacuums"], rows,
                title=f"bloat: {n:,} noop tasks through one manager on PostgreSQL")
    for res in runs:
        label = "transaction held open" if res["held_transaction"] else "as is"
        print(f"dispatch rate, {label}: {res['tasks_per_second']:,.0f} tasks/s ({res['seconds']:.2f} s; others "
              f"used {res['other_load_percent']:.0f}% of a CPU)")
    return {"tasks": n, "runs": runs}


# ---- main ----------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=int, metavar="N", help="throughput: tasks per run (default 10,000)")
    ap.add_argument("--repeat", type=int, metavar="R", help="throughput and dispatch: runs each, median (default 3)")
    ap.add_argument("--dispatch-tasks", type=int, metavar="N", help="dispatch: tasks per run (default 200,000)")
    ap.add_argument("--submit-tasks", type=int, metavar="N", help="submit: tasks in the array (default 1,000,000)")
    ap.add_argument("--takeover-runs", type=int, metavar="K", help="take-over: runs, median (default 5)")
    ap.add_argument("--takeover-tasks", type=int, metavar="N", help="take-over: tasks in the job (default 100,000)")
    ap.add_argument("--bloat-tasks", type=int, metavar="M", help="bloat: tasks per run (default 1,000,000)")
    ap.add_argument("--lease", type=float, default=5.0, metavar="S", help="take-over: manager --lease (default 5)")
    ap.add_argument("--only", default=",".join(PARTS), metavar="LIST",
                    help=f"comma-separated subset of {','.join(PARTS)}")
    ap.add_argument("--max-other-load", type=float, metavar="PCT",
                    help="on a shared machine: wait until others use under PCT%% of a CPU before each run, and run "
                         "a throughput or dispatch run again (twice at most) if they used more during it")
    ap.add_argument("--quiet-wait", type=float, default=120.0, metavar="S",
                    help="with --max-other-load, wait at most S seconds for quiet before a run (default 120)")
    ap.add_argument("--quick", action="store_true",
                    help="a smoke run: small sizes (1,000 / 20,000 / 100,000 tasks), one run of each")
    common_args(ap)
    args = ap.parse_args()
    base = QUICK if args.quick else DEFAULTS
    size = {k: getattr(args, k) if getattr(args, k) is not None else v for k, v in base.items()}
    parts = [p for p in PARTS if p in args.only.split(",")]
    if not parts or any(v < 1 for v in size.values()) or not 1 <= args.lease <= 600:
        ap.error("sizes and counts must be at least 1, --lease 1-600 s, and --only must name a part")
    if size["takeover_tasks"] < 1000:
        ap.error("--takeover-tasks must be at least 1,000 (the kill comes once 30 % are done)")

    QUIET_WAIT[0] = args.quiet_wait
    env = environment(args.state_parent)
    print_environment(env)
    results: dict[str, Any] = {}
    with Postgres(args.state_parent, args.keep) as pg:
        t0 = time.perf_counter()
        try:
            pg.start()
        except BenchError:
            print(pg.log_tail(), file=sys.stderr)
            raise
        env["postgres"] = {"version": pg.version(), "port": pg.port, "dir_fs": fs_type(pg.dir),
                           "start_seconds": time.perf_counter() - t0}
        print(f"PostgreSQL {env['postgres']['version']} on 127.0.0.1:{pg.port} (data on {env['postgres']['dir_fs']}, "
              f"fsync and synchronous_commit on), started in {env['postgres']['start_seconds']:.1f}s; "
              f"SQLite managers --sync FULL")
        try:
            if "throughput" in parts:
                results["throughput"] = part_throughput(pg, size["tasks"], size["repeat"], args.state_parent,
                                                        args.keep, args.max_other_load)
            if "dispatch" in parts:
                results["dispatch"] = part_dispatch(pg, size["dispatch_tasks"], size["repeat"], args.state_parent,
                                                    args.keep, args.max_other_load)
            if "submit" in parts:
                results["submit"] = part_submit(pg, size["submit_tasks"], args.state_parent, args.keep)
            if "takeover" in parts:
                results["takeover"] = part_takeover(pg, size["takeover_tasks"], size["takeover_runs"], args.lease,
                                                    args.state_parent, args.keep, args.max_other_load)
            if "bloat" in parts:
                results["bloat"] = part_bloat(pg, size["bloat_tasks"], args.state_parent, args.keep,
                                              args.max_other_load)
        except BaseException:
            print(f"\n-- PostgreSQL server log:\n{pg.log_tail()}", file=sys.stderr)
            raise
    append_json(args.json, "store_pg", {**size, "lease": args.lease, "parts": parts, "quick": args.quick,
                                        "max_other_load": args.max_other_load},
                env, results)
    return 0  # goals are reported, not enforced


if __name__ == "__main__":
    main_guard(main)
