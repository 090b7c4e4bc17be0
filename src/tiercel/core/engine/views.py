"""What the engine's state looks like to placement: snapshots for the policies, site loads, and why
a job waits. Reads only: the transitions that change the state are in ``machine``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from tiercel.core.engine.state import JobRun, WorkerRun
from tiercel.core.model import (
    Counts,
    JobId,
    UserName,
    WorkerId,
)
from tiercel.core.pipeline import Chain, Plan, schedule
from tiercel.core.policies.fairshare import DecayedUsage
from tiercel.core.policy import Code, Group, Place, ReservationView, Snapshot, Status, never
from tiercel.core.reservations import Reservation
from tiercel.core.sites import Choice, Mode, SiteInfo, SiteLoad, choose


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why a job's tasks wait: its queue's verdict, and each connected worker's."""

    queue: str
    status: Status | None  # None: nothing waits, or the job is not live
    workers: list[tuple[str, Status]]
    site: str | None = None  # the site its waiting tasks go to
    site_reason: str = ""  # why that one, and why not the others


class Views:
    """Read-only views of the live state (the base of Engine, which owns and changes that state)."""

    queues: dict[str, Chain]
    default_queue: str
    usage: DecayedUsage
    reservations: dict[str, Reservation]
    sites: list[SiteInfo]
    jobs: dict[JobId, JobRun]
    workers: dict[WorkerId, WorkerRun]
    _order: list[JobRun]
    hold_until: float
    expected_workers: set[WorkerId]

    def counts(self, job_id: JobId) -> Counts | None:
        job = self.jobs.get(job_id)
        return job.counts() if job else None

    def held(self, now: float) -> bool:
        return bool(self.expected_workers) and now < self.hold_until

    def _releases(self, worker: WorkerRun, now: float) -> list[tuple[float, int]]:
        """When the worker's tasks should end (for backfill): by walltime, never if it has none."""
        out = []
        for job_id, index in worker.tasks:
            job = self.jobs.get(job_id)
            run = job.running.get(index) if job else None
            if job is None or run is None:
                continue
            ends = math.inf if job.spec.walltime is None else max(now, run.since + job.spec.walltime)
            out.append((ends, job.spec.cpus))
        return out

    def _busy(self, worker: WorkerRun) -> int:
        """Slots held by the tasks a worker has, running or queued on it."""
        jobs = self.jobs
        return sum(jobs[j].spec.cpus if j in jobs else 1 for j, _ in worker.tasks)

    def room(self) -> dict[str, int]:
        """Caps shared by several jobs (a workflow's): how many more of their tasks may start now."""
        room: dict[str, int] = {}
        for j in self._order:
            for key, cap in j.spec.limits:
                room[key] = room.get(key, cap) - len(j.running)
        return room

    def queue_of(self, job: JobRun) -> str:
        return job.spec.queue if job.spec.queue in self.queues else self.default_queue

    def _snapshot(self, now: float, jobs: list[JobRun], places: tuple[Place, ...],
                  sites: dict[JobId, str] | None = None) -> Snapshot:
        running_by_user: dict[UserName, int] = {}
        running_by_queue: dict[str, int] = {}
        for j in self.jobs.values():
            if j.running:
                n = len(j.running)
                running_by_user[j.owner] = running_by_user.get(j.owner, 0) + n
                q = self.queue_of(j)
                running_by_queue[q] = running_by_queue.get(q, 0) + n
        groups = tuple(self._group(j, (sites or {}).get(j.id)) for j in jobs)
        return Snapshot(now, groups, places, running_by_user, running_by_queue, self.usage.at(now),
                        reservations=self._reservation_views(now))

    def _group(self, j: JobRun, site: str | None = None) -> Group:
        # what may start now: a held job, or one at its cap, offers the policies nothing (or less)
        spec = j.spec
        return Group(j.id, j.owner, j.startable, spec.cpus, j.submitted, self.queue_of(j), spec.priority,
                     spec.walltime, spec.requires, spec.memory_mb, spec.reservation,
                     site or (j.site if j.site is not None else spec.site),
                     stay=bool(spec.hops) or spec.site is not None or spec.entries is not None
                     or spec.reservation is not None or any(a.kind == "corr" for a in spec.after))

    def _places(self, workers: Iterable[WorkerRun], credit: dict[WorkerId, int] | None, now: float
                ) -> tuple[Place, ...]:
        return tuple(Place(w.id, w.credit if credit is None else credit[w.id], w.info.slots, w.info.tags,
                           w.info.memory_mb, name=w.info.name, busy=self._busy(w), releases=self._releases(w, now),
                           site=w.info.site, ends_at=w.info.ends_at, reservation=w.info.reservation)
                     for w in workers if credit is None or credit[w.id] > 0)

    def _reservation_views(self, now: float) -> tuple[ReservationView, ...]:
        if not self.reservations:
            return ()
        used: dict[str, int] = {}
        for j in self.jobs.values():
            if j.spec.reservation is not None and j.running:
                used[j.spec.reservation] = used.get(j.spec.reservation, 0) + len(j.running) * j.spec.cpus
        pilots = {s.name for s in self.sites if s.mode is Mode.PILOT}
        # Ended ones too: their work is told it ended, not that it "does not exist".
        return tuple(ReservationView(r.name, r.slots, r.start, r.end, r.users, used.get(r.name, 0), r.site,
                                     own_places=r.mirror is not None and r.site in pilots)
                     for r in self.reservations.values())

    def site_loads(self) -> dict[str, SiteLoad]:
        total: dict[str, int] = {}
        free: dict[str, int] = {}
        queued: dict[str, int] = {}
        for w in self.workers.values():
            if w.connected:
                site = w.info.site
                total[site] = total.get(site, 0) + w.info.slots
                if not w.draining:  # free slots, not credit: a worker asks for more than it has (prefetch)
                    free[site] = free.get(site, 0) + max(0, min(w.credit, w.info.slots - self._busy(w)))
        for j in self._order:
            if j.pending and j.site is not None:
                queued[j.site] = queued.get(j.site, 0) + j.pending * j.spec.cpus
        return {s.name: SiteLoad(total.get(s.name, 0), free.get(s.name, 0), queued.get(s.name, 0))
                for s in self.sites}

    def _choices(self) -> dict[JobId, Choice]:
        """The site each waiting job without one would be bound to now: computed, not stored."""
        loads: dict[str, SiteLoad] | None = None
        out: dict[JobId, Choice] = {}
        for job in self._order:
            if job.pending and job.site is None:
                if loads is None:
                    loads = self.site_loads()
                choice = out[job.id] = choose(self._group(job), self.sites, loads)
                if choice.site is not None:
                    old = loads[choice.site]
                    loads[choice.site] = SiteLoad(old.total, old.free, old.queued + job.pending * job.spec.cpus)
        return out

    def waiting_on(self, site: str, reservation: str | None = None, *, besides: frozenset[str] = frozenset()
                   ) -> int:
        """Slots of the tasks waiting for this site (for the pilots it should start).

        With ``reservation``, only that reservation's tasks; ``besides`` leaves out the tasks of these.
        """
        return sum(j.startable * j.spec.cpus for j in self._order
                   if j.startable and j.site == site and (reservation is None or j.spec.reservation == reservation)
                   and j.spec.reservation not in besides)

    def explain(self, job_id: JobId, now: float) -> Explanation | None:
        """Why the job's waiting tasks are not running: its queue's verdict over all connected workers.

        A query: it changes nothing. Jobs not yet bound to a site are weighed where the next
        dispatch would bind them, and a failing policy is reported, not recorded.
        """
        job = self.jobs.get(job_id)
        if job is None:
            return None
        name = self.queue_of(job)
        chain = self.queues[name]
        connected = [w for w in self.workers.values() if w.connected]
        places = self._places(connected, None, now)
        if job.waits:
            parent, kind = next(iter(job.waits.items()))
            more = f" and {len(job.waits) - 1} other job(s)" if len(job.waits) > 1 else ""
            return Explanation(name, Status(Code.WAIT, "after", f"waits for job {parent} to end{more} "
                                                                f"(after {kind})"), [])
        if job.gated and not job.pending:
            parent = next(d.job for d in job.spec.after if d.kind == "corr")
            return Explanation(name, Status(Code.WAIT, "after", f"{len(job.gated)} task(s) wait for the same "
                                                                f"tasks of job {parent} to be done (after corr)"), [])
        if not job.pending:
            return Explanation(name, None, [])
        if job.spec.held:
            return Explanation(name, Status(Code.WAIT, "hold", "the job is held: 'tiercel release "
                                                               f"{job_id}' lets its tasks start"), [])
        if job.spec.limits:
            room = self.room()
            full = next(((key, cap) for key, cap in job.spec.limits if room.get(key, cap) <= 0), None)
            if full is not None:
                return Explanation(name, Status(Code.WAIT, "throttle", f"{full[0]} runs the most tasks it may at "
                                                                       f"once ({full[1]})"), [])
        if not job.startable:
            return Explanation(name, Status(Code.WAIT, "max_running", f"{len(job.running)} of its tasks run, "
                                                                      f"its cap (max_running {job.spec.max_running})"),
                               [])
        choices = self._choices()
        bound = {j: c.site for j, c in choices.items() if c.site is not None}
        choice = job.choice or choices.get(job.id)
        site, site_reason = (choice.site, choice.reason()) if choice else (None, "")
        if site is None:
            return Explanation(name, never("sites", site_reason), [], None, site_reason)
        waiting = [j for j in self._order
                   if j.startable and (j.site is not None or j.id in bound) and self.queue_of(j) == name]
        snap = self._snapshot(now, waiting, places, bound)
        plan_ = _plan(snap, chain)
        if isinstance(plan_, str):
            return Explanation(name, never("queue", f"queue {name} is stopped: {plan_}"), [])
        status = plan_.why(job_id)
        if any(p.job == job_id for p in plan_.placements):
            status = None  # it would be placed now: the next dispatch sends it
        group = next(g for g in snap.groups if g.job == job_id)
        per_worker: list[tuple[str, Status]] = []
        for w, place in zip(connected, places, strict=True):
            verdict = next((st for f in chain.filters if not (st := f.filter(group, place, snap)).ok), None)
            if verdict is None:
                verdict = Status(Code.WAIT, "capacity", "all its slots are busy") if place.free < group.cpus \
                    else Status(Code.OK, "", "could take tasks now")
            per_worker.append((w.info.name, verdict))
        return Explanation(name, status, per_worker, site, site_reason)


def _plan(snap: Snapshot, chain: Chain) -> Plan | str:
    """A queue's plan, or what its failing policy raised (a third party's bug is not the engine's)."""
    try:
        return schedule(snap, chain)
    except Exception as exc:
        return f"a policy failed: {type(exc).__name__}: {exc}"
