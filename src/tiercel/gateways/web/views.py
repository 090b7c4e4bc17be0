"""What the dashboard's pages show, computed from the read model's answers: no I/O, no clock of its own.

Each function takes what a query returned (and ``now`` when time matters) and gives the plain
values a template prints; the templates escape them all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from tiercel.core.model import JobSpec, JobState
from tiercel.core.reservations import Reservation, when
from tiercel.manager import queries
from tiercel.manager.events import JobSummary
from tiercel.manager.workflows import state_of
from tiercel.store import WorkflowRow

BAR_STATES = ("done", "failed", "cancelled", "running", "queued")  # left to right in a state bar
PAGE_SIZES = (25, 50, 100, 200)
STATE_NAMES = tuple(s.value for s in JobState)


@dataclass(frozen=True, slots=True)
class Segment:
    state: str
    count: int
    x: float  # percent of the bar's width
    width: float


def bar(counts: dict[str, int]) -> list[Segment]:
    """A job's state bar: one segment per task state, in percent of its tasks."""
    total = max(1, int(counts.get("total", 0)))
    out, x = [], 0.0
    for state in BAR_STATES:
        n = int(counts.get(state, 0))
        if n:
            w = 100.0 * n / total
            out.append(Segment(state, n, round(x, 3), round(w, 3)))
            x += w
    return out


def age(seconds: float) -> str:
    """A span as people read it at a glance: 42s, 7m, 3h, 12d."""
    s = max(0, int(seconds))
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m"
    if s < 172_800:
        return f"{s // 3600}h"
    return f"{s // 86_400}d"


def rate(job: dict[str, Any], now: float) -> float | None:
    """Tasks settled per second since the job was submitted (until it ended); None before any did."""
    settled = job["done"] + job["failed"]
    if not settled:
        return None
    span = (job["ended"] or now) - job["submitted"]
    return settled / span if span > 0 else None


def rate_text(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:,.0f}/s" if value >= 10 else f"{value:.2g}/s"


def job_row(summary: JobSummary, places: tuple[str, ...], now: float) -> dict[str, Any]:
    """One row of the jobs page."""
    j = summary.to_json()
    shown = list(places[:3]) + ([f"+{len(places) - 3}"] if len(places) > 3 else [])
    return {**j, "queue_name": summary.spec.queue, "bar": bar(j), "places": shown,
            "age": age(now - summary.submitted), "rate": rate_text(rate(j, now)),
            "title": summary.spec.name or " ".join(summary.spec.command)}


def histogram(job: dict[str, Any]) -> list[tuple[str, int, float]]:
    """The task-state histogram: each state, its count, and its share of the largest."""
    top = max([job[s] for s in BAR_STATES] + [1])
    return [(s, job[s], round(100.0 * job[s] / top, 3)) for s in ("queued", "running", "done", "failed", "cancelled")]


def plot_steps(start: float, end: float, points: int = 120) -> tuple[float, int]:
    """The throughput plot's step (whole seconds) and how many steps go from ``start`` to ``end``: at most
    ``points``; (0, 0) when there is no span to draw."""
    if end <= start:
        return 0.0, 0
    step = max(1.0, math.ceil((end - start) / points))
    return step, max(1, math.ceil((end - start) / step))


def throughput(spans: list[tuple[int, int]], start: float, step: float, n: int) -> dict[str, list[float]]:
    """Tasks settled per second in each of ``n`` steps from ``start``, from the store's count per step
    (Store.settled_per_step); a count past the last step goes in the last."""
    if not spans or n < 1:
        return {"t": [], "rate": []}
    counts = [0] * n
    for i, c in spans:
        counts[min(max(i, 0), n - 1)] += c
    return {"t": [start + (i + 1) * step for i in range(n)], "rate": [c / step for c in counts]}


