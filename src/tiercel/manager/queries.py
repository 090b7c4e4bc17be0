"""The manager's read model: what the REST API, the gateways and the CLI may know.

Every answer is read, never changed: queries compute on the engine's state (on the event
loop, where it lives) and read the store in a worker thread, so a slow store never stalls
dispatch and a query never alters what the scheduler will do (``explain`` included).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from itertools import islice
from typing import TYPE_CHECKING, Any, Protocol

from tiercel.core import policies as registry
from tiercel.core.data import DataView, path_of, per_task
from tiercel.core.engine import Engine
from tiercel.core.model import Counts, JobId, JobSpec, JobState, UserName
from tiercel.core.reservations import Reservation
from tiercel.core.scheduling import why_waiting
from tiercel.core.sites import POOL, SiteLoad
from tiercel.manager.auth import Identity
from tiercel.manager.events import JobSummary
from tiercel.manager.peerhooks import PeerHooks
from tiercel.manager.sessions import PlaceKind, Sessions
from tiercel.manager.settings import Settings
from tiercel.sites.site import Site
from tiercel.store import AttemptRow, JobRow, Store, WorkflowRow
from tiercel.store.base import STREAMS, ManagerEntry

if TYPE_CHECKING:
    from tiercel.data.service import DataService

RESTART_HOLD = "held while workers reconnect after a restart"
QUEUE_SCAN = 10_000  # ended jobs a listing filtered by queue reads at most (the queue is inside each stored spec)
FILES_COUNTED = 10_000  # input files of one job whose replicas are counted (its first tasks')
DATA_JOBS = 20  # unfinished jobs with inputs whose files are counted at once (the newest)


class Readable(Protocol):
    """What the read model reads: the shell's state, never its commands."""

    engine: Engine
    sessions: Sessions
    sites: dict[str, Site]
    store: Store
    settings: Settings
    clock: Callable[[], float]
    started: float
    data: DataService | None  # Gfarm, once a job named files there
    peers: PeerHooks

    def recently_ended(self, job_id: JobId) -> JobSummary | None: ...


# What a user who is not an admin may see of a peer: its link and what it offers, never the work it holds
# (which sums everyone's jobs) nor its refusals (which name other users' ranges) nor its URL.
PEER_PUBLIC = ("name", "state", "link", "why", "rtt_ms", "last_exchange", "offer", "sites")


