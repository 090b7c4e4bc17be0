"""The shell's write path: effects performed, writes watched until they are durable, and what they
make visible then (a worker's acknowledgement, a job's end and its events); and dispatch, which
hands out tasks when the store keeps up.

A base of the shell (``Manager`` in manager/shell.py), which owns and sets the state declared here.
Effects that others can observe happen only once the write that records them is durable: a
loop turn's writes are watched together, with one wake-up of the loop when the last is durable.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import functools
import logging
from collections.abc import Callable, Iterable
from typing import Any

from tiercel.core.engine import Effect, Engine, JobEnded, KillTasks, Persist, Refused, RunCleanup, SendTasks
from tiercel.core.engine.effects import Relocate, Replicate
from tiercel.core.model import JobId, JobState
from tiercel.data.service import DataService
from tiercel.manager import data
from tiercel.manager.events import Events, JobSummary
from tiercel.manager.peerhooks import NoPeers, PeerHooks
from tiercel.manager.places import Places
from tiercel.manager.sessions import Sessions
from tiercel.manager.settings import Settings
from tiercel.store import EndJob, Record, Store, WriteOp
from tiercel.wire.messages import Cleanup, Kill, Tasks

log = logging.getLogger("tiercel.manager")

ENDED_CACHE = 1000  # summaries of recently ended jobs kept in memory; older ones are read from the store
# Attempt records handed to the store and not yet durable, past which no new task is handed out:
# results come in faster than a commit can keep them at full dispatch, and an unbounded backlog
# grows the manager by hundreds of MB and makes every commit and every garbage collection longer
# (the event loop stops for each). At ~100,000 results/s this is about half a second of work.
WRITE_BACKLOG = 50_000


# A write handed to the store: its future, the effects to perform once it is durable, what to call
# then, the future to resolve, and how many attempt records it holds.
_Writing = tuple[concurrent.futures.Future[None], list[Effect], Callable[[], None] | None, asyncio.Future[None], int]


class WritePath:
    """Effects, writes and dispatch: the part of the shell every command goes through."""

    store: Store
    settings: Settings
    clock: Callable[[], float]
    engine: Engine
    sessions: Sessions
    events: Events
    places: Places
    peers: PeerHooks
    data: DataService | None
    loop: asyncio.AbstractEventLoop | None
    store_failed: BaseException | None
    on_store_failure: Callable[[BaseException], None]
    unwritten: int  # attempt records written but not yet durable (see WRITE_BACKLOG)
    _writing: list[_Writing]  # this loop turn's writes, watched together
    _watched: collections.deque[list[_Writing]]  # in the order they were written
    _pump_due: bool
    _queue_errors: dict[str, str]
    _ended_cache: dict[JobId, JobSummary]
    _ending: dict[JobId, JobSummary]
    _background: set[asyncio.Future[Any]]

    def _collect(self, effects: Iterable[Effect], writes: list[WriteOp], after: list[Effect]) -> None:
        now = self.clock()
        for e in effects:
            if isinstance(e, Persist):
                writes.append(Record(e.records))
                writes.extend(self.places.new(e.records))  # where the job ran, for its history
                if not isinstance(self.peers, NoPeers):
                    after.append(e)  # federation sends results of forwarded work once they are durable
            elif isinstance(e, JobEnded):
                writes.append(EndJob(e.job, e.state, e.counts, now, e.reason, e.cpu))
                self.places.ended(e.job)
                after.append(e)
                # Until its end is durable the job shows as running with every task settled.
                self._ending[e.job] = JobSummary(e.job, e.owner, e.spec, e.submitted, JobState.RUNNING, e.counts)
            elif isinstance(e, (SendTasks, KillTasks)):
                self._deliver(e)
            elif isinstance(e, Refused):
                self._refused(e)
            elif isinstance(e, Replicate):
                data.service(self).replicate(e.path, e.node, e.size)
            elif isinstance(e, Relocate):
                data.service(self).learn(e.paths, again=True)
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
        loop = self.loop
        assert loop is not None
        done: asyncio.Future[None] = loop.create_future()
        writes: list[WriteOp] = []
        after: list[Effect] = []
        self._collect(effects, writes, after)
        if not writes and not barrier:
            self._durable(None, after, then, done)
            return done
        records = sum(len(w.records) for w in writes if isinstance(w, Record))
        self.unwritten += records
        self._writing.append((self.store.write(writes), after, then, done, records))
        if len(self._writing) == 1:
            loop.call_soon(self._watch_writes)
        return done

    def _watch_writes(self) -> None:
        """Wait for this loop turn's writes with one callback from the store's thread, not one each.

        The store makes writes durable in the order they came, so the last one's future resolves
        last; a loop turn that took many results (one frame each from many workers) wakes the loop
        once when they are durable.
        """
        batch, self._writing = self._writing, []
        self._watched.append(batch)
        batch[-1][0].add_done_callback(self._written)

    def _written(self, _: object) -> None:
        """On the store's thread: a watched batch's last write is durable (in order: the oldest batch).

        The callback holds no batch: a store's future keeps its callbacks, and a callback that held
        its batch would make a reference cycle of every write's results, left for the garbage
        collector, whose collections of them stopped the loop for a tenth of a second under load.
        """
        assert self.loop is not None
        self.loop.call_soon_threadsafe(self._durable_next)

    def _durable_next(self) -> None:
        batch = self._watched.popleft()
        for item in batch:
            if item[0].done():
                self._durable(*item)
            else:  # a store that resolved them out of order: wait for this one by itself
                item[0].add_done_callback(functools.partial(self._durable_later, item))

    def _durable_later(self, item: _Writing, _: object) -> None:
        assert self.loop is not None
        self.loop.call_soon_threadsafe(self._durable, *item)

    def _durable(self, fut: concurrent.futures.Future[None] | None, after: list[Effect],
                 then: Callable[[], None] | None, done: asyncio.Future[None], records: int = 0) -> None:
        if records:
            held_back = self.unwritten >= WRITE_BACKLOG
            self.unwritten -= records
            if held_back and self.unwritten < WRITE_BACKLOG and self.store_failed is None and self.loop:
                self.loop.call_soon(self.pump)  # dispatch that was held back resumes
        exc = None if fut is None else fut.exception()
        if exc is not None:
            # The engine has moved on but the store has not: stop rather than serve a state
            # that a restart would not find. Nothing was acknowledged, so workers keep their
            # results and hand them in again to the restarted manager.
            done.set_exception(exc)
            done.exception()  # retrieved: callers that do not await it are not warned
            if self.store_failed is None:
                self.store_failed = exc
                self.on_store_failure(exc)
            return
        self._after(after)
        if then is not None:
            then()
        done.set_result(None)

    def _deliver(self, e: SendTasks | KillTasks) -> None:
        """Hand tasks to a place, or tell it to kill some, in the form its kind takes."""
        s = self.sessions.get(e.worker)
        if s is None:
            return
        if s.deliver is not None:  # a site: the effect itself, no frame
            s.deliver(e)
        elif isinstance(e, SendTasks):
            s.ran += len(e.tasks)
            s.send(Tasks(e.tasks, e.specs))
        else:
            s.send(Kill(e.tasks))

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
                self._ended(e)
            elif isinstance(e, Persist):
                self.peers.durable(e.records)
            elif isinstance(e, RunCleanup):
                s = self.sessions.current(e.worker)
                if s is not None:
                    s.send(Cleanup(e.job))

    def _ended(self, e: JobEnded) -> None:
        summary = JobSummary(e.job, e.owner, e.spec, e.submitted, e.state, e.counts, self.clock(), reason=e.reason)
        self._ending.pop(e.job, None)
        self._ended_cache[e.job] = summary
        while len(self._ended_cache) > ENDED_CACHE:
            del self._ended_cache[next(iter(self._ended_cache))]
        self.peers.job_ended(e.job, e.state, bool(e.spec.hops))
        if e.spec.hops:
            return  # run here for a peer: its end is announced once, at the origin
        self.events.publish({"event": "job_finished", "job": summary.to_json()})
        self.events.job_ended(e.job)
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

    def recently_ended(self, job_id: JobId) -> JobSummary | None:
        return self._ended_cache.get(job_id) or self._ending.get(job_id)

    def forget_ended(self, job_id: JobId) -> None:
        """An ended job is live again (tasks of it run again): its ended summary no longer holds."""
        self._ended_cache.pop(job_id, None)

    def pump_soon(self) -> None:
        """Dispatch once at the end of this loop turn, however many messages freed slots in it."""
        if self.loop is None:
            self.pump()
        elif not self._pump_due:
            self._pump_due = True
            self.loop.call_soon(self._pump_now)

    def _pump_now(self) -> None:
        self._pump_due = False
        self.pump()

    def pump(self) -> None:
        """Hand waiting tasks to workers with free slots (none while the store's backlog is long)."""
        if self.unwritten >= WRITE_BACKLOG:
            return  # resumed when enough of it is durable (_durable)
        effects = self.engine.dispatch(self.clock())
        if effects:
            self.apply(effects)
        if self.engine.queue_errors != self._queue_errors:
            for name, error in self.engine.queue_errors.items():
                if self._queue_errors.get(name) != error:
                    log.error("queue %s stopped: %s", name, error)
            self._queue_errors = dict(self.engine.queue_errors)
