"""Work arriving: a peer's forwarded range runs here as a job of the local user mapped from that peer.

The job is stored in the same commit as the range's record (``SaveSiteJob`` under ``from:NAME``),
so a forward seen twice runs once, and a manager killed and restarted still knows what it runs
for whom. The job goes through this manager's own queues and policies, carries the hop list
(``JobSpec.hops``: it goes no further), and retries nothing itself: a failure goes back to the
origin, whose job decides. Settled tasks go back per range in batches, once durable here, and
are kept until the origin acknowledges them; at a restart they are read back from the store and
sent again (the origin settles each task once, whatever it hears twice).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from tiercel.core.model import AttemptRecord, JobId, Outcome, UserName
from tiercel.core.problems import Problem
from tiercel.core.ranges import IndexRanges, Span
from tiercel.federation.peers import PeerState
from tiercel.store import DeleteSiteJob, SaveSiteJob
from tiercel.store.specs import spec_from_row
from tiercel.wire.peer import Accepted, Cancel, Forward, PeerMessage, PeerResult, PeerResults, Refused, ResultsAck

log = logging.getLogger("tiercel.peers")

BATCH = 2000  # results in one message at most


class Service(Protocol):
    """The peers' service (service.py), as work arriving needs it."""

    manager: Any
    manager_id: str
    peers: dict[str, PeerState]

    def send(self, peer: str, msg: PeerMessage) -> bool: ...
    def refusal(self, p: PeerState, why: str, *, theirs: bool = False) -> None: ...


def site_of(peer: str) -> str:
    """The store's name for the ranges a peer forwarded here."""
    return f"from:{peer}"


@dataclass
class InLease:
    peer: str
    lease: str
    epoch: int
    origin_job: int
    job: JobId  # its job here
    spans: tuple[Span, ...]
    pending: dict[int, PeerResult] = field(default_factory=dict)  # settled here, not yet sent
    unacked: dict[int, PeerResult] = field(default_factory=dict)  # sent, not yet acknowledged
    ended: bool = False  # its job here ended
    cancelled: bool = False  # the origin cancelled it: nothing more to send


