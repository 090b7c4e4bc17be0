"""Work leaving: each peer is one place in the engine, and what the engine hands it leaves as leases.

To the engine a peer is a site's place (``peer:NAME``) with credit: the tasks its summaries say it
can take (core.federation.credit). What the engine sends there is cut into leases — one job's
tasks of one attempt, as spans — each stored (``SaveSiteJob`` under ``peer:NAME``) before its one
``forward`` message leaves, so an origin that restarts finds every range it gave away and
holds its tasks as the peer's again. Results come back per lease; they count only for a lease
given to that peer, and the engine settles each task once (core.federation says why a late
result of an older epoch is still taken).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from typing import Any, Protocol

from tiercel.core.engine import KillTasks, SendTasks
from tiercel.core.federation import Lease, LeaseState, credit, offer_of, ranges, verdict
from tiercel.core.model import JobId, Report, TaskRef, WorkerInfo
from tiercel.core.ranges import IndexRanges, merge_spans
from tiercel.core.sites import peer_worker
from tiercel.federation.peers import PeerState
from tiercel.store import DeleteSiteJob, SaveSiteJob
from tiercel.store.specs import spec_to_row
from tiercel.wire.peer import Accepted, Cancel, Forward, PeerMessage, PeerResults, Refused, ResultsAck

log = logging.getLogger("tiercel.peers")

# A peer is offered its recent pace over this long, plus a few round trips of the link: enough that its
# slots never wait for the next range, little enough that a fast burst does not leave home idle at the end.
RATE_HORIZON = 0.3
RATE_RTTS = 4.0
RATE_WEIGHT = 0.5  # of each new measurement in the pace's moving average


class Service(Protocol):
    """The peers' service (service.py), as work leaving needs it."""

    manager: Any
    manager_id: str
    peers: dict[str, PeerState]
    caps: dict[str, int]

    def send(self, peer: str, msg: PeerMessage) -> bool: ...
    def refusal(self, p: PeerState, why: str, *, theirs: bool = False) -> None: ...


def site_of(peer: str) -> str:
    """The engine's site of a peer (and the store's name for its leases)."""
    return f"peer:{peer}"


