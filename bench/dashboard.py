"""The dashboard in headless Chromium: first paint with a large store, update lag, and its cost to the scheduler.

1. Paint: a store holding ``--jobs`` ended jobs and ``--tasks`` task results in all (one job of
   ``--big`` tasks, the rest shared by the others) is written before the manager starts; then the
   time to first contentful paint (Performance API) of the jobs page and of the big job's page,
   and when its throughput plot is drawn, beside ``GET /v1/jobs`` for the same 50 jobs (the baseline).
2. Lag: a one-task job's page is open; from the REST API first saying the task's result is in
   (polled every 5 ms) to the page showing the job done.
3. Cost: ``--noop`` no-op tasks (workers ``--executor noop``) through a fresh manager with 0 and
   then with ``--pages`` open jobs pages, alternating, ``--repeat`` times each; the ratio of medians.

Chromium is Debian's (/usr/bin/chromium, or $CHROMIUM), driven by Playwright.

Usage: .venv/bin/python bench/dashboard.py [--tasks N] [--jobs J] [--big B] [--noop N] [--pages P] [--repeat R]
       [--parts paint,lag,cost]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from common import (
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
)

from tiercel.core.model import AttemptRecord, Counts, JobId, JobSpec, JobState, Outcome, Report, UserName, WorkerId
from tiercel.core.ranges import IndexRanges
from tiercel.store import SqliteStore
from tiercel.store.base import AddJob, EndJob, Record

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--disable-quic", "--disable-dev-shm-usage"]
PAINT_GOAL = 1.0  # seconds
LAG_GOAL = 2.0
COST_GOAL = 0.05
BATCH = 50_000


def fill_store(db: Path, tasks: int, jobs: int, big: int) -> int:
    """Ended jobs with a done attempt per task, written as the manager writes them; the big job's id."""
    store = SqliteStore(db, synchronous="OFF")
    store.open()
    t0 = time.time() - 86_400
    sizes = [big] + [max(1, (tasks - big) // max(1, jobs - 1))] * (jobs - 1)
    big_id = 0
    try:
        for n, size in enumerate(sizes, start=1):
            job = JobId(n)
            big_id = big_id or n
            start = t0 + n * 60
            spec = JobSpec(command=("/bin/true",), indexes=IndexRanges.of_size(size), name=f"bench-{n}",
                           append_index=False)
            store.write([AddJob(job, UserName("bench"), spec, start)]).result()
            for lo in range(0, size, BATCH):
                records = [AttemptRecord(Report(job, i, 1, Outcome.DONE, 0, start + i * 0.0005, start + i * 0.0005
                                                + 0.001), True, WorkerId("bench-worker"))
                           for i in range(lo, min(size, lo + BATCH))]
                store.write([Record(records)]).result()
            store.write([EndJob(job, JobState.DONE, Counts(total=size, done=size), start + size * 0.0005 + 1)]).result()
    finally:
        store.close()
    return big_id


@contextmanager
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright
    if not os.access(CHROMIUM, os.X_OK):
        raise BenchError(f"{CHROMIUM} is missing: run scripts/services/chromium_up.sh (as root)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            yield b
        finally:
            b.close()


def signed_in(b: Any, url: str, token: str) -> Any:
    context = b.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    page.goto(url + "/ui/signin")
    page.fill("#token", token)
    page.click("button[type=submit]")
    page.wait_for_url("**/ui/")
    return page


def paint(page: Any, url: str, selector: str | None = None) -> dict[str, float]:
    """Load ``url`` afresh: first contentful paint and the response's end, in seconds from navigation
    start; with ``selector``, also when it appeared."""
    page.goto("about:blank")
    page.goto(url)
    out = {}
    if selector is not None:
        page.wait_for_selector(selector, timeout=60_000)
        out["ready"] = page.evaluate("performance.now()") / 1000
    page.wait_for_load_state("load")
    fcp = page.evaluate("""() => new Promise(done => {
        new PerformanceObserver(l => done(l.getEntriesByName('first-contentful-paint')[0]?.startTime || 0))
            .observe({type: 'paint', buffered: true});
        setTimeout(() => done(0), 10000); })""")
    nav = page.evaluate("performance.getEntriesByType('navigation')[0].responseEnd")
    return {"fcp": fcp / 1000, "response": nav / 1000, **out}


def bench_paint(b: Any, tasks: int, jobs: int, big: int, repeat: int, parent: Path | None,
                keep: bool) -> dict[str, Any]:
    with Cluster(parent=parent, keep=keep) as cl:
        t0 = time.perf_counter()
        big_id = fill_store(cl.state / "tiercel.db", tasks, jobs, big)
        filled = time.perf_counter() - t0
        cl.start_manager()
        page = signed_in(b, cl.url, cl.admin_token)
        lists, bigs, rest = [], [], []
        with httpx.Client(headers={"Authorization": f"Bearer {cl.admin_token}"}) as http:
            for _ in range(repeat):
                lists.append(paint(page, cl.url + "/ui/"))
                bigs.append(paint(page, f"{cl.url}/ui/jobs/{big_id}", "#plot canvas"))
                r0 = time.perf_counter()
                http.get(cl.url + "/v1/jobs", params={"all": "true", "limit": 50}).raise_for_status()
                rest.append(time.perf_counter() - r0)
        page.context.close()
    return {"fill_seconds": filled, "jobs_fcp": median([x["fcp"] for x in lists]),
            "jobs_response": median([x["response"] for x in lists]),
            "job_fcp": median([x["fcp"] for x in bigs]), "job_response": median([x["response"] for x in bigs]),
            "job_plot": median([x["ready"] for x in bigs]), "rest_jobs": median(rest)}


def bench_lag(b: Any, runs: int, parent: Path | None, keep: bool) -> dict[str, Any]:
    with Cluster(parent=parent, keep=keep) as cl:
        cl.start_manager()
        cl.start_worker(2)
        lags = []
        with cl.client() as c:
            cl.wait_workers(c, 1)
            page = signed_in(b, cl.url, cl.admin_token)
            for _ in range(runs):
                job = c.submit("sleep 1", queue=1, append_index=False)
                page.goto(f"{cl.url}/ui/jobs/{job.id}")
                page.wait_for_selector("#live.on")
                page.evaluate("""() => { window.doneAt = 0; const s = document.getElementById('state');
                    new MutationObserver(() => { if (s.textContent === 'done' && !window.doneAt)
                        window.doneAt = Date.now() / 1000; }).observe(s, {childList: true, characterData: true,
                        subtree: true}); }""")
                deadline = time.monotonic() + 60
                while job.data["done"] < 1:
                    if time.monotonic() > deadline:
                        raise BenchError(f"job {job.id} did not finish within 60 s")
                    time.sleep(0.005)
                    job.refresh()
                durable = time.time()
                shown = 0.0
                for _ in range(3000):  # the page's CSP forbids wait_for_function's eval: read it every 10 ms
                    shown = float(page.evaluate("window.doneAt"))
                    if shown:
                        break
                    time.sleep(0.01)
                if not shown:
                    raise BenchError(f"the page of job {job.id} did not show it done within 30 s")
                lags.append(shown - durable)
            page.context.close()
    return {"lag_median": median(lags), "lag_max": max(lags), "runs": runs}


def bench_cost(b: Any, n: int, pages: int, repeat: int, parent: Path | None, keep: bool) -> dict[str, Any]:
    rates: dict[int, list[float]] = {0: [], pages: []}
    cpu: dict[int, list[float]] = {0: [], pages: []}  # the manager's CPU seconds per 1,000 tasks
    for _ in range(repeat):
        for open_pages in (0, pages):
            with Cluster(sync="NORMAL", parent=parent, keep=keep) as cl:
                cl.start_manager()
                for k in range(2):
                    cl.start_worker(64, executor="noop", name=f"noop-{k}")
                contexts = []
                with cl.client() as c:
                    cl.wait_workers(c, 2)
                    for _ in range(open_pages):
                        page = signed_in(b, cl.url, cl.admin_token)
                        page.wait_for_selector("#live.on")
                        contexts.append(page.context)
                    time.sleep(1.0)  # the pages settled; the same pause without them
                    m0 = cpu_seconds(cl.manager_pid)
                    run = run_job(c, {"command": ["/bin/true"], "queue": n, "append_index": False},
                                  poll=0.02, timeout=600, check=cl.check_alive)
                    cpu[open_pages].append(1000 * (cpu_seconds(cl.manager_pid) - m0) / n)
                for context in contexts:
                    context.close()
                rates[open_pages].append(n / run.seconds)
    base, watched = median(rates[0]), median(rates[pages])
    return {"tasks_per_second_0": base, "tasks_per_second_pages": watched, "lost": 1 - watched / base,
            "manager_cpu_ms_per_1000_0": 1000 * median(cpu[0]),
            "manager_cpu_ms_per_1000_pages": 1000 * median(cpu[pages]),
            "pages": pages, "tasks": n, "repeat": repeat}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=int, default=1_000_000, help="task results in the store (default 1,000,000)")
    ap.add_argument("--jobs", type=int, default=1_000, help="ended jobs in the store (default 1,000)")
    ap.add_argument("--big", type=int, default=100_000, help="tasks of the job whose page is timed (default 100,000)")
    ap.add_argument("--noop", type=int, default=100_000, help="no-op tasks per run of the cost (default 100,000)")
    ap.add_argument("--pages", type=int, default=10, help="open pages while the cost is measured (default 10)")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each measure; medians are shown (default 3)")
    ap.add_argument("--lag-runs", type=int, default=5, help="jobs whose update lag is measured (default 5)")
    ap.add_argument("--parts", default="paint,lag,cost",
                    help="which measures to run, comma-separated, of paint, lag and cost (default all)")
    common_args(ap)
    args = ap.parse_args()
    parts = set(args.parts.split(","))
    if not parts or parts - {"paint", "lag", "cost"}:
        ap.error(f"--parts: {args.parts!r} must name some of paint, lag, cost, comma-separated")
    if min(args.tasks, args.jobs, args.big, args.noop, args.pages, args.repeat, args.lag_runs) < 1 \
            or args.big > args.tasks or args.jobs > args.tasks:
        ap.error("every count must be at least 1, and --big and --jobs at most --tasks")
    env = environment(args.state_parent)
    print_environment(env)
    p: dict[str, Any] = {}
    lag: dict[str, Any] = {}
    cost: dict[str, Any] = {}
    with browser() as b:
        if "paint" in parts:
            print(f"\nfilling a store with {args.tasks:,} task results in {args.jobs:,} jobs (one of {args.big:,}) ...")
            p = bench_paint(b, args.tasks, args.jobs, args.big, args.repeat, args.state_parent, args.keep)
            print_table(["measure", "seconds", "goal"], [
                ["jobs page: first contentful paint", f"{p['jobs_fcp']:.3f}", f"< {PAINT_GOAL:g}"],
                ["jobs page: response complete", f"{p['jobs_response']:.3f}", ""],
                [f"job page ({args.big:,} tasks): first contentful paint", f"{p['job_fcp']:.3f}", f"< {PAINT_GOAL:g}"],
                ["job page: response complete", f"{p['job_response']:.3f}", ""],
                ["job page: throughput plot drawn", f"{p['job_plot']:.3f}", ""],
                ["baseline: GET /v1/jobs?all=true&limit=50", f"{p['rest_jobs']:.3f}", ""],
            ], title=f"paint, median of {args.repeat} (store filled in {p['fill_seconds']:.1f}s)")
        if "lag" in parts:
            lag = bench_lag(b, args.lag_runs, args.state_parent, args.keep)
            print_table(["measure", "seconds", "goal"], [
                ["result durable -> page shows it (median)", f"{lag['lag_median']:.3f}", f"<= {LAG_GOAL:g}"],
                ["result durable -> page shows it (max)", f"{lag['lag_max']:.3f}", f"<= {LAG_GOAL:g}"],
            ], title=f"update lag, {args.lag_runs} jobs")
        if "cost" in parts:
            cost = bench_cost(b, args.noop, args.pages, args.repeat, args.state_parent, args.keep)
            print_table(["open pages", "tasks/s", "ratio", "manager CPU ms / 1,000 tasks"], [
                ["0", fmt_num(cost["tasks_per_second_0"]), "1.00", f"{cost['manager_cpu_ms_per_1000_0']:.1f}"],
                [str(args.pages), fmt_num(cost["tasks_per_second_pages"]),
                 f"{cost['tasks_per_second_pages'] / cost['tasks_per_second_0']:.2f}",
                 f"{cost['manager_cpu_ms_per_1000_pages']:.1f}"],
            ], title=f"cost to the scheduler: {args.noop:,} no-op tasks, median of {args.repeat}; "
                     f"{100 * cost['lost']:.1f}% lost (goal <= {100 * COST_GOAL:g}%)")
    append_json(args.json, "dashboard", vars(args) | {"json": None, "state_parent": None}, env,
                {"paint": p, "lag": lag, "cost": cost})
    return 0


if __name__ == "__main__":
    main_guard(main)
