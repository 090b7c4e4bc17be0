"""The task state machine: events in, effects out.

The engine holds the live state of every unfinished job and connected worker.
Each method takes one event (a submission, a worker's report, a worker gone)
and ``now``, mutates the engine's own state and returns the effects the shell
must perform: persist these attempt records, send these tasks, kill those, tell
the world a job ended. Nothing here touches a socket, a file or a clock.

Rules that make reports safe to repeat (a worker re-sends results the manager
has not acknowledged, and attempts can overlap after a restart):

* the first success of a task settles it, whichever attempt it came from;
* a failure counts only if it comes from the attempt the engine is waiting on,
  or for a task that no worker is known to run (reported after a restart);
* anything reported for a settled task, or an unknown job, is ignored;
* a report about an attempt (its result, or holding it at a hello) counts only from
  the worker it was handed to: the engine remembers what each worker holds, and for
  what it no longer remembers (after a restart, or an attempt handed out again since)
  the report must carry the attempt's seal (core.seal). Anything else is refused.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable

from tiercel.core import policies
from tiercel.core.engine.deps import Dependencies
from tiercel.core.engine.effects import Effect, JobEnded, KillTasks, Persist, Refused, RunCleanup
from tiercel.core.engine.placement import Placement
from tiercel.core.engine.state import JobRun, Running, TaskKey, WorkerRun
from tiercel.core.model import (
    AttemptRecord,
    JobId,
    JobSpec,
    Outcome,
    Parent,
    Report,
    Restored,
    TaskRef,
    UserName,
    WorkerId,
    WorkerInfo,
)
from tiercel.core.pipeline import Chain
from tiercel.core.policies.fairshare import DecayedUsage
from tiercel.core.ranges import RangeQueue
from tiercel.core.reservations import Reservation
from tiercel.core.scheduling import job_order
from tiercel.core.seal import Seal
from tiercel.core.sites import POOL, Mode, SiteInfo

DEFAULT_QUEUE = "default"


class Engine(Placement, Dependencies):
    """Live state of unfinished jobs and connected workers."""

    def __init__(self, *, hold_until: float = 0.0, expected_workers: Iterable[WorkerId] = (),
                 queues: dict[str, Chain] | None = None, half_life: float = 86400.0,
                 seal: Seal | None = None) -> None:
        self.seal = seal or Seal(b"")  # the shell passes the store's key; tests may use this one
        configured = queues or {DEFAULT_QUEUE: policies.default_chain(DEFAULT_QUEUE)}
        self.queues = {name: policies.for_placement(c) for name, c in configured.items()}
        self.default_queue = next(iter(self.queues))
        self.usage = DecayedUsage(policies.usage_half_life(self.queues.values()) or half_life)
        self.reservations: dict[str, Reservation] = {}
        self.sites: list[SiteInfo] = [SiteInfo(POOL, POOL, Mode.POOL)]
        self.queue_errors: dict[str, str] = {}  # queues whose policies raised in their last cycle
        self.jobs: dict[JobId, JobRun] = {}
        self.children: dict[JobId, set[JobId]] = {}
        self._settled_now: list[tuple[JobRun, int, bool]] = []  # tasks of jobs others depend on, by corr
        self.workers: dict[WorkerId, WorkerRun] = {}
        # Connected workers with free slots, kept as credit changes (a dispatch looks at these only,
        # not at every worker: with thousands connected, most are busy at any moment).
        self._hungry: set[WorkerId] = set()
        self._joined = 0  # each worker's place in joining order (dispatch offers places in that order)
        self._order: list[JobRun] = []
        # After a restart, dispatch waits until the workers that were connected
        # have come back (and reclaimed their running tasks) or until hold_until.
        self.hold_until = hold_until
        self.expected_workers = set(expected_workers)
        self._data_init()

    # ---- jobs ----------------------------------------------------------

    def add_job(
        self,
        job_id: JobId,
        spec: JobSpec,
        owner: UserName,
        now: float,
        restored: Restored | None = None,
        parents: dict[JobId, Parent] | None = None,
    ) -> list[Effect]:
        """A job joins (submitted, or restored after a restart). ``parents``: what the shell knows of
        the jobs it depends on that the engine does not hold (how they ended, their done tasks)."""
        job = JobRun(job_id, spec, owner, now, RangeQueue(spec.indexes.spans))
        if restored is not None:
            for start, stop in restored.settled:
                for index in range(start, stop):
                    job.fresh.discard(index)
            job.done, job.failed, job.cpu = restored.done, restored.failed, restored.cpu
            for index, task in restored.unsettled.items():
                if job.fresh.discard(index):
                    job.retry[index] = (task.attempts + 1, task.failures)
            job.started = job.settled > 0 or bool(job.retry)
        self.jobs[job_id] = job
        if spec.inputs:
            self.data_jobs.add(job_id)
        bisect.insort(self._order, job, key=job_order)  # a workflow adds thousands at once: no sort each
        effects = self._link(job, parents or {}) if spec.after else []
        return effects + self._maybe_end(job) if job_id in self.jobs else effects

    def cancel(self, job_id: JobId, now: float | None = None, reason: str | None = None) -> list[Effect]:
        """Cancel every task of the job that has not settled: waiting ones, and running ones killed."""
        job = self.jobs.get(job_id)
        if job is None:
            return []
        if reason is not None:
            job.reason = reason
        effects: list[Effect] = []
        job.cancelled += job.pending + len(job.running) + len(job.gated)
        job.fresh.clear()
        job.retry.clear()
        job.gated.clear()
        kills: dict[WorkerId, list[TaskRef]] = {}
        for index, run in job.running.items():
            worker = self.workers.get(run.worker)
            if worker is not None:
                worker.tasks.pop((job_id, index), None)
                kills.setdefault(run.worker, []).append(TaskRef(job_id, index, run.attempt))
        self._usage(job, -len(job.running), now)
        job.running.clear()
        effects.extend(KillTasks(w, refs) for w, refs in kills.items())
        effects.extend(self._maybe_end(job))
        return effects

    def cancel_waiting(self, job_id: JobId, reason: str) -> list[Effect]:
        """Cancel the job's tasks that have not started, saying why; running ones go on."""
        job = self.jobs.get(job_id)
        if job is None or not (job.pending or job.gated):
            return []
        job.cancelled += job.pending + len(job.gated)
        job.fresh.clear()
        job.retry.clear()
        job.gated.clear()
        job.reason = reason
        return self._maybe_end(job)

    def set_spec(self, job_id: JobId, spec: JobSpec) -> bool:
        """The job's changeable fields changed (held, priority, cap, walltime): checked by the shell.

        Its tasks, counts and attempts stay as they are; what may start follows the new spec
        from the next dispatch on. False when the job is not live."""
        job = self.jobs.get(job_id)
        if job is None:
            return False
        job.spec = spec
        self._order.sort(key=job_order)
        return True

    def reopen(self, job_id: JobId, tasks: dict[int, tuple[int, str | None]]) -> list[Effect]:
        """Run settled tasks of a live job again: index -> (the next attempt, how it settled:
        "done", "failed", or None for a task cancelled before it ran). They wait as retries, with
        their retries counted afresh; the shell has checked that each has settled."""
        job = self.jobs.get(job_id)
        if job is None:
            return []
        for index, (attempt, outcome) in tasks.items():
            if index in job.running or index in job.retry or index in job.fresh:
                continue  # not settled after all: left as it is
            if outcome == Outcome.DONE.value:
                job.done -= 1
            elif outcome is None:
                job.cancelled -= 1
            else:
                job.failed -= 1
            job.retry[index] = (attempt, 0)
        if job.reason is not None and not job.cancelled:
            job.reason = None  # what it said about cancelled tasks is no longer so
        return []

    def resume(self, job_id: JobId, *, rerun: Iterable[int], cancelled: Iterable[int], reason: str | None) -> None:
        """An ended job taken up again to run some tasks again: those get their retries afresh (a
        restored job counts their past failures), and its tasks that were cancelled before they ran,
        which left no rows to restore them from, stay cancelled."""
        job = self.jobs.get(job_id)
        if job is None:
            return
        for index in rerun:
            if index in job.retry:
                job.retry[index] = (job.retry[index][0], 0)
        for index in cancelled:
            if job.fresh.discard(index) or job.retry.pop(index, None) is not None:
                job.cancelled += 1
        if job.cancelled:
            job.reason = reason

    def end_reservation(self, name: str, reason: str) -> list[Effect]:
        """A reservation ended or was deleted: its work that has not started never will."""
        effects: list[Effect] = []
        for job in [j for j in self._order if j.spec.reservation == name and j.pending]:
            effects += self.cancel_waiting(job.id, reason)
        return effects

    # ---- workers -------------------------------------------------------

    def connect(
        self,
        worker_id: WorkerId,
        info: WorkerInfo,
        now: float,
        *,
        credit: int,
        held: Iterable[TaskRef] = (),
        results: Iterable[Report] = (),
        ran_jobs: Iterable[JobId] = (),
        vouched: bool = False,
    ) -> list[Effect]:
        """A worker (re)connected, holding ``held`` tasks and unacknowledged ``results``.

        Held tasks are taken back only with their seals, unless the shell ``vouched`` for them
        (a native site, whose record of what it submitted is the manager's own).
        """
        worker = self.workers.get(worker_id)
        if worker is None:
            worker = self.workers[worker_id] = WorkerRun(worker_id, info, joined=self._joined)
            self._joined += 1
        worker.info, worker.connected, worker.draining = info, True, False
        self._set_credit(worker, max(0, credit))
        worker.known_jobs.clear()
        self.expected_workers.discard(worker_id)
        effects = self.report(worker_id, results, now)

        holding = {(t.job, t.index): t.attempt for t in held}
        records: list[AttemptRecord] = []
        for key, attempt in list(worker.tasks.items()):
            if holding.get(key) != attempt:  # sent but never received, or lost
                self._requeue(key, worker, Outcome.LOST, records, now)
        kills: list[TaskRef] = []
        refused: list[TaskRef] = []
        for ref in held:
            job = self.jobs.get(ref.job)
            live = job is not None and (ref.index in job.running or ref.index in job.retry or ref.index in job.fresh)
            if live and not vouched and not self._handed(worker_id, ref.job, ref.index, ref.attempt, ref.seal):
                refused.append(ref)
                kills.append(ref)  # whatever runs there is nobody's task
            elif not self._adopt(worker, ref, now):
                kills.append(ref)
        if refused:
            worker.refused += len(refused)
            effects.append(Refused(worker_id, refused))
        if records:
            effects.append(Persist(records))
        if kills:
            effects.append(KillTasks(worker_id, kills))
        for job_id in set(ran_jobs):
            if job_id in self.jobs:
                self.jobs[job_id].workers.add(worker_id)  # owes a cleanup when the job ends
            else:
                effects.append(RunCleanup(worker_id, job_id))
        return effects

    def _handed(self, worker_id: WorkerId, job: JobId, index: int, attempt: int, seal: bytes) -> bool:
        """Whether this attempt was handed to the worker: it still holds it, or the seal says so."""
        worker = self.workers.get(worker_id)
        if worker is not None and worker.tasks.get((job, index)) == attempt:
            return True
        return self.seal.check(worker_id, job, index, attempt, seal)

    def _adopt(self, worker: WorkerRun, ref: TaskRef, now: float) -> bool:
        job = self.jobs.get(ref.job)
        if job is None:
            return False
        current = job.running.get(ref.index)
        if current is not None:
            return current.worker == worker.id and current.attempt == ref.attempt
        if ref.index in job.retry:
            _, failures = job.retry.pop(ref.index)
        elif job.fresh.discard(ref.index):
            failures = 0
        else:
            return False  # settled already
        job.running[ref.index] = Running(worker.id, ref.attempt, failures, now)
        self._usage(job, 1, now)
        job.started = True
        job.workers.add(worker.id)
        worker.tasks[(ref.job, ref.index)] = ref.attempt
        worker.known_jobs.add(ref.job)
        return True

    def disconnect(self, worker_id: WorkerId) -> None:
        """The connection dropped; the worker keeps its tasks until it is declared lost."""
        worker = self.workers.get(worker_id)
        if worker is not None:
            worker.connected = False
            self._set_credit(worker, 0)

    def lose(self, worker_id: WorkerId, now: float) -> list[Effect]:
        """The worker is gone for good: re-queue everything it held."""
        worker = self.workers.pop(worker_id, None)
        if worker is None:
            return []
        self._hungry.discard(worker_id)
        records: list[AttemptRecord] = []
        for key in list(worker.tasks):
            self._requeue(key, worker, Outcome.LOST, records, now)
        return [Persist(records)] if records else []

    def give_back(self, worker_id: WorkerId, tasks: Iterable[TaskRef], now: float) -> list[Effect]:
        """The place gives these tasks back unrun (a peer refused a range, or never started it): they
        wait again, each as its next attempt; what the place holds besides goes on."""
        worker = self.workers.get(worker_id)
        if worker is None:
            return []
        records: list[AttemptRecord] = []
        for ref in tasks:
            key = (ref.job, ref.index)
            if worker.tasks.get(key) == ref.attempt:
                self._requeue(key, worker, Outcome.LOST, records, now)
        return [Persist(records)] if records else []

    def add_credit(self, worker_id: WorkerId, slots: int) -> None:
        worker = self.workers.get(worker_id)
        if worker is not None and worker.connected and not worker.draining:
            self._set_credit(worker, max(0, worker.credit + slots))

    def _set_credit(self, worker: WorkerRun, credit: int) -> None:
        worker.credit = credit
        if credit > 0 and worker.connected:
            self._hungry.add(worker.id)
        else:
            self._hungry.discard(worker.id)

    def drain(self, worker_id: WorkerId) -> None:
        """The worker is leaving: send it nothing more."""
        worker = self.workers.get(worker_id)
        if worker is not None:
            worker.draining = True
            self._set_credit(worker, 0)

    def _requeue(
        self, key: TaskKey, worker: WorkerRun, outcome: Outcome, records: list[AttemptRecord], now: float
    ) -> None:
        attempt = worker.tasks.pop(key)
        job = self.jobs.get(key[0])
        if job is None:
            return
        run = job.running.get(key[1])
        if run is None or run.worker != worker.id or run.attempt != attempt:
            return
        del job.running[key[1]]
        self._usage(job, -1, now)
        job.retry[key[1]] = (attempt + 1, run.failures)
        lost = Report(job.id, key[1], attempt, outcome, None, run.since, now)
        records.append(AttemptRecord(lost, False, worker.id))

    # ---- reports -------------------------------------------------------

    def report(self, worker_id: WorkerId, reports: Iterable[Report], now: float) -> list[Effect]:
        """A worker reports finished attempts. Returns what to persist and announce."""
        records: list[AttemptRecord] = []
        effects: list[Effect] = []
        touched: dict[JobId, JobRun] = {}
        refused: list[TaskRef] = []
        worker = self.workers.get(worker_id)
        for r in reports:
            job = self.jobs.get(r.job)
            if job is None:
                continue
            if not self._handed(worker_id, r.job, r.index, r.attempt, r.seal):
                if r.index in job.running or r.index in job.retry or r.index in job.fresh:
                    refused.append(TaskRef(r.job, r.index, r.attempt))
                continue  # (a settled task's repeat changes nothing, whoever sends it)
            if worker is not None and worker.tasks.get((r.job, r.index)) == r.attempt:
                del worker.tasks[(r.job, r.index)]
            current = job.running.get(r.index)
            if current is not None and current.worker == worker_id and current.attempt == r.attempt:
                del job.running[r.index]
                self._usage(job, -1, now)
                failures = current.failures
            elif r.outcome is Outcome.DONE and current is not None:
                # An earlier attempt succeeded after the task was handed out again.
                del job.running[r.index]
                self._usage(job, -1, now)
                other = self.workers.get(current.worker)
                if other is not None:
                    other.tasks.pop((r.job, r.index), None)
                effects.append(KillTasks(current.worker, [TaskRef(r.job, r.index, current.attempt)]))
                failures = current.failures
            elif current is None and r.index in job.retry:
                # The engine already decided this attempt's fate (a counted failure, or lost):
                # only a late success adds anything. A repeated failure must not count twice.
                if r.outcome is not Outcome.DONE:
                    continue
                _, failures = job.retry.pop(r.index)
            elif current is None and r.outcome in (Outcome.DONE, Outcome.FAILED, Outcome.TIMEOUT):
                if not job.fresh.discard(r.index):
                    continue  # settled already: a duplicate
                failures = 0
            else:
                continue
            self._settle(job, worker_id, r, failures, records)
            touched[job.id] = job
        if records:
            effects.insert(0, Persist(records))
        if refused:
            if worker is not None:
                worker.refused += len(refused)
            effects.append(Refused(worker_id, refused))
        while self._settled_now:  # their corr jobs' same tasks go on, or are cancelled
            parent, index, ok = self._settled_now.pop()
            for child in self._task_settled(parent, index, ok):
                touched[child.id] = child
        for job in touched.values():
            if job.id not in self.jobs:
                continue  # ended meanwhile, as a dependency of a job that ended
            limit = job.spec.max_failures
            if limit is not None and job.failed >= limit and (job.pending or job.running):
                # fail fast: a broken script should not burn the whole array
                effects.extend(self.cancel(job.id, now, f"max_failures: {job.failed} tasks failed (the job's "
                                                        f"limit is {limit}); its other tasks were cancelled"))
            elif job.id in self.jobs:
                effects.extend(self._maybe_end(job))
        return effects

    def _settle(
        self, job: JobRun, worker_id: WorkerId, r: Report, failures: int, records: list[AttemptRecord]
    ) -> None:
        final = True
        if r.outcome is Outcome.DONE:
            job.done += 1
            if job.spec.inputs:
                self._ran(job, r)
            if job.id in self.children:
                self._settled_now.append((job, r.index, True))
        elif r.outcome.counts_as_failure:
            failures += 1
            if failures <= job.spec.retries:
                job.retry[r.index] = (r.attempt + 1, failures)
                final = False
            else:
                job.failed += 1
                job.failed_idx.add(r.index)
                if job.id in self.children:
                    self._settled_now.append((job, r.index, False))
        else:  # the worker gave the task back (shutting down) or lost it: run it again
            job.retry[r.index] = (r.attempt + 1, failures)
            if job.spec.inputs:
                self._gave_back(job, r)
            final = False
        if r.cpu is not None:
            job.cpu = (job.cpu or 0.0) + r.cpu
        records.append(AttemptRecord(r, final, worker_id))

    def _maybe_end(self, job: JobRun) -> list[Effect]:
        if job.settled < job.spec.size:
            return []
        del self.jobs[job.id]
        self._order.remove(job)
        self.forget_data(job.id)
        effects: list[Effect] = [JobEnded(job.id, job.owner, job.final_state(), job.counts(), job.spec, job.submitted,
                                          job.reason, job.cpu)]
        if job.spec.after:
            self._forget(job)
        if job.id in self.children:
            effects += self._parent_ended(job, job.final_state())
        if job.spec.cleanup:
            for wid in sorted(job.workers):
                worker = self.workers.get(wid)
                if worker is not None and worker.connected:
                    effects.append(RunCleanup(wid, job.id))
        return effects