def describe(spec: JobSpec) -> list[tuple[str, str]]:
    """The job as submitted, field by field (the fields that say something)."""
    rows = [("command", " ".join(spec.command) if not spec.shell else spec.command[0]),
            ("run with", "/bin/sh -c" if spec.shell else "exec, without a shell"),
            ("indexes", spec.indexes.text()), ("queue", spec.queue)]
    optional: list[tuple[str, object]] = [
        ("name", spec.name), ("requires", ", ".join(sorted(spec.requires))),
        ("walltime", f"{spec.walltime:g}s" if spec.walltime else ""), ("retries", spec.retries or ""),
        ("cpus", spec.cpus if spec.cpus != 1 else ""), ("memory", f"{spec.memory_mb} MB" if spec.memory_mb else ""),
        ("priority", spec.priority or ""), ("max running", spec.max_running or ""),
        ("max failures", spec.max_failures or ""), ("held", "yes" if spec.held else ""),
        ("site", spec.site or ""), ("reservation", spec.reservation or ""), ("cwd", spec.cwd or ""),
        ("environment", " ".join(f"{k}={v}" for k, v in spec.env)), ("cleanup", spec.cleanup or ""),
        ("after", ", ".join(f"{d.job}:{d.kind}" for d in spec.after)), ("stdout", spec.stdout or ""),
        ("stderr", spec.stderr or ""), ("index appended", "" if spec.append_index else "no"),
    ]
    return rows + [(k, str(v)) for k, v in optional if v not in ("", 0, None)]


def timeline(reservations: list[Reservation], now: float, width: float = 1000.0) -> dict[str, Any]:
    """Reservations as windows on a time line per site: x and width in the drawing's units."""
    if not reservations:
        return {"sites": [], "start": when(now), "end": when(now), "now_x": 0.0, "width": width}
    start = min(now, *(r.start for r in reservations))
    end = max(now + 60, *(r.end for r in reservations))
    scale = width / (end - start)
    sites: dict[str, list[dict[str, Any]]] = {}
    for r in reservations:
        sites.setdefault(r.site, []).append({
            "name": r.name, "x": round((r.start - start) * scale, 2),
            "w": round(max(2.0, (r.end - r.start) * scale), 2), "slots": r.slots, "users": ", ".join(sorted(r.users)),
            "from": when(r.start), "to": when(r.end), "active": r.active(now)})
    return {"sites": sorted(sites.items()), "start": when(start), "end": when(end),
            "now_x": round((now - start) * scale, 2), "width": width}


MAX_BARS = 12  # jobs of a workflow drawn as bars in the workflows listing; the rest are counted


def workflow_row(row: WorkflowRow, jobs: list[JobSummary], now: float) -> dict[str, Any]:
    """One row of the workflows page: its state, its tasks' bar, and a small bar per job (the first few)."""
    counts = [j.to_json() for j in jobs]
    total = {k: sum(int(c[k]) for c in counts) for k in ("total", *BAR_STATES)}
    names = {job_id: name for name, job_id in row.jobs}
    return {"id": row.id, "name": row.name, "owner": row.owner, "state": state_of(jobs) if jobs else "queued",
            "age": age(now - row.submitted), "submitted": row.submitted, "bar": bar(total), "counts": total,
            "jobs": [{"id": j.id, "name": names.get(j.id, ""), "state": j.state.value, "bar": bar(c)}
                     for j, c in zip(jobs[:MAX_BARS], counts, strict=False)],
            "more": max(0, len(jobs) - MAX_BARS), "job_ids": [j.id for j in jobs]}


def workflow_jobs(row: WorkflowRow, jobs: list[JobSummary]) -> list[dict[str, Any]]:
    """A workflow's jobs in the order they were submitted, each with what it waits for: a job of the
    workflow by its name, any other by its id."""
    names = {job_id: name for name, job_id in row.jobs}
    out = []
    for j in jobs:
        c = j.to_json()
        after = [{"job": d.job, "label": names.get(d.job, f"job {d.job}"), "kind": d.kind} for d in j.spec.after]
        out.append({**c, "name": names.get(j.id, ""), "bar": bar(c), "after": after,
                    "command": " ".join(j.spec.command)})
    return out


def size_text(n: int) -> str:
    """Bytes as people read them: 512 B, 20 kB, 1.5 MB, 3.2 GB (powers of 1000, as copy rates are given)."""
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000:
            return f"{int(value)} B" if unit == "B" else f"{value:.1f}".removesuffix(".0") + f" {unit}"
        value /= 1000
    return f"{value:,.1f}".removesuffix(".0") + " TB"


