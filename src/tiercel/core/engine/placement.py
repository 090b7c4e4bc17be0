"""Where waiting tasks go: the sites jobs bind to, the reservations held, and dispatch, which hands
waiting tasks to places with free slots queue by queue, by each queue's policies.

A base of Engine (``machine``), which owns the state and its other transitions; like them, nothing
here touches a socket, a file or a clock (``now`` is given).
"""

from __future__ import annotations

from tiercel.core.engine.data import DataPlacement
from tiercel.core.engine.effects import Effect, SendTasks
from tiercel.core.engine.state import JobRun, Running, WorkerRun
from tiercel.core.engine.views import Views, _plan
from tiercel.core.model import JobId, TaskRef, WorkerId
from tiercel.core.pipeline import Chain, Plan
from tiercel.core.policy import Snapshot
from tiercel.core.problems import Problem
from tiercel.core.reservations import Reservation, admit
from tiercel.core.seal import Seal
from tiercel.core.sites import PEER_WORKER, SiteInfo


def _joined(w: WorkerRun) -> int:
    return w.joined


class Placement(Views, DataPlacement):
    """Mixed into Engine: binding jobs to sites, reservations, and dispatch."""

    seal: Seal
    queue_errors: dict[str, str]
    _hungry: set[WorkerId]

    def _set_credit(self, worker: WorkerRun, credit: int) -> None:
        raise NotImplementedError  # the Engine's

    # ---- sites ---------------------------------------------------------

    def set_sites(self, sites: list[SiteInfo]) -> None:
        """The shell's view of the sites changed: jobs bound to a site that is now degraded choose again."""
        self.sites = sites
        bad = {s.name for s in sites if s.problem is not None}
        for job in self.jobs.values():
            if job.choice is not None and (job.site in bad or job.site is None):
                job.choice = None

    def bind(self) -> None:
        """Choose a site for every job with waiting tasks that has none."""
        for job_id, choice in self._choices().items():
            self.jobs[job_id].choice = choice

    # ---- reservations --------------------------------------------------

    def reserve(self, r: Reservation, capacity: int, now: float) -> Problem | None:
        """Admit a reservation, or say why not; nothing changes when it is refused."""
        problem = admit(r, [x for x in self.reservations.values() if x.end > now], capacity, now)
        if problem is None:
            self.reservations[r.name] = r
        return problem

    def restore_reservation(self, r: Reservation) -> None:
        self.reservations[r.name] = r

    def unreserve(self, name: str) -> bool:
        return self.reservations.pop(name, None) is not None

    # ---- dispatch ------------------------------------------------------

    def dispatch(self, now: float) -> list[Effect]:
        """Hand waiting tasks to workers with free slots, queue by queue, by each queue's policies."""
        if self.held(now):
            return []
        if not self._hungry:
            return []
        hungry = sorted((self.workers[w] for w in self._hungry), key=_joined)
        hungry.sort(key=lambda w: w.id.startswith(PEER_WORKER))  # home first: peers take what home cannot
        self.bind()
        room = self.room() if any(j.spec.limits for j in self._order) else {}
        credit = {w.id: w.credit for w in hungry}
        sends: dict[WorkerId, SendTasks] = {}
        # Caps shared by several jobs (a workflow's) are kept after the policies weighed each job alone:
        # what they left unplaced is offered again, a round or two, to the others.
        self.data_short.clear()  # data jobs that took less than they were offered: not offered again
        for _ in range(3 if room or self.data_jobs else 1):
            by_queue: dict[str, list[JobRun]] = {}
            for job in self._order:
                if job.startable and job.site is not None and all(room[k] > 0 for k, _ in job.spec.limits) \
                        and job.id not in self.data_short:
                    by_queue.setdefault(self.queue_of(job), []).append(job)
            if not by_queue or not self._dispatch_round(by_queue, hungry, credit, sends, room, now):
                break
        return [*self.take_data_effects(now), *sends.values(), *self.take_copies()]

    def _dispatch_round(self, by_queue: dict[str, list[JobRun]], hungry: list[WorkerRun], credit: dict[WorkerId, int],
                        sends: dict[WorkerId, SendTasks], room: dict[str, int], now: float) -> bool:
        """Place waiting tasks queue by queue; whether a shared cap held some back (worth another round)."""
        clamped = False
        for name, chain in self.queues.items():
            jobs = by_queue.get(name)
            if not jobs:
                continue
            places = self._places(hungry, credit, now)
            if not places:
                break
            planned = self._schedule(name, self._snapshot(now, jobs, places), chain)
            data_jobs: dict[JobId, dict[WorkerId, int]] = {}
            for placement in planned.placements if planned else ():
                job = self.jobs[placement.job]
                count = placement.count
                if job.spec.limits:
                    count = min(count, *(room[k] for k, _ in job.spec.limits))
                    clamped = clamped or count < placement.count
                    if count <= 0:
                        continue
                    for key, _ in job.spec.limits:
                        room[key] -= count
                worker = self.workers[WorkerId(placement.place)]
                if job.spec.inputs:  # which tasks go where is the data's to say, below
                    data_jobs.setdefault(job.id, {})[worker.id] = count
                    continue
                send = sends.get(worker.id)
                if send is None:
                    send = sends[worker.id] = SendTasks(worker.id, [], {})
                if job.id not in worker.known_jobs:
                    worker.known_jobs.add(job.id)
                    send.specs[job.id] = job.spec
                credit[worker.id] -= count * job.spec.cpus
                self._assign(job, worker, count, send.tasks, now)
            for job_id, allowed in data_jobs.items():
                job = self.jobs[job_id]
                # the policies said how many may start; which of the places that fit it take them is the data's
                offer = {w.id: credit[w.id] // job.spec.cpus for w in hungry
                         if credit[w.id] >= job.spec.cpus and w.info.fits(job.spec) and w.info.site == job.site}
                picks = self.place_data(job, offer, sum(allowed.values()), now)
                if sum(map(len, picks.assign.values())) < sum(allowed.values()):
                    self.data_short.add(job_id)
                    clamped = True  # the slots it left are offered to the other jobs
                for wid, indexes in picks.assign.items():
                    worker = self.workers[WorkerId(wid)]
                    send = sends.get(worker.id)
                    if send is None:
                        send = sends[worker.id] = SendTasks(worker.id, [], {})
                    if job.id not in worker.known_jobs:
                        worker.known_jobs.add(job.id)
                        send.specs[job.id] = job.spec
                    credit[worker.id] -= len(indexes) * job.spec.cpus
                    self._assign(job, worker, len(indexes), send.tasks, now, indexes)
        return clamped

    def _schedule(self, name: str, snap: Snapshot, chain: Chain) -> Plan | None:
        """One queue's cycle. A policy that raises (a third party's bug) stops its queue, not the manager."""
        plan_ = _plan(snap, chain)
        if isinstance(plan_, str):
            self.queue_errors[name] = plan_
            return None
        self.queue_errors.pop(name, None)
        return plan_

    def _usage(self, job: JobRun, tasks: int, now: float | None) -> None:
        """Fair-share accounting: slots a user holds, changed as tasks start and stop."""
        if tasks:
            self.usage.add_running(job.owner, tasks * job.spec.cpus, self.usage.now if now is None else now)

    def _assign(self, job: JobRun, worker: WorkerRun, n: int, out: list[TaskRef], now: float,
                chosen: list[int] | None = None) -> None:
        self._usage(job, n, now)
        job.started = True
        job.workers.add(worker.id)
        self._set_credit(worker, worker.credit - n * job.spec.cpus)
        running, tasks, wid, jid, seal = job.running, worker.tasks, worker.id, job.id, self.seal.make
        entries = job.spec.entries  # a sweep over data: each task carries its own entry
        for index in chosen or ():  # tasks chosen one by one (data-aware placement)
            if index in job.retry:
                attempt, failures = job.retry.pop(index)
            else:
                attempt, failures = 1, 0
                job.fresh.discard(index)
            running[index] = Running(wid, attempt, failures, now)
            tasks[(jid, index)] = attempt
            out.append(TaskRef(jid, index, attempt, seal(wid, jid, index, attempt),
                               None if entries is None else entries[index]))
        if chosen is not None:
            return
        while n and job.retry:
            index, (attempt, failures) = job.retry.popitem(last=False)
            running[index] = Running(wid, attempt, failures, now)
            tasks[(jid, index)] = attempt
            out.append(TaskRef(jid, index, attempt, seal(wid, jid, index, attempt),
                               None if entries is None else entries[index]))
            n -= 1
        for index in job.fresh.take(n):
            running[index] = Running(wid, 1, 0, now)
            tasks[(jid, index)] = 1
            out.append(TaskRef(jid, index, 1, seal(wid, jid, index, 1), None if entries is None else entries[index]))