class Origin:
    def __init__(self, fed: Service) -> None:
        self.fed = fed
        self.leases: dict[str, dict[str, Lease]] = {}  # peer -> lease id -> lease
        self.attached: set[str] = set()
        self._pace: dict[str, tuple[float, float]] = {}  # peer -> (tasks a second, when last measured)

    @property
    def manager(self) -> Any:
        return self.fed.manager

    # ---- the peer's place ------------------------------------------------------

    def info(self, p: PeerState) -> WorkerInfo:
        tags = frozenset().union(*(s.tags for s in p.sites)) if p.sites else frozenset()
        cpus = max((s.max_cpus or s.slots_total for s in p.sites), default=1)
        mem = max((s.max_memory_mb or 0 for s in p.sites), default=0)
        total = sum(s.slots_total for s in p.sites)
        return WorkerInfo(name=p.name, host=p.cfg.url or "(connects in)", slots=max(1, total), tags=tags,
                          cpus=max(1, cpus), memory_mb=mem, site=site_of(p.name))

    def in_flight(self, peer: str) -> int:
        return sum(x.size - len(x.settled) for x in self.leases.get(peer, {}).values() if x.state.active)

    def credit_of(self, p: PeerState) -> int:
        if not p.up or not p.cfg.forward or p.summary_at is None or self.manager.clock() < p.pause_until:
            return 0
        rate, _ = self._pace.get(p.name, (0.0, 0.0))
        offer = offer_of(p.sites, p.running_ours)
        horizon = RATE_HORIZON + RATE_RTTS * (p.rtt or 0.0)
        flight = self.in_flight(p.name)
        want = max(credit(offer, flight, p.cfg.prefetch), int(rate * horizon) - flight)
        cap = self.fed.caps.get(p.name)  # its share of what waits here: a burst is split, not swallowed by one
        if cap is not None:
            want = max(0, min(want, cap - flight + credit(offer, flight, p.cfg.prefetch)))
        # refilled only once half its target has drained: ranges of many tasks, not one per result batch
        return want if flight == 0 or want * 2 >= want + flight else 0

    def attach(self, p: PeerState) -> None:
        """Join (or join again) the engine as the peer's place, holding every task of its active leases."""
        held = [r for x in self.leases.get(p.name, {}).values() if x.state.active for r in x.open_refs()]
        kills = self.manager.attach_site(peer_worker(p.name), self.info(p), lambda e: self.deliver(p.name, e),
                                         held=held, credit=self.credit_of(p))
        self.attached.add(p.name)
        if kills:  # settled while the manager was down (their results durable, the range's record not yet)
            done = {(r.job, r.index) for r in kills}
            for lease in self.leases.get(p.name, {}).values():
                lease.settled.update(i for a, b in lease.spans for i in range(a, b) if (lease.job, i) in done)
            self.kill(p.name, kills)

    def refresh(self, p: PeerState) -> None:
        """What the peer offers changed (a summary, results, a lease): its place's credit follows."""
        if p.name not in self.attached:
            self.attach(p)
        else:
            self.manager.set_credit(peer_worker(p.name), self.credit_of(p))

    # ---- work out ------------------------------------------------------------

    def deliver(self, peer: str, e: SendTasks | KillTasks) -> None:
        if isinstance(e, KillTasks):
            self.kill(peer, e.tasks)
            return
        p = self.fed.peers[peer]
        now = self.manager.clock()
        for job_id, epoch, spans in ranges(e.tasks):
            lease = Lease(f"{job_id}.{epoch}.{spans[0][0]}", peer, job_id, epoch, spans, now, why=self._why(job_id))
            self.leases.setdefault(peer, {})[lease.id] = lease
            p.forwarded_tasks += lease.size
            spec = e.specs.get(job_id) or self._spec(job_id)
            if spec is None:  # ended meanwhile: nothing to run
                continue
            row = spec_to_row(dataclasses.replace(spec, indexes=IndexRanges(spans), entries=None))
            msg = Forward(lease.id, job_id, epoch, spans, row, (*spec.hops, self.fed.manager_id))
            fut = self.manager.write([self._record(lease)])
            # the lease is durable before it leaves: a restarted origin finds every range it gave away
            fut.add_done_callback(lambda f, msg=msg, lease=lease: None if f.exception() or not lease.state.active
                                  else self.fed.send(peer, msg))
            log.info("job %s indexes %s (epoch %d) forwarded to peer %s: %s", job_id, lease.text(), epoch, peer,
                     lease.why)

    def _spec(self, job_id: JobId) -> Any:
        live = self.manager.queries.live(job_id)
        return None if live is None else live.spec

    def _why(self, job_id: JobId) -> str:
        run = self.manager.engine.jobs.get(job_id)
        if run is not None and run.choice is not None and run.choice.site is not None \
                and run.choice.site.startswith("peer:"):
            return "no local site can run it" + (f" ({run.choice.reason()})" if run.choice.passed else "")
        return "local sites full"

    def _record(self, lease: Lease) -> SaveSiteJob:
        payload = {"job": lease.job, "epoch": lease.epoch, "spans": [list(s) for s in lease.spans],
                   "state": lease.state.value, "why": lease.why, "retired_why": lease.retired_why,
                   "settled": [list(s) for s in merge_spans((i, i + 1) for i in lease.settled)]}
        return SaveSiteJob(site_of(lease.peer), lease.id, json.dumps(payload), lease.sent)

    def kill(self, peer: str, tasks: Sequence[TaskRef]) -> None:
        """Tasks to stop (their job was cancelled, or they settled elsewhere): a lease all of whose open
        tasks are killed is cancelled at the peer; a lease partly killed runs on, its extra results ignored."""
        wanted = {(r.job, r.index, r.attempt) for r in tasks}
        for lease in list(self.leases.get(peer, {}).values()):
            if not lease.state.active or lease.job not in {r.job for r in tasks}:
                continue
            open_ = lease.open_refs()
            if open_ and all((r.job, r.index, r.attempt) in wanted for r in open_):
                self.retire(lease, "cancelled at the origin", cancel=True)

    def retire(self, lease: Lease, why: str, *, cancel: bool) -> None:
        lease.state = LeaseState.RETIRED
        lease.retired_why = why
        self.manager.write([self._record(lease)])
        if cancel:
            self.fed.send(lease.peer, Cancel(lease.id))

    # ---- what the peer says ------------------------------------------------------

    def accepted(self, p: PeerState, msg: Accepted) -> None:
        lease = self.leases.get(p.name, {}).get(msg.lease)
        if lease is None or lease.state is not LeaseState.SENT:
            if (lease is not None and lease.state is LeaseState.RETIRED) or (lease is None and
                                                                              self._job_over(msg.lease)):
                self.fed.send(p.name, Cancel(msg.lease))  # taken back, or its job ended: it must not run there
            return
        lease.state = LeaseState.ACCEPTED
        self.manager.write([self._record(lease)])

    def refused(self, p: PeerState, msg: Refused) -> None:
        lease = self.leases.get(p.name, {}).get(msg.lease)
        if lease is None or not lease.state.active:
            return
        self.fed.refusal(p, f"refused range {lease.id} (job {lease.job} indexes {lease.text()}): {msg.reason}",
                         theirs=True)
        # nothing more goes there until its next summary: the range is not offered straight back to it
        p.pause_until = self.manager.clock() + p.cfg.summary_interval
        self.refresh(p)
        self.give_back(lease, f"peer {p.name} refused it: {msg.reason}")

    def give_back(self, lease: Lease, why: str) -> None:
        """Take the lease's open tasks back: they wait again, as their next attempt (epoch + 1)."""
        refs = lease.open_refs()
        self.retire(lease, why, cancel=False)
        self.manager.give_back(peer_worker(lease.peer), refs)
        log.warning("job %s indexes %s (epoch %d) taken back from peer %s: %s", lease.job, lease.text(),
                    lease.epoch, lease.peer, why)

    def results(self, p: PeerState, msg: PeerResults) -> None:
        lease = self.leases.get(p.name, {}).get(msg.lease)
        indexes = [r.index for r in msg.items]
        spans = merge_spans((i, i + 1) for i in indexes)
        if lease is None and self._job_over(msg.lease):
            # late results of a job that has ended here (its ranges forgotten): nothing more to do with them
            log.info("peer %s: %d late result(s) of range %s, whose job has ended here", p.name, len(indexes),
                     msg.lease)
            self.fed.send(p.name, ResultsAck(msg.lease, spans, refused="its job has ended at the origin"))
            self.fed.send(p.name, Cancel(msg.lease))  # what is left of it need not run
            return
        why = verdict(lease, p.name, indexes)
        if why is None and lease is not None and msg.epoch != lease.epoch:
            why = f"epoch {msg.epoch} of range {lease.id}, which is of epoch {lease.epoch}"
        if why is not None or lease is None:
            self.fed.refusal(p, f"results for {why}: {len(indexes)} result(s) dropped")
            self.fed.send(p.name, ResultsAck(msg.lease, spans, refused=f"results for {why}"))
            return
        worker = peer_worker(p.name)
        if lease.state.active:  # the engine holds these attempts as the peer's: no seal to check
            reports = [Report(lease.job, r.index, lease.epoch, r.outcome, r.exit_code, r.started, r.ended, r.stdout,
                              r.stderr, b"", r.cpu) for r in msg.items]
        else:  # taken back: the attempt is proven by its seal, as a worker's late report is
            seal = self.manager.engine.seal.make
            reports = [Report(lease.job, r.index, lease.epoch, r.outcome, r.exit_code, r.started, r.ended, r.stdout,
                              r.stderr, seal(worker, lease.job, r.index, lease.epoch), r.cpu) for r in msg.items]
        fresh = [i for i in indexes if i not in lease.settled]
        lease.settled.update(indexes)
        self._measure(p.name, len(fresh))
        done = self.manager.site_reports(worker, reports, 0)
        done.add_done_callback(lambda f: None if f.exception() else self.fed.send(p.name, ResultsAck(lease.id, spans)))
        if len(lease.settled) >= lease.size:
            self._forget(lease, after=done)
        self.refresh(p)

    def _measure(self, peer: str, n: int) -> None:
        now = self.manager.clock()
        rate, at = self._pace.get(peer, (0.0, now))
        dt = max(0.05, now - at)
        self._pace[peer] = ((1 - RATE_WEIGHT) * rate + RATE_WEIGHT * n / dt, now)

    def _job_over(self, lease_id: str) -> bool:
        try:
            job = JobId(int(lease_id.split(".", 1)[0]))
        except ValueError:
            return False
        return job not in self.manager.engine.jobs and 0 < job < self.manager.next_job_id

    def _forget(self, lease: Lease, after: Any = None) -> None:
        self.leases.get(lease.peer, {}).pop(lease.id, None)
        ops = [DeleteSiteJob(site_of(lease.peer), lease.id)]
        if after is None:
            self.manager.write(ops)
        else:
            after.add_done_callback(lambda _: self.manager.write(ops))

    def job_ended(self, job: JobId) -> None:
        """The job ended here: its leases are forgotten (cancelled at the peer if they still run)."""
        for peer, leases in self.leases.items():
            for lease in [x for x in leases.values() if x.job == job]:
                if lease.state.active and len(lease.settled) < lease.size:
                    self.fed.send(peer, Cancel(lease.id))
                self._forget(lease)

    # ---- time and the link -------------------------------------------------------------

    def link_up(self, p: PeerState) -> None:
        """The link is (back) up: ranges not yet acknowledged are sent again, ranges taken back are cancelled
        there (what the peer ran of them meanwhile still comes back and counts where it may)."""
        for lease in self.leases.get(p.name, {}).values():
            if lease.state is LeaseState.SENT:
                spec = self._spec(lease.job)
                if spec is not None:
                    row = spec_to_row(dataclasses.replace(spec, indexes=IndexRanges(lease.spans), entries=None))
                    self.fed.send(p.name, Forward(lease.id, lease.job, lease.epoch, lease.spans, row,
                                                  (*spec.hops, self.fed.manager_id)))
            elif lease.state is LeaseState.RETIRED and len(lease.settled) < lease.size:
                self.fed.send(p.name, Cancel(lease.id))
        if p.name not in self.attached:
            self.attach(p)

    def check(self, p: PeerState, now: float) -> None:
        """Take back what a silent or idle peer holds (core.federation.overdue)."""
        from tiercel.core.federation import overdue

        leases = list(self.leases.get(p.name, {}).values())
        for lease in leases:
            lease.started = max(lease.started, p.started.get(lease.id, 0))
        due = overdue(leases, now, p.silent_since, p.cfg.timeout, p.cfg.start_timeout)
        if due.all:
            self.fed.refusal(p, f"{due.why}: its {len(due.leases)} range(s) taken back and placed again")
            for lease in leases:
                if lease.state.active:
                    lease.state = LeaseState.RETIRED
                    lease.retired_why = f"peer {p.name} {due.why}"
                    self.manager.write([self._record(lease)])
            self.manager.lose_site(peer_worker(p.name))
            self.attached.discard(p.name)
            log.warning("peer %s %s: its ranges were taken back", p.name, due.why)
        else:
            for lid in due.leases:
                lease = self.leases[p.name][lid]
                self.fed.refusal(p, f"range {lid}: {due.why}; taken back")
                self.give_back(lease, f"peer {p.name} {due.why}")
                self.fed.send(p.name, Cancel(lid))

    # ---- restart and reads ------------------------------------------------------------

    def restore(self, rows: Sequence[SaveSiteJob]) -> None:
        for row in rows:
            peer = row.site[len("peer:"):]
            if peer not in self.fed.peers:
                log.warning("a range forwarded to peer %s, which is no longer configured, waits again", peer)
                self.manager.write([DeleteSiteJob(row.site, row.native_id)])
                continue
            d = json.loads(row.payload)
            lease = Lease(row.native_id, peer, JobId(int(d["job"])), int(d["epoch"]),
                          tuple((int(a), int(b)) for a, b in d["spans"]), row.submitted,
                          LeaseState(d.get("state", "sent")), why=d.get("why", ""),
                          retired_why=d.get("retired_why", ""))
            for a, b in d.get("settled", ()):
                lease.settled.update(range(a, b))
            if lease.job not in self.manager.engine.jobs:
                self.manager.write([DeleteSiteJob(row.site, row.native_id)])
                continue
            self.leases.setdefault(peer, {})[lease.id] = lease
        for peer, leases in self.leases.items():
            if any(x.state.active for x in leases.values()):
                p = self.fed.peers[peer]
                p.down_since = self.manager.clock()  # its time-out runs from now
                self.attach(p)
                log.info("peer %s holds %d range(s) forwarded before the restart", peer,
                         sum(1 for x in leases.values() if x.state.active))

    def forwarded(self, job: JobId) -> list[dict[str, Any]]:
        out = []
        for peer, leases in self.leases.items():
            for x in leases.values():
                if x.job == job:
                    out.append({"peer": peer, "lease": x.id, "indexes": x.text(), "epoch": x.epoch,
                                "state": x.state.value, "tasks": x.size, "settled": len(x.settled),
                                "why": x.retired_why if x.state is LeaseState.RETIRED else x.why})
        return out

    def rows(self, peer: str) -> dict[str, int]:
        leases = self.leases.get(peer, {}).values()
        return {"ranges": sum(1 for x in leases if x.state.active), "tasks_there": self.in_flight(peer)}