class Queries:
    def __init__(self, shell: Readable) -> None:
        self._shell = shell

    # ---- jobs ------------------------------------------------------------

    def live(self, job_id: JobId) -> JobSummary | None:
        """A job the manager holds in memory (unfinished, or ended recently); None otherwise."""
        shell = self._shell
        run = shell.engine.jobs.get(job_id)
        if run is not None:
            counts = run.counts()
            waiting = None
            if counts.queued and not counts.running:
                explained = shell.engine.explain(job_id, shell.clock()) if (run.waits or run.gated or run.spec.held) \
                    else None
                if explained is not None and explained.status is not None:
                    waiting = f"{explained.status.policy}: {explained.status.reason}"
                elif self.held():
                    waiting = RESTART_HOLD
                elif job_id in shell.engine.data_waits:  # its files hold it, not its workers
                    waiting = f"data: {shell.engine.data_waits[job_id]}"
                else:
                    waiting = why_waiting(run.spec, [s.info for s in shell.sessions if s.open])
            return JobSummary(job_id, run.owner, run.spec, run.submitted, run.state(), counts, None, waiting,
                              run.reason)
        return shell.recently_ended(job_id)

    async def summary(self, job_id: JobId) -> JobSummary | None:
        found = self.live(job_id)
        if found is not None:
            return found
        row = await asyncio.to_thread(self._shell.store.job, job_id)
        return None if row is None else self.live(job_id) or _from_row(row)

    async def summaries(self, job_ids: list[JobId]) -> list[JobSummary]:
        """Many jobs at once (a workflow's): the live ones from memory, the ended ones read from the
        store in one trip to a thread, not one per job."""
        live = {j: s for j in job_ids if (s := self.live(j)) is not None}
        rest = [j for j in job_ids if j not in live]
        store = self._shell.store
        rows = await asyncio.to_thread(lambda: [store.job(j) for j in rest]) if rest else []
        ended = {r.id: self.live(r.id) or _from_row(r) for r in rows if r is not None}
        return [s for j in job_ids if (s := live.get(j) or ended.get(j)) is not None]

    async def jobs(self, who: Identity, everyone: bool, limit: int = 200) -> list[JobSummary]:
        owner = None if (who.admin and everyone) else who.user
        rows = await asyncio.to_thread(self._shell.store.jobs, owner, limit)
        return [self.live(row.id) or _from_row(row) for row in rows]

    async def jobs_page(self, owner: UserName | None, states: tuple[JobState, ...] = (), queue: str | None = None,
                        offset: int = 0, limit: int = 50) -> tuple[list[tuple[JobSummary, tuple[str, ...]]], bool]:
        """A page of a listing of jobs (``owner``'s, or everyone's when None) with where each ran, and
        whether more follow: unfinished jobs first, newest first, from memory; then ended ones, the last
        ended first, from the store. One row per job, never per task."""
        shell = self._shell
        engine = shell.engine
        open_states = {s for s in states if not s.terminal}
        ended_states = tuple(s for s in states if s.terminal)
        live: list[JobId] = []
        if not states or open_states:
            for job_id in sorted(engine.jobs, reverse=True):
                run = engine.jobs[job_id]
                if (owner is None or run.owner == owner) and (queue is None or run.spec.queue == queue) \
                        and (not open_states or run.state() in open_states):
                    live.append(job_id)
        wanted = live[offset:offset + limit + 1]
        found = [s for j in wanted if (s := self.live(j)) is not None]
        need = limit + 1 - len(found)
        store = shell.store
        skip = max(0, offset - len(live))

        def read() -> tuple[list[JobRow | None], list[JobRow]]:
            stored = [store.job(s.id) for s in found[:limit]]  # where the live ones ran so far
            if need <= 0 or (states and not ended_states):
                return stored, []
            if queue is None:
                return stored, store.history(owner, None, ended_states, skip + need)[skip:]
            # the queue is inside the stored spec: read a bounded stretch and keep that queue's jobs
            rows = [r for r in store.history(owner, None, ended_states, QUEUE_SCAN) if r.spec.queue == queue]
            return stored, rows[skip:skip + need]

        stored, ended = await asyncio.to_thread(read)
        page = [(s, r.places if r is not None else ()) for s, r in zip(found[:limit], stored, strict=False)]
        page += [(self.live(r.id) or _from_row(r), r.places) for r in ended]
        return page[:limit], len(page) > limit

    async def settled_per_step(self, job_id: JobId, start: float, step: float) -> list[tuple[int, int]]:
        """How many of a job's tasks settled in each ``step`` seconds from ``start`` (Store.settled_per_step):
        what a throughput plot is drawn from, counted by the store."""
        return await asyncio.to_thread(self._shell.store.settled_per_step, job_id, start, step)

    async def attempts(self, job_id: JobId, index: int | None, final: bool) -> list[AttemptRow]:
        return await asyncio.to_thread(self._shell.store.attempts, job_id, index, final)

    async def attempts_page(self, job_id: JobId, after: int, limit: int, final: bool = False,
                            streams: tuple[str, ...] = STREAMS, within: tuple[tuple[int, int], ...] = (),
                            max_bytes: int | None = None) -> list[AttemptRow]:
        """Every attempt of the next ``limit`` tasks above index ``after`` (see Store.attempts_page)."""
        return await asyncio.to_thread(self._shell.store.attempts_page, job_id, after, limit, final, streams, within,
                                       max_bytes)

    async def stored(self, job_id: JobId) -> JobRow | None:
        """The job's row as stored (where it ran, when its outputs were dropped), whatever the engine holds."""
        return await asyncio.to_thread(self._shell.store.job, job_id)

    async def history(self, owner: UserName | None, since: float | None, states: tuple[JobState, ...],
                      limit: int) -> list[JobRow]:
        """Ended jobs of ``owner`` (everyone's when None), the last ended first."""
        return await asyncio.to_thread(self._shell.store.history, owner, since, states, limit)

    async def workflow(self, workflow_id: int) -> tuple[WorkflowRow, list[JobSummary]] | None:
        """A workflow as stored, with its jobs' summaries in submission order; None for no such workflow."""
        row = await asyncio.to_thread(self._shell.store.workflow, workflow_id)
        return None if row is None else (row, await self.summaries([job_id for _, job_id in row.jobs]))

    async def workflows(self, owner: UserName | None, limit: int) -> list[tuple[WorkflowRow, list[JobSummary]]]:
        """The newest workflows of ``owner`` (everyone's when None), each with its jobs' summaries."""
        rows = await asyncio.to_thread(self._shell.store.workflows, owner, limit)
        return [(row, await self.summaries([job_id for _, job_id in row.jobs])) for row in rows]

    def unfinished(self, owner: UserName) -> list[JobId]:
        """The owner's jobs that have not ended, newest last."""
        return sorted(j for j, run in self._shell.engine.jobs.items() if run.owner == owner)

    def held(self) -> bool:
        """Dispatch waits for the workers known before a restart to come back."""
        return self._shell.engine.held(self._shell.clock())

    def explain(self, summary: JobSummary) -> dict[str, Any]:
        """Why a job's waiting tasks are not running: its queue's verdict and each worker's."""
        found = self._shell.engine.explain(summary.id, self._shell.clock())
        if self.held():
            verdict: dict[str, Any] | None = {"code": "wait", "policy": "restart", "reason": RESTART_HOLD}
        elif found is None or found.status is None:
            verdict = None
        else:
            verdict = {"code": found.status.code.value, "policy": found.status.policy,
                       "reason": found.status.reason}
        return {
            "job": summary.to_json(), "queue": found.queue if found else summary.spec.queue,
            "verdict": verdict,
            "site": found.site if found else None, "site_reason": found.site_reason if found else "",
            "workers": [{"worker": name, "code": st.code.value, "policy": st.policy, "reason": st.reason}
                        for name, st in (found.workers if found else [])],
            **({"data": self._data(summary)} if summary.spec.inputs else {}),
            "forwarded": self._shell.peers.forwarded(summary.id),
        }

    def _data(self, summary: JobSummary) -> dict[str, Any]:
        """explain's data part: why its tasks wait for their files, and for its first waiting task each
        connected worker's node, whether it holds every input, and the bytes (and seconds) to copy there."""
        engine = self._shell.engine
        job = engine.jobs.get(summary.id)
        if job is None:
            return {"reason": "", "places": []}
        view = engine.data
        rate = view.copy_rate
        places = engine.data_costs(job, [w for w in engine.workers.values() if w.connected])
        return {"reason": engine.data_waits.get(summary.id, ""), "reachable": view.reachable,
                "copies_under_way": len(view.copying), "copy_rate": rate,
                "places": [{"worker": name, "node": node, "local": local, "copy_bytes": size,
                            "copy_seconds": round(size / rate, 3) if rate else None}
                           for name, node, local, size in places]}

    # ---- the pool's own views: they hold no one's jobs ---------------------

    def queues(self) -> list[dict[str, Any]]:
        engine = self._shell.engine
        load: dict[str, list[int]] = {name: [0, 0, 0] for name in engine.queues}
        for job in engine.jobs.values():
            q = load[engine.queue_of(job)]
            q[0] += 1
            q[1] += job.pending
            q[2] += len(job.running)
        configured = self._shell.settings.queues
        out = []
        for name in engine.queues:
            conf = configured.get(name)
            names = registry.placement_names(list(conf.policies) if conf else registry.default_names())
            out.append({"name": name, "default": name == engine.default_queue,
                        "policies": names,
                        "limits": conf.limits if conf else {}, "jobs": load[name][0], "queued": load[name][1],
                        "running": load[name][2], "description": conf.description if conf else "",
                        "error": engine.queue_errors.get(name)})
        return out

    def workers(self) -> list[dict[str, Any]]:
        out = []
        for wid, w in self._shell.engine.workers.items():
            s = self._shell.sessions.get(wid)
            site = s is not None and s.kind is PlaceKind.SITE
            out.append({"id": wid, "name": w.info.name, "host": w.info.host, "slots": w.info.slots,
                        "busy": len(w.tasks), "tags": sorted(w.info.tags), "connected": w.connected,
                        "draining": w.draining,
                        "link": s.transport if s is not None and (s.open or site) else "",
                        "last_seen": None if site or s is None else s.last_seen,
                        "tasks_run": s.ran if s is not None else 0, "refused": w.refused,
                        "data_node": w.info.data_node})
        return out

    def gfarm(self) -> dict[str, Any]:
        """The Gfarm nodes the manager knows, each ``up``, ``down`` or ``unknown`` (its watch has not
        answered yet) with the workers next to it, and whether the metadata server answers. ``used`` is
        False while no job has named files there since the manager started (nothing asked Gfarm)."""
        shell = self._shell
        beside: dict[str, list[str]] = {}
        for w in shell.engine.workers.values():
            if w.info.data_node:
                beside.setdefault(w.info.data_node, []).append(w.info.name)
        service = shell.data
        view = shell.engine.data
        up = service.up if service is not None else None  # replaced whole by the watch, never changed in place
        names = set(beside) | set(up or ()) | set(view.down)
        nodes = [{"node": n, "state": "unknown" if up is None else "up" if n in up else "down",
                  "workers": sorted(beside.get(n, []))} for n in sorted(names)]
        if service is None:
            return {"used": False, "reachable": None, "problem": "", "nodes": nodes, "copies_under_way": 0,
                    "copies_made": 0, "copied_bytes": 0}
        return {"used": True, "reachable": view.reachable, "problem": view.problem, "nodes": nodes,
                "copies_under_way": len(view.copying), "copies_made": service.copies_made,
                "copied_bytes": service.copied_bytes}

    async def input_replicas(self, owner: UserName | None) -> tuple[list[dict[str, Any]], int]:
        """``owner``'s unfinished jobs with inputs (everyone's when None), the newest DATA_JOBS of them, each
        with its input files counted by where their replicas are (see ``replica_counts``); and how many
        such jobs were left out. Counted in a thread, on the replica map the scheduler reads now."""
        engine = self._shell.engine
        view = engine.data  # replaced whole when it changes: safe to read from a thread
        found = [(j, run.owner, run.spec) for j, run in sorted(engine.jobs.items(), reverse=True)
                 if run.spec.inputs and (owner is None or run.owner == owner)]
        shown = found[:DATA_JOBS]
        rows = await asyncio.to_thread(lambda: [{"id": j, "owner": who, "name": spec.name or " ".join(spec.command),
                                                 **replica_counts(j, spec, view)} for j, who, spec in shown])
        return rows, len(found) - len(shown)

    def managers(self) -> list[ManagerEntry]:
        """A manager on its own store (SQLite) is the only one, and active since it started."""
        shell = self._shell
        url = shell.settings.url
        return [ManagerEntry(url.split("//", 1)[-1] or "manager", url, "active", shell.started, None, 0.0, True)]

    def pool(self) -> dict[str, int]:
        """The pool at a glance (the ad-hoc pool command): workers, slots, busy slots, jobs, waiting tasks."""
        engine = self._shell.engine
        connected = [w for w in engine.workers.values() if w.connected]
        return {"workers": len(connected),
                "xmpp_workers": sum(1 for s in self._shell.sessions if s.open and s.transport == "xmpp"),
                "slots": sum(w.info.slots for w in connected),
                "busy": sum(min(len(w.tasks), w.info.slots) for w in connected),  # not counting prefetch
                "jobs": len(engine.jobs), "queued": sum(j.pending for j in engine.jobs.values())}

    def site_load(self, site: str) -> tuple[SiteLoad, int, int]:
        """A site's slots (total and free), the slots its waiting work needs, and its running tasks."""
        engine = self._shell.engine
        loads = engine.site_loads().get(site, SiteLoad())
        running = sum(len(w.tasks) for w in engine.workers.values() if w.info.site == site)
        return loads, engine.waiting_on(site), running

    def sites(self) -> list[dict[str, Any]]:
        """`tiercel sites`: the pool, then each configured site."""
        pool, queued, running = self.site_load(POOL)
        rows: list[dict[str, Any]] = [{
            "name": POOL, "kind": POOL, "mode": POOL, "state": "ok",
            "slots_total": pool.total, "slots_free": pool.free, "queued": queued, "running": running,
            "batch_jobs": 0, "last_poll": None, "last_error": None, "last_error_at": None, "commands": {},
        }]
        rows += [site.describe() for site in self._shell.sites.values()]
        return rows + self._shell.peers.site_rows()

    def peers(self, admin: bool = True) -> list[dict[str, Any]]:
        """`tiercel peers`: each configured peer manager's link, round trip, last exchange, offer (its sites),
        the work forwarded each way and what was refused; none for a manager without [peers.NAME].
        Not for an admin: the link and the offer only (PEER_PUBLIC)."""
        rows = self._shell.peers.rows()
        return rows if admin else [{k: r[k] for k in PEER_PUBLIC if k in r} for r in rows]

    def reservations(self) -> list[Reservation]:
        return sorted(self._shell.engine.reservations.values(), key=lambda r: r.start)

    def reservation(self, name: str) -> Reservation | None:
        return self._shell.engine.reservations.get(name)