class Inbound:
    def __init__(self, fed: Service) -> None:
        self.fed = fed
        self.leases: dict[tuple[str, str], InLease] = {}
        self.by_job: dict[JobId, InLease] = {}
        self._arriving: set[tuple[str, str]] = set()
        self._background: set[asyncio.Task[Any]] = set()

    @property
    def manager(self) -> Any:
        return self.fed.manager

    # ---- a forward -------------------------------------------------------------------

    def forward(self, p: PeerState, msg: Forward) -> None:
        key = (p.name, msg.lease)
        known = self.leases.get(key)
        if known is not None:
            self.fed.send(p.name, Accepted(msg.lease, known.job))  # seen before: it runs once
            return
        if key in self._arriving:
            return
        why = self._check(msg)
        if isinstance(why, str):
            self.fed.refusal(p, f"range {msg.lease} refused: {why}")
            self.fed.send(p.name, Refused(msg.lease, why))
            return
        self._arriving.add(key)
        task = asyncio.ensure_future(self._submit(p, msg, why))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _check(self, msg: Forward) -> Any:
        """The job to run for a forward, or why not (a loop, a job this manager cannot take)."""
        me = self.fed.manager_id
        if me in msg.hops:
            return (f"forwarding loop: this manager ({me}) is already on the range's path "
                    f"({' -> '.join(msg.hops)})")
        try:
            spec = spec_from_row({**msg.spec, "indexes": [list(s) for s in msg.spans]})
        except (KeyError, TypeError, ValueError) as exc:
            return f"its job is not one this manager can read ({type(exc).__name__}: {exc})"
        if not spec.command or len(spec.indexes) == 0:
            return "its job has no command or no index"
        if len(spec.indexes) > self.manager.settings.max_tasks:
            return f"{len(spec.indexes)} tasks (this manager takes at most {self.manager.settings.max_tasks})"
        queues = self.manager.queries.queues()
        default = next((q["name"] for q in queues if q["default"]), "default")
        spec = dataclasses.replace(spec, hops=msg.hops, queue=default, site=None, reservation=None, after=(),
                                   held=False, limits=(), retries=0, max_failures=None, entries=None)
        return spec

    async def _submit(self, p: PeerState, msg: Forward, spec: Any) -> None:
        key = (p.name, msg.lease)
        user = UserName(p.cfg_user)
        try:
            problem = self.manager.admit(user, spec)
            if isinstance(problem, Problem):
                why = problem.message()
                self.fed.refusal(p, f"range {msg.lease} refused: {why}")
                self.fed.send(p.name, Refused(msg.lease, why))
                return
            spec = problem
            payload = {"lease": msg.lease, "epoch": msg.epoch, "origin_job": msg.job,
                       "spans": [list(s) for s in msg.spans]}

            def record(job: JobId) -> list[Any]:
                self._hold(p, msg, job)  # known before the job can end, and before any result of it
                return [SaveSiteJob(site_of(p.name), msg.lease, json.dumps({**payload, "job": job}),
                                    self.manager.clock())]
            summary = await self.manager.submit(user, spec, also=record)
            self.fed.send(p.name, Accepted(msg.lease, summary.id))
            log.info("range %s of peer %s (its job %s indexes %s, epoch %d) runs here as job %s of %s",
                     msg.lease, p.name, msg.job, IndexRanges(msg.spans).text(), msg.epoch, summary.id, user)
        except Exception as exc:  # the store refused it, the disk is full: the origin places it elsewhere
            self.leases.pop(key, None)
            log.error("range %s of peer %s could not be taken: %s", msg.lease, p.name, exc)
            self.fed.send(p.name, Refused(msg.lease, f"this manager could not store it: {exc}"))
        finally:
            self._arriving.discard(key)

    def _hold(self, p: PeerState, msg: Forward, job: JobId) -> None:
        lease = InLease(p.name, msg.lease, msg.epoch, msg.job, job, msg.spans)
        self.leases[(p.name, msg.lease)] = lease
        self.by_job[job] = lease

    def cancel(self, p: PeerState, msg: Cancel) -> None:
        lease = self.leases.get((p.name, msg.lease))
        if lease is None:
            return
        lease.cancelled = True
        lease.pending.clear()
        lease.unacked.clear()
        if not lease.ended:
            task = asyncio.ensure_future(self.manager.cancel(lease.job))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        else:
            self._forget(lease)
        log.info("range %s of peer %s cancelled there: job %s cancelled here", msg.lease, p.name, lease.job)

    # ---- results back -------------------------------------------------------------------

    def durable(self, records: list[AttemptRecord]) -> None:
        for a in records:
            if not a.final:
                continue
            lease = self.by_job.get(a.report.job)
            if lease is None or lease.cancelled:
                continue
            r = a.report
            lease.pending[r.index] = PeerResult(r.index, r.outcome, r.exit_code, r.started, r.ended, r.stdout,
                                                r.stderr, r.cpu)

    def flush(self) -> None:
        """Send what settled since the last flush: one message per range (per BATCH results)."""
        for lease in self.leases.values():
            if not lease.pending or not self.fed.peers[lease.peer].up:
                continue
            items = list(lease.pending.values())
            lease.pending.clear()
            for start in range(0, len(items), BATCH):
                chunk = items[start:start + BATCH]
                for r in chunk:
                    lease.unacked[r.index] = r
                self.fed.send(lease.peer, PeerResults(lease.lease, lease.epoch, tuple(chunk)))

    def ack(self, p: PeerState, msg: ResultsAck) -> None:
        lease = self.leases.get((p.name, msg.lease))
        if lease is None:
            return
        for a, b in msg.spans:
            for i in range(a, b):
                lease.unacked.pop(i, None)
        if msg.refused and msg.refused != "its job has ended at the origin":
            self.fed.refusal(p, f"it refused our results of range {msg.lease}: {msg.refused}", theirs=True)
        self._maybe_forget(lease)

    def job_ended(self, job: JobId) -> None:
        lease = self.by_job.get(job)
        if lease is None:
            return
        lease.ended = True
        if lease.cancelled:
            self._forget(lease)
            return
        task = asyncio.ensure_future(self._unrun(lease))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _unrun(self, lease: InLease) -> None:
        """The job ended here with tasks that never ran (cancelled by an admin here): given back."""
        outcomes = await asyncio.to_thread(self.manager.store.task_outcomes, lease.job)
        unrun = [i for i in IndexRanges(lease.spans) if i not in outcomes]
        if unrun and not lease.cancelled:
            self.fed.send(lease.peer, Refused(lease.lease, f"{len(unrun)} of its tasks were cancelled at this "
                                                           "manager before they ran"))
        self._maybe_forget(lease)

    def _maybe_forget(self, lease: InLease) -> None:
        if lease.ended and not lease.pending and not lease.unacked:
            self._forget(lease)

    def _forget(self, lease: InLease) -> None:
        self.leases.pop((lease.peer, lease.lease), None)
        self.by_job.pop(lease.job, None)
        self.manager.write([DeleteSiteJob(site_of(lease.peer), lease.lease)])

    def link_up(self, p: PeerState) -> None:
        """The link is (back): everything not acknowledged goes again, and every range is confirmed."""
        for lease in self.leases.values():
            if lease.peer != p.name:
                continue
            lease.pending.update(lease.unacked)
            lease.unacked.clear()
            if not lease.cancelled:
                self.fed.send(p.name, Accepted(lease.lease, lease.job))

    # ---- restart and reads ----------------------------------------------------------------

    def restore(self, rows: Sequence[SaveSiteJob]) -> None:
        for row in rows:
            peer = row.site[len("from:"):]
            d = json.loads(row.payload)
            lease = InLease(peer, row.native_id, int(d["epoch"]), int(d["origin_job"]), JobId(int(d["job"])),
                            tuple((int(a), int(b)) for a, b in d["spans"]))
            lease.ended = lease.job not in self.manager.engine.jobs
            self.leases[(peer, lease.lease)] = lease
            self.by_job[lease.job] = lease
        if self.leases:
            task = asyncio.ensure_future(self._reread(list(self.leases.values())))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _reread(self, leases: list[InLease]) -> None:
        """After a restart: what ran here for peers, read back from the store, to be sent again."""
        for lease in leases:
            rows = await asyncio.to_thread(self.manager.store.attempts, lease.job, None, True)
            for r in rows:
                if r.index not in lease.pending:
                    lease.pending[r.index] = PeerResult(r.index, Outcome(r.outcome), r.exit_code, r.started,
                                                        r.ended, r.stdout, r.stderr)
            log.info("range %s of peer %s: %d result(s) found after the restart", lease.lease, lease.peer,
                     len(lease.pending))
            if lease.ended and not lease.pending:
                self._forget(lease)

    def summary_for(self, peer: str) -> tuple[int, tuple[tuple[str, int], ...]]:
        """Tasks of the peer's running here now, and per range how many started or finished."""
        running = 0
        started = []
        engine = self.manager.engine
        for lease in self.leases.values():
            if lease.peer != peer:
                continue
            run = engine.jobs.get(lease.job)
            if run is None:
                started.append((lease.lease, sum(b - a for a, b in lease.spans)))
                continue
            running += len(run.running)
            started.append((lease.lease, len(run.running) + run.settled))
        return running, tuple(started)

    def rows(self, peer: str) -> dict[str, int]:
        mine = [x for x in self.leases.values() if x.peer == peer]
        return {"ranges_here": len(mine), "tasks_here": sum(sum(b - a for a, b in x.spans) for x in mine)}
