"""The manager's shell: it feeds events to the engine and performs the effects.

Every engine call happens on the event loop thread, so the engine needs no
locks. Writes go to the store's group-commit writer; effects that others can
observe (a result acknowledged, a job announced as ended) happen only once the
write that records them is durable.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import getpass
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tiercel.core.engine import Effect, Engine, JobEnded, KillTasks, Persist, Refused, RunCleanup, SendTasks
from tiercel.core.model import Counts, JobId, JobSpec, JobState, Report, TaskRef, UserName, WorkerId, WorkerInfo
from tiercel.core.problems import MISSING, Problem, Refusal
from tiercel.core.reservations import Reservation, when
from tiercel.core.scheduling import why_waiting
from tiercel.core.seal import Seal
from tiercel.core.sites import SiteLoad, site_of_worker
from tiercel.manager.auth import Identity, digest, new_token, token_id
from tiercel.manager.statedir import disk_full
from tiercel.protocol import key_to_wire, ref_from_wire, ref_to_wire, report_from_wire, spec_to_dict
from tiercel.queues import Queue
from tiercel.sites import build as build_sites
from tiercel.sites.config import infos
from tiercel.store import (
    AddJob,
    DeleteReservation,
    DeleteToken,
    EndJob,
    ForgetWorker,
    JobRow,
    Record,
    SaveReservation,
    SaveToken,
    SeenWorker,
    Store,
    TouchToken,
    WriteOp,
)

log = logging.getLogger("tiercel.manager")

Send = Callable[[dict[str, Any]], None]
TOKEN_USE_RESOLUTION = 60.0  # seconds: how fresh a token's "last used" is kept in the store
ENDED_CACHE = 1000  # summaries of recently ended jobs kept in memory; older ones are read from the store


class Unavailable(Exception):
    """The manager cannot take new work now (its disk is full, its store refuses); reads still work."""


@dataclass
class Settings:
    state_dir: Path
    worker_timeout: float = 30.0  # silence after which a worker's tasks are re-queued
    heartbeat: float = 5.0  # how often workers say they are alive
    reconnect_grace: float = 10.0  # after a restart, how long to wait for workers to reclaim tasks
    max_tasks: int = 100_000_000
    queues: dict[str, Queue] = field(default_factory=dict)  # from the config file; empty: one default queue
    pool_slots: int = 0  # the pool's size for reservations, when more than the workers connected now
    sites: dict[str, Any] = field(default_factory=dict)  # [sites.NAME] from the config file (sites.config)
    url: str = ""  # where the manager serves: what pilots connect to unless a site says otherwise
    xmpp: Any = None  # the [xmpp] table (gateways.xmpp_config.XmppConfig): chat gateway and XMPP workers


@dataclass
class Connection:
    worker: WorkerId
    info: WorkerInfo
    send: Send
    connected_at: float
    transport: str = "websocket"
    ran: int = 0
    principal: str = ""  # who opened it (a token's digest, an XMPP bare JID): its worker id is theirs alone


@dataclass
class JobSummary:
    id: JobId
    owner: UserName
    spec: JobSpec
    submitted: float
    state: JobState
    counts: Counts
    ended: float | None = None
    waiting: str | None = None
    reason: str | None = None  # why it ended before all its tasks ran

    def to_json(self) -> dict[str, Any]:
        c = self.counts
        return {
            "id": self.id, "name": self.spec.name, "owner": self.owner, "state": self.state.value,
            "total": c.total, "queued": c.queued, "running": c.running, "done": c.done,
            "failed": c.failed, "cancelled": c.cancelled, "submitted": self.submitted,
            "ended": self.ended, "command": list(self.spec.command), "waiting": self.waiting,
            "reason": self.reason,
        }


@dataclass
class Events:
    """Fan-out of job events to event-stream subscribers and in-process listeners."""

    queues: set[asyncio.Queue[dict[str, Any]]] = field(default_factory=set)
    on_job_ended: list[Callable[[JobSummary], Awaitable[None] | None]] = field(default_factory=list)

    def publish(self, event: dict[str, Any]) -> None:
        for q in list(self.queues):
            if q.qsize() < 10_000:
                q.put_nowait(event)


class Manager:
    def __init__(self, store: Store, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock
        self._seal = Seal(b"")  # replaced by the store's key at start, before any task is handed out
        self.engine = self._engine()
        self.conns: dict[WorkerId, Connection] = {}
        self.tokens: dict[str, tuple[UserName, str]] = {}
        self.events = Events()
        self._next_job = 1
        self._ended_cache: dict[JobId, JobSummary] = {}
        self._ending: dict[JobId, JobSummary] = {}
        self._progress_seen: dict[JobId, tuple[int, int, int, int]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self.start_error: BaseException | None = None
        self._window_timer: asyncio.TimerHandle | None = None
        self._closed: set[str] = set()  # reservations whose end has been acted on
        self.created_tokens: dict[str, str] = {}
        self._token_used: dict[str, float] = {}
        # What to close when a token is revoked (event streams register here), by its digest.
        self.on_revoke: dict[str, set[Callable[[], None]]] = {}
        self.last_seen: dict[WorkerId, float] = {}
        self._background: set[asyncio.Future[Any]] = set()
        self._queue_errors: dict[str, str] = {}
        self.site_config = infos(settings.sites) if settings.sites else []
        self.sites = build_sites(settings.sites, self, settings.state_dir) if settings.sites else {}

    # ---- life cycle ------------------------------------------------------

    def _engine(self, **kw: Any) -> Engine:
        queues = self.settings.queues
        if not queues:
            return Engine(seal=self._seal, **kw)
        ordered = sorted(queues.values(), key=lambda q: not q.default)  # the default queue first
        return Engine(queues={q.name: q.chain for q in ordered}, seal=self._seal, **kw)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        loaded = await asyncio.to_thread(self.store.open)
        now = self.clock()
        self._next_job = loaded.next_job_id
        self._seal = self.engine.seal = Seal(loaded.seal_key)
        self.tokens = dict(loaded.tokens)
        if loaded.unfinished and loaded.workers:
            self.engine = self._engine(hold_until=now + self.settings.reconnect_grace,
                                       expected_workers=loaded.workers)
        for r in loaded.reservations:
            self.engine.restore_reservation(r)
        effects: list[Effect] = []
        for row, restored in loaded.unfinished:
            effects += self.engine.add_job(row.id, row.spec, row.owner, row.submitted, restored)
        self.sites_changed(pump=False)
        for name, site in self.sites.items():
            site.restore([r for r in loaded.site_jobs if r.site == name])
            site.attach()  # before any dispatch: tasks already in a batch system are not handed out again
        if not self.tokens:
            await self._first_tokens()
        await self.apply(effects)  # jobs whose every task had settled before the crash end now
        self.window_edge()  # windows that ended while the manager was down, and the next one to wait for
        log.info("manager ready: %d unfinished jobs restored", len(loaded.unfinished))

    async def _first_tokens(self) -> None:
        """On first start, make an admin token and a worker token and leave them in the state dir."""
        user = UserName(os.environ.get("TIERCEL_ADMIN_USER") or getpass.getuser())
        for role, who, fname in (("admin", user, "admin.token"), ("worker", UserName("worker"), "worker.token")):
            token = await self.create_token(who, role, label="created on first start")
            path = self.settings.state_dir / fname
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(token + "\n")
            self.created_tokens[role] = str(path)

    def close(self) -> None:
        self.store.close()

    # ---- identity --------------------------------------------------------

    def identify(self, token: str | None) -> Identity | None:
        if token is None:
            return None
        d = digest(token)
        found = self.tokens.get(d)
        if found is None:
            return None
        now = self.clock()
        if now - self._token_used.get(d, 0.0) >= TOKEN_USE_RESOLUTION:
            self._token_used[d] = now
            self.store.write([TouchToken(d, now)])  # not awaited: a lost touch only makes "last used" older
        return Identity(found[0], found[1], d)

    async def create_token(self, user: UserName, role: str, label: str = "") -> str:
        self.refuse_new_work()
        token = new_token()
        d = digest(token)
        await asyncio.wrap_future(self.store.write([SaveToken(d, user, role, label, self.clock())]))
        self.tokens[d] = (user, role)
        return token

    def token_rows(self) -> list[dict[str, Any]]:
        """`tiercel token list`: every token but never its secret (only a digest is kept anyway)."""
        return [{"id": token_id(t.digest), "user": t.user, "role": t.role, "label": t.label, "created": t.created,
                 "last_used": max(t.last_used or 0.0, self._token_used.get(t.digest, 0.0)) or None}
                for t in self.store.tokens()]

    async def revoke_token(self, tid: str) -> Identity | None:
        """Revoke the token whose id is ``tid``: refused from now on, its worker sessions and
        event streams closed. Returns whose it was, or None if there is no such token."""
        found = [d for d in self.tokens if token_id(d) == tid]
        if not found:
            return None
        d = found[0]
        await asyncio.wrap_future(self.store.write([DeleteToken(d)]))
        user, role = self.tokens.pop(d)
        self._token_used.pop(d, None)
        for conn in [c for c in self.conns.values() if c.principal == d]:
            conn.send({"t": "error", "msg": "this worker's token was revoked"})  # the channel closes after it
        for close in list(self.on_revoke.get(d, ())):
            close()
        log.warning("token %s (%s, %s) revoked", tid, user, role)
        return Identity(user, role, d)

    # ---- effects ---------------------------------------------------------

    def _collect(self, effects: Iterable[Effect], writes: list[WriteOp], after: list[Effect]) -> None:
        now = self.clock()
        for e in effects:
            if isinstance(e, Persist):
                writes.append(Record(e.records))
            elif isinstance(e, JobEnded):
                writes.append(EndJob(e.job, e.state, e.counts, now, e.reason))
                after.append(e)
                # Until its end is durable the job shows as running with every task settled.
                self._ending[e.job] = JobSummary(e.job, e.owner, e.spec, e.submitted, JobState.RUNNING, e.counts)
            elif isinstance(e, (SendTasks, KillTasks)):
                self._send_now(e)
            elif isinstance(e, Refused):
                self._refused(e)
            else:
                after.append(e)

    def apply(self, effects: Iterable[Effect], then: Callable[[], None] | None = None,
              *, barrier: bool = False) -> asyncio.Future[None]:
        """Perform effects; ``then`` runs once everything they wrote is durable.

        The returned future resolves at that same moment, for callers that answer
        a request only once its effects are durable. With ``barrier``, ``then``
        also waits for every write queued before it, even when these effects
        write nothing: a result reported twice is acknowledged only once the
        first report of it is durable.
        """
        loop = self._loop
        assert loop is not None
        done: asyncio.Future[None] = loop.create_future()
        writes: list[WriteOp] = []
        after: list[Effect] = []
        self._collect(effects, writes, after)
        if not writes and not barrier:
            self._durable(None, after, then, done)
            return done
        fut = self.store.write(writes)
        fut.add_done_callback(lambda f: loop.call_soon_threadsafe(self._durable, f, after, then, done))
        return done

    def _durable(self, fut: concurrent.futures.Future[None] | None, after: list[Effect],
                 then: Callable[[], None] | None, done: asyncio.Future[None]) -> None:
        exc = None if fut is None else fut.exception()
        if exc is not None:
            # The engine has moved on but the store has not: stop rather than serve a state
            # that a restart would not find. Nothing was acknowledged, so workers keep their
            # results and hand them in again to the restarted manager.
            log.critical("store write failed, stopping the manager: %s", exc)
            done.set_exception(exc)
            done.exception()  # retrieved: callers that do not await it are not warned
            os.kill(os.getpid(), signal.SIGTERM)
            return
        self._after(after)
        if then is not None:
            then()
        done.set_result(None)

    def _send_now(self, e: SendTasks | KillTasks) -> None:
        conn = self.conns.get(e.worker)
        if conn is None:
            native = site_of_worker(e.worker)
            if native is not None:
                site = self.sites.get(native)
                if site is not None:
                    site.send(e) if isinstance(e, SendTasks) else site.kill(e)
            return
        if isinstance(e, SendTasks):
            conn.ran += len(e.tasks)
            conn.send({
                "t": "tasks",
                "specs": {str(j): spec_to_dict(s) for j, s in e.specs.items()},
                "tasks": [ref_to_wire(r) for r in e.tasks],
            })
        else:
            conn.send({"t": "kill", "tasks": [key_to_wire(r) for r in e.tasks]})

    def _refused(self, e: Refused) -> None:
        w = self.engine.workers.get(e.worker)
        name = w.info.name if w is not None else e.worker
        shown = ", ".join(f"job {r.job} task {r.index} attempt {r.attempt}" for r in e.tasks[:5])
        more = f" and {len(e.tasks) - 5} more" if len(e.tasks) > 5 else ""
        log.warning("worker %s (%s) reported on %d attempt(s) it was not given, dropped: %s%s",
                    name, e.worker, len(e.tasks), shown, more)

    def _after(self, effects: list[Effect]) -> None:
        for e in effects:
            if isinstance(e, JobEnded):
                summary = JobSummary(e.job, e.owner, e.spec, e.submitted, e.state, e.counts, self.clock(),
                                     reason=e.reason)
                self._ending.pop(e.job, None)
                self._ended_cache[e.job] = summary
                while len(self._ended_cache) > ENDED_CACHE:
                    del self._ended_cache[next(iter(self._ended_cache))]
                self._progress_seen.pop(e.job, None)
                self.events.publish({"event": "job_finished", "job": summary.to_json()})
                for listener in self.events.on_job_ended:
                    try:
                        result = listener(summary)
                    except Exception:  # a listener's bug must not stop the job's end
                        log.exception("a job-ended listener failed for job %s", e.job)
                        continue
                    if asyncio.iscoroutine(result):
                        task = asyncio.ensure_future(result)
                        self._background.add(task)
                        task.add_done_callback(self._background.discard)
            elif isinstance(e, RunCleanup):
                self._send_cleanup(e.worker, e.job)

    def _send_cleanup(self, worker: WorkerId, job: JobId) -> None:
        conn = self.conns.get(worker)
        if conn is not None:
            conn.send({"t": "cleanup", "job": job})

    def pump(self) -> None:
        """Hand waiting tasks to workers with free slots."""
        effects = self.engine.dispatch(self.clock())
        if effects:
            self.apply(effects)
        if self.engine.queue_errors != self._queue_errors:
            for name, error in self.engine.queue_errors.items():
                if self._queue_errors.get(name) != error:
                    log.error("queue %s stopped: %s", name, error)
            self._queue_errors = dict(self.engine.queue_errors)

    # ---- jobs ------------------------------------------------------------

    def refuse_new_work(self) -> None:
        """Raise Unavailable when new work (a job, a reservation, a token) cannot be kept now."""
        full = disk_full(self.settings.state_dir)
        if full is not None:
            raise Unavailable(full)

    async def submit(self, owner: UserName, spec: JobSpec) -> JobSummary:
        """Store and start a job; Unavailable (nothing kept, no job id used) if it cannot be stored."""
        self.refuse_new_work()
        job_id = JobId(self._next_job)
        self._next_job += 1
        now = self.clock()
        try:
            await asyncio.wrap_future(self.store.write([AddJob(job_id, owner, spec, now)]))
        except Exception as exc:
            if self._next_job == job_id + 1:
                self._next_job = job_id  # nobody took a later id meanwhile: this one is free again
            log.error("job submitted by %s not stored: %s", owner, exc)
            raise Unavailable(disk_full(self.settings.state_dir) or
                              f"the manager could not store the job ({exc}); nothing was kept, try again") from exc
        self.apply(self.engine.add_job(job_id, spec, owner, now))
        summary = self.summary(job_id)
        assert summary is not None
        self.events.publish({"event": "job_submitted", "job": summary.to_json()})
        self.pump()
        for site in self.sites.values():
            site.wake()  # a pilot site may have to start pilots for it
        return summary

    def summary(self, job_id: JobId, row: JobRow | None = None) -> JobSummary | None:
        live = self.engine.jobs.get(job_id)
        if live is not None:
            counts = live.counts()
            waiting = None
            if counts.queued and not counts.running:
                waiting = "held while workers reconnect after a restart" if self.engine.held(self.clock()) \
                    else why_waiting(live.spec, [c.info for c in self.conns.values()])
            return JobSummary(job_id, live.owner, live.spec, live.submitted, live.state(), counts, None, waiting,
                              live.reason)
        known = self._ended_cache.get(job_id) or self._ending.get(job_id)
        if known is not None:
            return known
        row = row or self.store.job(job_id)
        if row is None:
            return None
        if row.state is None or row.counts is None:  # stored but not yet live (should not happen)
            return JobSummary(row.id, row.owner, row.spec, row.submitted, JobState.QUEUED,
                              Counts(total=row.spec.size, queued=row.spec.size))
        return JobSummary(row.id, row.owner, row.spec, row.submitted, row.state, row.counts, row.ended,
                          reason=row.reason)

    def list_jobs(self, who: Identity, everyone: bool, limit: int = 200) -> list[JobSummary]:
        owner = None if (who.admin and everyone) else who.user
        out = []
        for row in self.store.jobs(owner, limit):
            s = self.summary(row.id, row)
            if s is not None:
                out.append(s)
        return out

    async def cancel(self, job_id: JobId) -> None:
        """Cancel a job; returns once its end is durable."""
        await self.apply(self.engine.cancel(job_id, self.clock()))

    def admit(self, user: UserName, spec: JobSpec) -> JobSpec | Problem:
        """What every interface checks beyond a job's own fields: its queue, reservation and site.

        Returns the spec with its queue filled in, or the first problem; nothing is stored either way.
        """
        engine = self.engine
        if not spec.queue:
            spec = dataclasses.replace(spec, queue=engine.default_queue)
        elif spec.queue not in engine.queues:
            return Problem("queue_name", spec.queue,
                           f"is not a queue here (queues: {', '.join(engine.queues)}; see 'tiercel queues')")
        if spec.reservation is not None:
            if spec.walltime is None:
                return Problem("walltime", MISSING, "is required with a reservation, so its tasks provably end "
                                                    "with the window (e.g. --walltime 30m)")
            r = engine.reservations.get(spec.reservation)
            if r is None:
                return Problem("reservation", spec.reservation, "does not exist (see 'tiercel reserve list')")
            if not r.allows(user):
                return Problem("reservation", spec.reservation,
                               f"is not open to {user} (it is for {', '.join(sorted(r.users))})")
            now = self.clock()
            if r.end <= now:
                return Problem("reservation", spec.reservation, f"has ended (at {when(r.end)})")
            left = r.end - max(now, r.start)
            if spec.walltime > left:
                since = "now" if now >= r.start else f"its start at {when(r.start)}"
                return Problem("walltime", f"{spec.walltime:g}s",
                               f"is longer than what is left of reservation {r.name}: {left:.0f}s from {since} "
                               f"to its end at {when(r.end)}; its tasks could never start (ask for less)")
            if spec.site is None:
                spec = dataclasses.replace(spec, site=r.site)  # its tasks run where its slots are held
            elif spec.site != r.site:
                return Problem("site", spec.site, f"is not where reservation {r.name} holds its slots ({r.site}); "
                                                  "leave --site out or name that site")
        return self.check_sites(spec) or spec

    # ---- sites (the Host the site shells report to) -------------------------

    def check_sites(self, spec: JobSpec) -> Problem | None:
        """A pinned site must exist and fit; any job must fit some site."""
        from tiercel.core.policy import Group
        from tiercel.core.sites import admissible

        group = Group(JobId(0), UserName(""), spec.size, spec.cpus, walltime=spec.walltime, requires=spec.requires,
                      memory_mb=spec.memory_mb, site=spec.site)
        return admissible(group, self.engine.sites)

    def sites_changed(self, *, pump: bool = True) -> None:
        if self.site_config:
            infos = {s.name: s for s in self.site_config}
            for name, site in self.sites.items():
                infos[name] = site.info()
            self.engine.set_sites(list(infos.values()))
        if pump and self._loop is not None:
            self.pump()

    def write(self, ops: list[WriteOp]) -> asyncio.Future[None]:
        assert self._loop is not None
        return asyncio.wrap_future(self.store.write(ops), loop=self._loop)

    def site_reports(self, worker: WorkerId, reports: list[Report], freed: int) -> asyncio.Future[None]:
        """A native site's finished elements: settled like a worker's results, then its slots are free again."""
        now = self.clock()
        effects = self.engine.report(worker, reports, now)
        self.engine.add_credit(worker, freed)
        done = self.apply(effects, barrier=True)
        self.pump()
        return done

    def pilot_url(self) -> str:
        return self.settings.url

    def worker_token_file(self) -> Path:
        return self.settings.state_dir / "worker.token"

    def site_rows(self) -> list[dict[str, Any]]:
        """`tiercel sites`: the pool, then each configured site."""
        pool = self.engine.site_loads().get("pool", SiteLoad())
        rows: list[dict[str, Any]] = [{
            "name": "pool", "kind": "pool", "mode": "pool", "state": "ok",
            "slots_total": pool.total, "slots_free": pool.free,
            "queued": self.engine.waiting_on("pool"), "running": sum(
                len(w.tasks) for w in self.engine.workers.values() if w.info.site == "pool"),
            "batch_jobs": 0, "last_poll": None, "last_error": None, "last_error_at": None, "commands": {},
        }]
        rows += [site.describe() for site in self.sites.values()]
        return rows

    # ---- reservations ----------------------------------------------------

    def pool_slots(self) -> int:
        """What the pool site can hold: its configured size, or the slots of the workers connected now."""
        connected = sum(c.info.slots for c in self.conns.values())
        return max(self.settings.pool_slots, connected)

    def site_capacity(self, name: str) -> int | Problem:
        """The slots a reservation on site ``name`` may take, or why there is no such site."""
        if name == "pool":
            return self.pool_slots()
        site = self.sites.get(name)
        if site is None:
            return Problem("site", name, f"is not a site here (sites: {', '.join(['pool', *self.sites])}; "
                                         "see 'tiercel sites')")
        return site.capacity()

    async def reserve(self, r: Reservation, *, mirror: bool = False) -> Problem | None:
        """Admit, mirror (if asked) and store a reservation; when any step fails, none has an effect."""
        from tiercel.core.reservations import admit
        from tiercel.sites.site import MirrorFailed

        self.refuse_new_work()
        capacity = self.site_capacity(r.site)
        if isinstance(capacity, Problem):
            return capacity
        now = self.clock()
        site = self.sites.get(r.site)
        if mirror:
            why = "the pool is no batch system" if site is None else site.mirror_problem()
            if why is not None:
                return Problem("mirror", MISSING, f"a mirror is not possible: {why}")
        live = [x for x in self.engine.reservations.values() if x.end > now]
        problem = admit(r, live, capacity, now)
        if problem is not None:
            return problem
        if mirror and site is not None:
            try:
                r = dataclasses.replace(r, mirror=await site.mirror(r))
            except MirrorFailed as exc:
                return Refusal("mirror", MISSING, f"{site.cfg.kind} refused the reservation: {exc}")
        problem = self.engine.reserve(r, capacity, self.clock())  # again: another may have come meanwhile
        if problem is not None:
            await self._drop_mirror(r)
            return problem
        try:
            await asyncio.wrap_future(self.store.write([SaveReservation(r, self.clock())]))
        except Exception:
            self.engine.unreserve(r.name)  # not durable: not granted
            await self._drop_mirror(r)
            raise
        self._arm_windows()
        self.pump()  # a window open now changes what may start
        return None

    def _arm_windows(self) -> None:
        """Wake at the next start or end of a reservation's window: what may start changes then."""
        if self._window_timer is not None:
            self._window_timer.cancel()
            self._window_timer = None
        now = self.clock()
        edges = [t for r in self.engine.reservations.values() for t in (r.start, r.end) if t > now]
        if edges and self._loop is not None:
            self._window_timer = self._loop.call_later(min(edges) - now + 0.001, self.window_edge)

    def window_edge(self) -> None:
        """A window opened or closed: place work now, and end the work of reservations that ended."""
        self._window_timer = None
        now = self.clock()
        for r in list(self.engine.reservations.values()):
            if r.end <= now and r.name not in self._closed:
                self._closed.add(r.name)
                self.apply(self.engine.end_reservation(
                    r.name, f"reservation {r.name} ended at {when(r.end)} before these tasks could start"))
        self._arm_windows()
        self.pump()
        for site in self.sites.values():
            site.wake()  # a pilot site may start (or stop starting) pilots for a window

    async def _drop_mirror(self, r: Reservation) -> str | None:
        """Delete ``r``'s mirror, if it has one; what went wrong, or None."""
        from tiercel.sites.site import MirrorFailed

        site = self.sites.get(r.site)
        if r.mirror is None or site is None or r.end <= self.clock():
            return None  # Slurm removes a reservation itself when it ends
        try:
            if not await site.unmirror(r.mirror, r.end):
                return (f"{site.cfg.kind} reservation {r.mirror} still has jobs running in it; it is deleted once "
                        "they end (or, at the latest, when it ends)")
        except MirrorFailed as exc:
            log.error("reservation %s: its %s reservation %s could not be deleted: %s", r.name, site.cfg.kind,
                      r.mirror, exc)
            return f"{site.cfg.kind} reservation {r.mirror} could not be deleted: {exc}"
        return None

    async def unreserve(self, name: str) -> tuple[bool, str | None]:
        """Delete a reservation and its mirror: (whether it existed, what went wrong with the mirror)."""
        r = self.engine.reservations.get(name)
        if r is None or not self.engine.unreserve(name):
            return False, None
        await asyncio.wrap_future(self.store.write([DeleteReservation(name)]))
        self._closed.discard(name)
        await self.apply(self.engine.end_reservation(name, f"reservation {name} was deleted before these tasks "
                                                           "could start"))
        self._arm_windows()
        self.pump()  # the slots it held are free for everyone again
        return True, await self._drop_mirror(r)

    # ---- workers ---------------------------------------------------------

    def worker_connected(self, conn: Connection, msg: dict[str, Any]) -> bool:
        """A worker's hello: what it still holds and its unacknowledged results are taken back.

        A hello whose held tasks or results are malformed is refused with an error frame
        (which ends the connection) before anything changes: False.
        """
        try:
            credit = int(msg.get("credit", conn.info.slots))
            held = [ref_from_wire(x) for x in msg.get("held", ())]
            results = [report_from_wire(x) for x in msg.get("results", ())]
            ran_jobs = [JobId(int(j)) for j in msg.get("ran", ())]
        except (KeyError, TypeError, ValueError, IndexError, OverflowError) as exc:
            log.warning("worker %s sent a malformed hello: %s", conn.info.name, exc)
            conn.send({"t": "error", "msg": f"hello: malformed held tasks or results ({exc})"})
            return False
        old = self.conns.get(conn.worker)
        if old is not None and old.principal != conn.principal:
            log.warning("worker %s: refused a hello for worker id %s, which a worker with other credentials holds",
                        conn.info.name, conn.worker)
            conn.send({"t": "error", "msg": f"hello: worker id {conn.worker!r} is in use by a worker with "
                                            "other credentials; give each worker its own id"})
            return False
        now = self.clock()
        self.last_seen[conn.worker] = now
        if old is not None and old.send is not conn.send:
            old.send({"t": "error", "msg": "replaced by a newer connection of the same worker"})
        self.conns[conn.worker] = conn
        site = self.sites.get(conn.info.site)
        if site is not None:
            site.worker_connected(conn.info.name)
        effects = self.engine.connect(conn.worker, conn.info, now, credit=credit, held=held, results=results,
                                      ran_jobs=ran_jobs)
        acks = _acks(results, effects)
        self.store.write([SeenWorker(conn.worker, conn.info.name, conn.info.host, now)])
        self.apply(effects, then=lambda: conn.send({"t": "ack", "r": acks}) if acks else None, barrier=bool(acks))
        self.pump()
        return True

    def worker_results(self, conn: Connection, reports: list[Report], credit: int) -> None:
        now = self.clock()
        if conn.worker not in self.engine.workers:
            # Declared lost while the connection lived on: its tasks were re-queued.
            conn.send({"t": "reconnect"})
            return
        self.last_seen[conn.worker] = now
        if credit:
            self.engine.add_credit(conn.worker, credit)
        if reports:
            effects = self.engine.report(conn.worker, reports, now)
            acks = _acks(reports, effects)
            self.apply(effects, then=lambda: conn.send({"t": "ack", "r": acks}) if acks else None, barrier=True)
        self.pump()

    def worker_frame(self, conn: Connection, msg: Any, *, take_credit: bool = True) -> Any:
        """One frame from a connected worker, whichever transport carried it; returns its kind.

        ``res`` (results and freed slots), ``cr`` (free slots), ``hb`` (heartbeat), ``drain``
        (send nothing more), ``bye`` (leaving: re-queue what it holds). A transport that
        knows the worker is busy passes ``take_credit=False``: its slots are counted again at
        its next hello. A malformed frame is logged and dropped; the worker stays connected.
        """
        kind = msg.get("t") if isinstance(msg, dict) else None
        if kind in ("res", "cr", "hb"):
            try:  # all of it or nothing: a frame with one malformed report changes nothing
                credit = int(msg.get("c", 0)) if kind != "hb" and take_credit else 0
                results = msg.get("r", []) if kind == "res" else []
                reports = [report_from_wire(x) for x in results]
            except (KeyError, TypeError, ValueError, IndexError, OverflowError) as exc:
                log.warning("worker %s sent a malformed %r frame: %s", conn.info.name, kind, exc)
                return kind
            self.worker_results(conn, reports, credit)
        elif kind == "drain":
            self.engine.drain(conn.worker)
        elif kind == "bye":
            self.worker_left(conn.worker)
        else:
            log.warning("worker %s sent a frame of unknown kind %r", conn.info.name, kind)
        return kind

    def worker_disconnected(self, conn: Connection) -> None:
        if self.conns.get(conn.worker) is conn:
            del self.conns[conn.worker]
            self.engine.disconnect(conn.worker)

    def worker_left(self, worker: WorkerId) -> None:
        """A worker said goodbye or went silent for too long: re-queue its tasks."""
        conn = self.conns.pop(worker, None)
        if conn is not None:
            conn.send({"t": "reconnect"})
        effects = self.engine.lose(worker, self.clock())
        self.store.write([ForgetWorker(worker)])
        self.apply(effects)
        self.pump()

    # ---- periodic duties -------------------------------------------------

    def check_liveness(self) -> None:
        """Declare lost the workers silent for longer than the time-out (connected or not)."""
        now = self.clock()
        for wid in list(self.engine.workers):
            if site_of_worker(wid) is not None:
                continue  # a native site: its tasks live in the batch system, which the site polls
            last = self.last_seen.setdefault(wid, now)
            if now - last > self.settings.worker_timeout:
                log.warning("worker %s silent for %.1fs: re-queueing its tasks", wid, now - last)
                self.last_seen.pop(wid, None)
                self.worker_left(wid)

    def end_hold(self) -> None:
        """The restart hold is over: forget the workers that did not come back, hand out work."""
        gone = list(self.engine.expected_workers)
        self.engine.expected_workers.clear()
        if gone:
            log.warning("%d worker(s) known before the restart did not come back", len(gone))
            self.store.write([ForgetWorker(w) for w in gone])
        self.pump()

    def publish_progress(self) -> None:
        for job_id, job in self.engine.jobs.items():
            key = (job.pending, len(job.running), job.done, job.failed)
            if self._progress_seen.get(job_id) != key:
                self._progress_seen[job_id] = key
                s = self.summary(job_id)
                if s is not None:
                    self.events.publish({"event": "job_progress", "job": s.to_json()})

    def held_tasks(self, worker: WorkerId) -> list[TaskRef]:
        w = self.engine.workers.get(worker)
        return [] if w is None else [TaskRef(j, i, a) for (j, i), a in w.tasks.items()]


def _acks(reports: list[Report], effects: list[Effect]) -> list[list[int]]:
    """What to acknowledge: every report but those refused (about attempts the worker was not given)."""
    refused = {(r.job, r.index, r.attempt) for e in effects if isinstance(e, Refused) for r in e.tasks}
    return [[r.job, r.index, r.attempt] for r in reports if (r.job, r.index, r.attempt) not in refused]
