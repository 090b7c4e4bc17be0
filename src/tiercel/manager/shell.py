"""The manager's shell: the one write path. It feeds events to the engine and performs the effects.

Everything that changes the scheduler's state comes here as a command — a submission, a
worker's frame, a site's finished elements, a reservation — and only here is the engine
called. Transports, sites and gateways see the shell's commands and its read model
(``queries``), never the engine itself.

Every engine call happens on the event loop thread, so the engine needs no locks. Writes go
to the store's group-commit writer; effects that others can observe (a result acknowledged,
a job announced as ended) happen only once the write that records them is durable (the write
path, a base of ``Manager``: manager/writes.py).
"""

from __future__ import annotations

import asyncio
import collections
import getpass
import logging
import os
import signal
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from tiercel.core.engine import Effect, Engine, KillTasks, Refused, SendTasks
from tiercel.core.model import JobId, JobSpec, Report, TaskRef, UserName, WorkerId, WorkerInfo
from tiercel.core.problems import Problem
from tiercel.core.reservations import Reservation
from tiercel.core.seal import Seal
from tiercel.core.sites import POOL, Mode, SiteInfo
from tiercel.data.service import DataService
from tiercel.manager import admission, data, dependencies
from tiercel.manager.auth import Identity
from tiercel.manager.bookings import Bookings
from tiercel.manager.controls import Controls
from tiercel.manager.events import Events, JobSummary
from tiercel.manager.peerhooks import NoPeers, PeerHooks
from tiercel.manager.places import Places
from tiercel.manager.queries import Queries
from tiercel.manager.sessions import PlaceKind, Session, Sessions
from tiercel.manager.settings import Settings
from tiercel.manager.statedir import disk_full
from tiercel.manager.tokens import Tokens
from tiercel.manager.writes import WritePath, _Writing
from tiercel.sites import build as build_sites
from tiercel.sites.config import infos
from tiercel.store import AddJob, ForgetWorker, SeenWorker, Store, WriteOp
from tiercel.wire.messages import (
    Ack,
    Bye,
    Credit,
    Drain,
    Error,
    Heartbeat,
    Hello,
    ManagerMessage,
    Reconnect,
    Results,
    WorkerMessage,
)

log = logging.getLogger("tiercel.manager")