def data_panel(spec: JobSpec, explained: dict[str, Any] | None) -> dict[str, Any] | None:
    """A job's data panel: its input and output patterns and, while its tasks wait, explain's data part
    (each place its first waiting task could run: the node, whether it holds the inputs, what a copy
    there costs). None for a job that names no files."""
    if not spec.inputs and not spec.outputs:
        return None
    d = (explained or {}).get("data") or {}
    rate = d.get("copy_rate")
    places = [{"worker": p["worker"], "node": p["node"] or "-", "holds": "yes" if p["local"] else "no",
               "bytes": size_text(int(p["copy_bytes"])),
               "seconds": "-" if p["local"] else "?" if p["copy_seconds"] is None else f"{p['copy_seconds']:g}s"}
              for p in d.get("places", [])]
    return {"inputs": list(spec.inputs), "outputs": list(spec.outputs), "reason": d.get("reason", ""),
            "copies": (f"copies at {size_text(int(rate))}/s, {d.get('copies_under_way', 0)} under way"
                       if rate else ""), "places": places}


def replica_table(jobs: list[dict[str, Any]], nodes: list[dict[str, Any]]) -> dict[str, Any]:
    """The datasets page's table: a column per node (those the manager knows, then any other that holds
    a file), a row per job with how many of its counted input files each node holds."""
    known = [n["node"] for n in nodes]
    states = {n["node"]: n["state"] for n in nodes}
    extra = sorted({h for j in jobs for h in j["nodes"]} - set(known))
    columns = [{"node": n, "state": states.get(n, "unknown")} for n in known + extra]
    rows = []
    for j in jobs:
        note = f"{j['counted']:,} of {j['files']:,} counted (its first tasks')" if j["counted"] < j["files"] else ""
        rows.append({**j, "cells": [j["nodes"].get(c["node"], 0) for c in columns], "note": note})
    return {"columns": columns, "rows": rows}


# what a peer's row changes with every ping or message: the peers page shows them, but a change of
# them alone is no reason to read the page again (its ages tick in the browser)
PEER_CHATTER = ("rtt_ms", "last_exchange", "summary_at", "messages_in", "messages_out")


def peer_rows(rows: list[dict[str, Any]], admin: bool, now: float) -> list[dict[str, Any]]:
    """The peers page's rows from `tiercel peers`' (Queries.peers): each peer with its link, its offer and a
    line per site it offers; the work each way and the refusals (newest first) for an admin only."""
    out = []
    for r in rows:
        row = {k: r.get(k) for k in (r if admin else queries.PEER_PUBLIC)}
        row["rtt"] = "" if r.get("rtt_ms") is None else f"{r['rtt_ms']:g} ms"
        row["heard"] = None if r.get("last_exchange") is None else age(now - r["last_exchange"])
        row["sites"] = [{**s, "tags": ", ".join(s.get("tags", ()))} for s in r.get("sites", ())]
        offer = r.get("offer") or {}
        row["offer_text"] = (f"{offer.get('slots_free', 0):,} of {offer.get('slots_total', 0):,} slots free "
                             f"at {offer.get('sites', 0)} site(s)") if r.get("sites") else "nothing yet"
        if admin:
            row["refusals"] = [{"age": age(now - x["at"]), "at": x["at"], "what": x["what"]}
                               for x in reversed(r.get("refusals", ()))]
        out.append(row)
    return out


def peers_mark(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The peers as the pool's change mark sees them: without what moves with every ping."""
    return [{k: v for k, v in r.items() if k not in PEER_CHATTER} for r in rows]


def forwarded_rows(forwarded: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A job's ranges forwarded to peers (explain's ``forwarded``), by peer then by their first index."""
    def first(x: dict[str, Any]) -> int:
        head = str(x.get("indexes", "")).split(",")[0].split("-")[0].split(":")[0]
        return int(head) if head.isdigit() else 0

    return [{"indexes": x["indexes"], "peer": x["peer"], "why": x.get("why") or "", "state": x["state"],
             "epoch": x["epoch"], "settled": f"{x['settled']:,}/{x['tasks']:,}", "lease": x.get("lease", "")}
            for x in sorted(forwarded, key=lambda x: (str(x["peer"]), first(x), int(x["epoch"])))]