def replica_counts(job_id: int, spec: JobSpec, view: DataView, limit: int = FILES_COUNTED) -> dict[str, Any]:
    """A job's input files by where their replicas are: ``files`` in all, ``counted`` of them (those of its
    first ``limit`` tasks, each file once), of which ``unknown`` not located yet, ``missing`` with no
    replica, and ``nodes``: for each node, how many of the counted files it holds."""
    total = sum(spec.size if per_task(url) else 1 for url in spec.inputs)
    paths: set[str] = set()
    for url in spec.inputs:
        if per_task(url):
            paths.update(path_of(url, job_id, i) for i in islice(spec.indexes, limit))
        else:
            paths.add(path_of(url, job_id, 0))
    unknown = missing = 0
    nodes: dict[str, int] = {}
    for p in paths:
        hosts = view.replicas.get(p)
        if hosts is None:
            unknown += 1
        elif not hosts:
            missing += 1
        for h in hosts or ():
            nodes[h] = nodes.get(h, 0) + 1
    return {"inputs": list(spec.inputs), "files": total, "counted": len(paths), "unknown": unknown,
            "missing": missing, "nodes": dict(sorted(nodes.items()))}


def _from_row(row: JobRow) -> JobSummary:
    if row.state is None or row.counts is None:  # stored but not yet live (should not happen)
        return JobSummary(row.id, row.owner, row.spec, row.submitted, JobState.QUEUED,
                          Counts(total=row.spec.size, queued=row.spec.size))
    return JobSummary(row.id, row.owner, row.spec, row.submitted, row.state, row.counts, row.ended, reason=row.reason)