class SubmitRefused(Exception):
    """A submission refused for what it says (its dependencies): the problem names the field."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.message())
        self.problem = problem


class Unavailable(Exception):
    """The manager cannot take new work now (its disk is full, its store refuses); reads still work."""


def _stop_process(exc: BaseException) -> None:
    log.critical("store write failed, stopping the manager: %s", exc)
    os.kill(os.getpid(), signal.SIGTERM)


class Manager(WritePath):
    def __init__(self, store: Store, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock
        self._seal = Seal(b"")  # replaced by the store's key at start, before any task is handed out
        self.engine = self._engine()
        self.sessions = Sessions()
        self.tokens = Tokens(store, clock)
        self.events = Events()
        self.bookings = Bookings(self)
        self.controls = Controls(self, clock)
        self.queries = Queries(self)
        self.places = Places(lambda: self.engine)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.start_error: BaseException | None = None
        self.started = 0.0
        self.store_failed: BaseException | None = None
        # A write the store could not make: by default the manager stops (a restart finds what was
        # durable); the server may do otherwise, e.g. step down to a standby on a shared store.
        self.on_store_failure: Callable[[BaseException], None] = _stop_process
        self.created_tokens: dict[str, str] = {}
        self._next_job = 1
        self._next_workflow = 1
        self._ended_cache: dict[JobId, JobSummary] = {}
        self._ending: dict[JobId, JobSummary] = {}
        self._background: set[asyncio.Future[Any]] = set()
        self._queue_errors: dict[str, str] = {}
        self.unwritten = 0  # attempt records written but not yet durable (see WRITE_BACKLOG)
        self._writing: list[_Writing] = []  # this loop turn's writes, watched together
        self._watched: collections.deque[list[_Writing]] = collections.deque()  # in the order they were written
        self._pump_due = False
        self.site_config = infos(settings.sites) if settings.sites else []
        self.sites = build_sites(settings.sites, self, settings.state_dir) if settings.sites else {}
        self.data: DataService | None = None  # Gfarm, once a job names files there (manager/data.py)
        self.peers: PeerHooks = NoPeers()  # the server sets tiercel.federation's when the config has [peers.NAME]

    # ---- life cycle ------------------------------------------------------

    def _engine(self, **kw: Any) -> Engine:
        queues = self.settings.queues
        if not queues:
            return Engine(seal=self._seal, **kw)
        ordered = sorted(queues.values(), key=lambda q: not q.default)  # the default queue first
        return Engine(queues={q.name: q.chain for q in ordered}, seal=self._seal, **kw)

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        loaded = await asyncio.to_thread(self.store.open)
        now = self.started = self.clock()
        self._next_job = loaded.next_job_id
        self._next_workflow = loaded.next_workflow_id
        self._seal = self.engine.seal = Seal(loaded.seal_key)
        self.tokens.known = dict(loaded.tokens)
        if loaded.unfinished and loaded.workers:
            self.engine = self._engine(hold_until=now + self.settings.reconnect_grace,
                                       expected_workers=loaded.workers)
        for r in loaded.reservations:
            self.engine.restore_reservation(r)
        effects: list[Effect] = []
        for row, restored in loaded.unfinished:
            parents = await asyncio.to_thread(dependencies.restored_parents, self.store, row.spec,
                                              self.engine.jobs.__contains__) if row.spec.after else None
            effects += self.engine.add_job(row.id, row.spec, row.owner, row.submitted, restored, parents)
            data.learn(self, row.id, row.spec)
        self.sites_changed(pump=False)
        for name, site in self.sites.items():
            site.restore([r for r in loaded.site_jobs if r.site == name])
            site.attach()  # before any dispatch: tasks already in a batch system are not handed out again
        self.peers.restore(loaded.site_jobs)  # ranges forwarded to peers, and ranges run here for them
        if not self.tokens.known:
            await self._first_tokens()
        elif self.sites and not (self.settings.state_dir / "worker.token").exists():
            # a manager that took over a shared store, in a state dir of its own: its pilots need a token
            await self._token_file("worker", UserName("worker"), "worker.token", "for this manager's pilots")
        await self.apply(effects)  # jobs whose every task had settled before the crash end now
        self.bookings.window_edge()  # windows that ended while the manager was down, and the next one
        log.info("manager ready: %d unfinished jobs restored", len(loaded.unfinished))

    async def _first_tokens(self) -> None:
        """On first start, make an admin token and a worker token and leave them in the state dir."""
        user = UserName(os.environ.get("TIERCEL_ADMIN_USER") or getpass.getuser())
        for role, who, fname in (("admin", user, "admin.token"), ("worker", UserName("worker"), "worker.token")):
            await self._token_file(role, who, fname, "created on first start")

    async def _token_file(self, role: str, who: UserName, fname: str, label: str) -> None:
        token = await self.create_token(who, role, label=label)
        path = self.settings.state_dir / fname
        part = path.with_name(f".{fname}.part")  # renamed when whole: nobody reads half a token
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(token + "\n")
        os.replace(part, path)
        self.created_tokens[role] = str(path)

    def close(self) -> None:
        self.store.close()
        if self.data is not None:
            self.data.close()

    # ---- tokens ------------------------------------------------------------

    def identify(self, token: str | None) -> Identity | None:
        return self.tokens.identify(token)

    async def create_token(self, user: UserName, role: str, label: str = "") -> str:
        self.refuse_new_work()
        return await self.tokens.create(user, role, label)

    async def revoke_token(self, tid: str) -> Identity | None:
        """Revoke a token: refused from now on, its worker sessions and event streams closed."""
        gone = await self.tokens.revoke(tid)
        if gone is not None:
            for s in self.sessions.of_principal(gone.digest):
                s.send(Error("this worker's token was revoked"))  # the channel closes after it
        return gone

    # ---- jobs ------------------------------------------------------------

    def admit(self, user: UserName, spec: JobSpec) -> JobSpec | Problem:
        """What every interface checks beyond a job's own fields; nothing is stored either way."""
        return admission.admit(self.engine, user, spec, self.clock())

    def refuse_new_work(self) -> None:
        """Raise Unavailable when new work (a job, a reservation, a token) cannot be kept now."""
        full = disk_full(self.settings.state_dir)
        if full is not None:
            raise Unavailable(full)
        if self.store_failed is not None:
            raise Unavailable(f"the manager cannot write its store ({self.store_failed}); nothing was kept: "
                              "try again in a few seconds (another manager takes over, or this one restarts)")

    async def submit(self, owner: UserName, spec: JobSpec, also: Callable[[JobId], list[WriteOp]] | None = None
                     ) -> JobSummary:
        """Store and start a job; Unavailable (nothing kept, no job id used) if it cannot be stored.

        ``also``: writes made in the same commit as the job, given its id (a forwarded range's record)."""
        self.refuse_new_work()
        parents = await dependencies.resolve(self, owner, spec) if spec.after else {}
        if isinstance(parents, Problem):
            raise SubmitRefused(parents)
        missing = await data.check(self, JobId(self._next_job), spec)  # ({job} in a path: the id it likely gets)
        if missing is not None:
            raise SubmitRefused(missing)
        job_id = JobId(self._next_job)
        self._next_job += 1
        now = self.clock()
        try:
            await asyncio.wrap_future(self.store.write([AddJob(job_id, owner, spec, now),
                                                        *(also(job_id) if also is not None else ())]))
        except Exception as exc:
            if self._next_job == job_id + 1:
                self._next_job = job_id  # nobody took a later id meanwhile: this one is free again
            log.error("job submitted by %s not stored: %s", owner, exc)
            raise Unavailable(disk_full(self.settings.state_dir) or
                              f"the manager could not store the job ({exc}); nothing was kept, try again") from exc
        parents = await dependencies.current(self, owner, spec, parents) if spec.after else {}
        self.apply(self.engine.add_job(job_id, spec, owner, now, parents=parents))
        data.learn(self, job_id, spec)
        summary = self.queries.live(job_id) or self.recently_ended(job_id)  # (a dependency may end it at once)
        assert summary is not None
        if not spec.hops:  # a peer's range is one job of the origin's, announced there
            self.events.publish({"event": "job_submitted", "job": summary.to_json()})
        self.pump()
        for site in self.sites.values():
            site.wake()  # a pilot site may have to start pilots for it
        return summary

    @property
    def next_job_id(self) -> int:
        """The id the next job will get: every job below it was submitted here."""
        return self._next_job

    def take_job_ids(self, n: int) -> list[JobId]:
        """Job ids for jobs about to be stored together (a workflow's)."""
        first = self._next_job
        self._next_job += n
        return [JobId(first + i) for i in range(n)]

    def give_back_ids(self, ids: list[JobId], workflow_id: int) -> None:
        """Ids taken for a workflow that was not stored: free again unless later ones were taken meanwhile."""
        if ids and self._next_job == ids[-1] + 1:
            self._next_job = ids[0]
        if self._next_workflow == workflow_id + 1:
            self._next_workflow = workflow_id

    def take_workflow_id(self) -> int:
        self._next_workflow += 1
        return self._next_workflow - 1

    async def cancel(self, job_id: JobId) -> None:
        """Cancel a job; returns once its end is durable."""
        await self.apply(self.engine.cancel(job_id, self.clock()))

    async def cancel_all(self, owner: UserName) -> list[JobId]:
        """Cancel every unfinished job of ``owner``; the ids cancelled."""
        ids = self.queries.unfinished(owner)
        for job_id in ids:
            await self.cancel(job_id)
        return ids

    # ---- reservations ----------------------------------------------------

    async def reserve(self, r: Reservation, *, mirror: bool = False) -> Problem | None:
        return await self.bookings.reserve(r, mirror=mirror)

    async def unreserve(self, name: str) -> tuple[bool, str | None]:
        return await self.bookings.unreserve(name)

    # ---- sites: the Host the site shells see ---------------------------------

    def sites_changed(self, *, pump: bool = True) -> None:
        if self.site_config or not isinstance(self.peers, NoPeers):
            remote = self.peers.sites()
            known = {s.name: s for s in self.site_config or [SiteInfo(POOL, POOL, Mode.POOL)]}
            for name, site in self.sites.items():
                known[name] = site.info()
            self.engine.set_sites([*known.values(), *remote])
        if pump and self.loop is not None:
            self.pump()

    def write(self, ops: list[WriteOp]) -> asyncio.Future[None]:
        assert self.loop is not None
        return asyncio.wrap_future(self.store.write(ops), loop=self.loop)

    def attach_site(self, worker: WorkerId, info: WorkerInfo, deliver: Callable[[SendTasks | KillTasks], None],
                    *, held: list[TaskRef], credit: int) -> list[TaskRef]:
        """A native site joins as a place holding the tasks still in its batch system; what it must kill."""
        now = self.clock()
        self.sessions.open(Session(worker, info, _no_frames, now, transport="site", kind=PlaceKind.SITE,
                                   deliver=deliver), now)
        effects = self.engine.connect(worker, info, now, credit=credit, held=held,
                                      vouched=True)  # its own record of what it submitted
        return [r for e in effects if isinstance(e, KillTasks) for r in e.tasks]

    def detach_site(self, worker: WorkerId) -> None:
        """A degraded site takes nothing new; what it has in flight stays."""
        self.engine.disconnect(worker)

    def site_reports(self, worker: WorkerId, reports: list[Report], freed: int) -> asyncio.Future[None]:
        """A native site's finished elements: settled like a worker's results, then its slots are free again."""
        effects = self.engine.report(worker, reports, self.clock())
        self.engine.add_credit(worker, freed)
        done = self.apply(effects, barrier=True)
        self.pump()
        return done

    def give_back(self, worker: WorkerId, tasks: list[TaskRef]) -> asyncio.Future[None]:
        """A place (a peer) gives back tasks unrun: they wait again as their next attempt."""
        done = self.apply(self.engine.give_back(worker, tasks, self.clock()))
        self.pump()
        return done

    def set_credit(self, worker: WorkerId, credit: int) -> None:
        """A place (a peer) may take this many slots more from now on."""
        run = self.engine.workers.get(worker)
        if run is not None and run.credit != credit:
            self.engine.add_credit(worker, credit - run.credit)
            self.pump()

    def lose_site(self, worker: WorkerId) -> asyncio.Future[None]:
        """A place (a peer silent past its time-out) is gone: everything it held waits again."""
        self.sessions.drop(worker)
        done = self.apply(self.engine.lose(worker, self.clock()))
        self.pump()
        return done

    def site_work(self, site: str, reservation: str | None = None, *, besides: frozenset[str] = frozenset()
                  ) -> int:
        """Slots of the tasks waiting for ``site`` (jobs are bound to sites first)."""
        self.engine.bind()
        return self.engine.waiting_on(site, reservation, besides=besides)

    def site_free(self, site: str) -> dict[str | None, int]:
        """Free slots (credit) of the site's connected workers, by the reservation they serve."""
        free: dict[str | None, int] = {}
        for w in self.engine.workers.values():
            if w.connected and w.info.site == site and not w.draining:
                free[w.info.reservation] = free.get(w.info.reservation, 0) + w.credit
        return free

    def pilot_url(self) -> str:
        return self.settings.url

    def worker_token_file(self) -> Path:
        return self.settings.state_dir / "worker.token"

    # ---- workers ---------------------------------------------------------

    def worker_connected(self, session: Session, hello: Hello) -> bool:
        """A worker's hello: what it still holds and its unacknowledged results are taken back.

        A hello that claims a worker id another's credentials hold is refused with an error
        (which ends the connection) before anything changes: False.
        """
        holder = self.sessions.holder(session.worker)
        if holder is not None and holder != session.principal:
            log.warning("worker %s: refused a hello for worker id %s, which a worker with other credentials holds",
                        session.info.name, session.worker)
            session.send(Error(f"hello: worker id {session.worker!r} is in use by a worker with other "
                               "credentials; give each worker its own id"))
            return False
        now = self.clock()
        old = self.sessions.open(session, now)
        if old is not None and old.send is not session.send:
            old.send(Error("replaced by a newer connection of the same worker"))
        site = self.sites.get(session.info.site)
        if site is not None:
            site.worker_connected(session.info.name)
        effects = self.engine.connect(session.worker, session.info, now, credit=hello.credit, held=hello.held,
                                      results=hello.results, ran_jobs=hello.ran)
        acks = _acks(hello.results, effects)
        self.store.write([SeenWorker(session.worker, session.info.name, session.info.host, now)])
        self.apply(effects, then=lambda: session.send(Ack(acks)) if acks else None, barrier=bool(acks))
        self.pump()
        return True

    def worker_results(self, session: Session, reports: list[Report], credit: int) -> None:
        now = self.clock()
        if session.worker not in self.engine.workers:
            # Declared lost while the connection lived on: its tasks were re-queued.
            session.send(Reconnect())
            return
        self.sessions.heard(session.worker, now)
        if credit:
            self.engine.add_credit(session.worker, credit)
        if reports:
            effects = self.engine.report(session.worker, reports, now)
            acks = _acks(reports, effects)
            self.apply(effects, then=lambda: session.send(Ack(acks)) if acks else None, barrier=True)
        self.pump_soon()

    def worker_message(self, session: Session, msg: WorkerMessage, *, take_credit: bool = True) -> None:
        """One message from a connected worker, whichever transport carried it (and decoded it).

        Results (and freed slots), credit (free slots), a heartbeat, drain (send nothing more),
        bye (leaving: re-queue what it holds). A transport that knows the worker is busy passes
        ``take_credit=False``: its slots are counted again at its next hello.
        """
        match msg:
            case Results(reports, credit):
                self.worker_results(session, reports, credit if take_credit else 0)
            case Credit(credit):
                self.worker_results(session, [], credit if take_credit else 0)
            case Heartbeat():
                self.worker_results(session, [], 0)
            case Drain():
                self.drain(session.worker)
            case Bye():
                self.worker_left(session.worker)
            case Hello():
                log.warning("worker %s sent a second hello on one session; it was dropped", session.info.name)

    def heard(self, worker: WorkerId) -> None:
        """A transport heard from the worker (a presence, a ping answered): it is alive."""
        self.sessions.heard(worker, self.clock())

    def drain(self, worker: WorkerId) -> None:
        """The worker takes nothing new (leaving, or busy): what it holds goes on."""
        self.engine.drain(worker)

    def worker_disconnected(self, session: Session) -> None:
        if self.sessions.close(session):
            self.engine.disconnect(session.worker)

    def worker_left(self, worker: WorkerId) -> None:
        """A worker said goodbye or went silent for too long: re-queue its tasks."""
        s = self.sessions.drop(worker)
        if s is not None:
            s.send(Reconnect())
        effects = self.engine.lose(worker, self.clock())
        self.store.write([ForgetWorker(worker)])
        self.apply(effects)
        self.pump()

    # ---- periodic duties (manager.duties paces them) ----------------------

    def check_liveness(self) -> None:
        """Declare lost the workers silent for longer than the time-out (connected or not)."""
        now = self.clock()
        for s in self.sessions.silent(now, self.settings.worker_timeout):
            log.warning("worker %s silent for %.1fs: re-queueing its tasks", s.worker, now - s.last_seen)
            self.worker_left(s.worker)

    def end_hold(self) -> None:
        """The restart hold is over: forget the workers that did not come back, hand out work."""
        gone = list(self.engine.expected_workers)
        self.engine.expected_workers.clear()
        if gone:
            log.warning("%d worker(s) known before the restart did not come back", len(gone))
            self.store.write([ForgetWorker(w) for w in gone])
        self.pump()


def _no_frames(msg: ManagerMessage) -> None:
    """A site's session takes effects (``deliver``), never frames."""


def _acks(reports: Iterable[Report], effects: list[Effect]) -> list[TaskRef]:
    """What to acknowledge: every report but those refused (about attempts the worker was not given)."""
    refused = {(r.job, r.index, r.attempt) for e in effects if isinstance(e, Refused) for r in e.tasks}
    return [TaskRef(r.job, r.index, r.attempt) for r in reports if (r.job, r.index, r.attempt) not in refused]
