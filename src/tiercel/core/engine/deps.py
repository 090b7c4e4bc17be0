"""Dependencies between jobs (``--after``): a job waits for earlier jobs, or task i for task i.

Edges are kept per job pair, never per task: a job that waits for another as a whole holds the
other's id in ``waits`` until it ends; a ``corr`` job keeps its tasks that wait in ``gated`` and
releases task i as the parent's task i is done. When a dependency can never be met (an ``ok``
parent failed, a ``notok`` one succeeded, a parent's task i failed for good) the tasks that wait
for it are cancelled with the reason, and so are their own dependents when they end — unless the
job says ``on_dependency_failure = "wait"`` (a parent that will be retried), and then it waits on.
"""

from __future__ import annotations

from collections.abc import Iterable

from tiercel.core.engine.effects import Effect
from tiercel.core.engine.state import JobRun
from tiercel.core.model import After, JobId, JobState, Parent


def satisfied(kind: str, state: JobState) -> bool:
    """Whether a job that ended in ``state`` meets a dependency of this kind."""
    if kind == "ok":
        return state is JobState.DONE
    if kind == "notok":
        return state is not JobState.DONE
    return True  # any (and corr, whose tasks are weighed one by one)


def unmet_reason(dep: After, state: JobState) -> str:
    if dep.kind == "notok":
        return f"dependency: job {dep.job} succeeded (it waited for it to fail: after notok)"
    return f"dependency: job {dep.job} {'was cancelled' if state is JobState.CANCELLED else state.value}"


class Dependencies:
    """The engine's bookkeeping of dependencies (a base of Engine, which owns the state)."""

    jobs: dict[JobId, JobRun]
    children: dict[JobId, set[JobId]]  # a job -> the unfinished jobs that depend on it

    def cancel_waiting(self, job_id: JobId, reason: str) -> list[Effect]:
        raise NotImplementedError  # the Engine's

    def _maybe_end(self, job: JobRun) -> list[Effect]:
        raise NotImplementedError  # the Engine's

    def _link(self, job: JobRun, parents: dict[JobId, Parent]) -> list[Effect]:
        """A job joins: register it with the jobs it depends on, and weigh those already ended."""
        unmet: list[str] = []
        for dep in job.spec.after:
            self.children.setdefault(dep.job, set()).add(job.id)
            info = parents.get(dep.job, Parent())
            ended = None if dep.job in self.jobs else info.state
            if dep.kind == "corr":
                self._gate(job, dep, info, ended)
            elif ended is None:
                job.waits[dep.job] = dep.kind
            elif not satisfied(dep.kind, ended):
                if job.spec.on_dependency_failure == "wait":
                    job.waits[dep.job] = dep.kind
                else:
                    unmet.append(unmet_reason(dep, ended))
        if unmet and (job.pending or job.gated):
            return self._cancel_waiting_all(job, unmet[0])
        return []

    def _gate(self, job: JobRun, dep: After, info: Parent, ended: JobState | None) -> None:
        """corr: each waiting task goes on only once the parent's same task is done; one whose
        parent task failed (or never ran, the parent having ended) is cancelled."""
        keep_waiting = job.spec.on_dependency_failure == "wait"
        live = self.jobs.get(dep.job)
        # a live parent's own record is newer than the store's (a result not yet durable)
        trust_live = live is not None and live.cancelled == 0

        def done(index: int) -> bool:
            if index in info.done:
                return True
            if not trust_live or live is None:
                return False
            return not (index in live.fresh or index in live.retry or index in live.running
                        or index in live.gated or index in live.failed_idx)

        for index in job.spec.indexes:
            if done(index):
                continue  # released already
            in_retry = index in job.retry
            if not in_retry and index not in job.fresh:
                continue  # settled, or running
            if in_retry:
                held = job.retry.pop(index)
            else:
                job.fresh.discard(index)
                held = (1, 0)
            failed = index in info.failed or (live is not None and index in live.failed_idx)
            if (failed or ended is not None) and not keep_waiting:
                job.cancelled += 1
                job.reason = job.reason or self._task_reason(dep.job, index, failed)
            else:
                job.gated[index] = held

    @staticmethod
    def _task_reason(parent: JobId, index: int, failed: bool) -> str:
        return f"dependency: job {parent} task {index} {'failed' if failed else 'did not run'}"

    def _cancel_waiting_all(self, job: JobRun, reason: str) -> list[Effect]:
        """Cancel what waits of a job, gated tasks included, saying why."""
        job.cancelled += len(job.gated)
        job.gated.clear()
        if job.pending:
            return self.cancel_waiting(job.id, reason)
        job.reason = job.reason or reason
        return self._maybe_end(job)

    def _task_settled(self, parent: JobRun, index: int, ok: bool) -> list[JobRun]:
        """A parent's task settled for good: release, or cancel, the same task of its corr jobs."""
        touched: list[JobRun] = []
        for cid in self.children.get(parent.id, ()):
            child = self.jobs.get(cid)
            if child is None or index not in child.gated:
                continue
            if ok:
                child.retry[index] = child.gated.pop(index)
            elif child.spec.on_dependency_failure != "wait":
                del child.gated[index]
                child.cancelled += 1
                child.reason = child.reason or self._task_reason(parent.id, index, True)
                touched.append(child)
        return touched

    def _parent_ended(self, parent: JobRun, state: JobState) -> list[Effect]:
        """A job ended: the jobs waiting for it go on, or are cancelled (and theirs in turn)."""
        effects: list[Effect] = []
        for cid in sorted(self.children.pop(parent.id, ())):
            child = self.jobs.get(cid)
            if child is None:
                continue
            waits_on = False
            for dep in child.spec.after:
                if dep.job != parent.id:
                    continue
                wait = child.spec.on_dependency_failure == "wait"
                if dep.kind == "corr":
                    if child.gated and wait:
                        waits_on = True  # a retry of the parent may still release them
                    elif child.gated:  # the parent's tasks that never got done never will
                        child.reason = child.reason or self._task_reason(parent.id, min(child.gated), False)
                        child.cancelled += len(child.gated)
                        child.gated.clear()
                        effects += self._maybe_end(child)
                    continue
                child.waits.pop(parent.id, None)
                if satisfied(dep.kind, state):
                    continue
                if wait:
                    child.waits[parent.id] = dep.kind
                    waits_on = True
                elif child.id in self.jobs:
                    effects += self._cancel_waiting_all(child, unmet_reason(dep, state))
            if waits_on:
                self.children.setdefault(parent.id, set()).add(cid)
        return effects

    def _forget(self, job: JobRun) -> None:
        """An ended job no longer waits for anything."""
        for dep in job.spec.after:
            waiting = self.children.get(dep.job)
            if waiting is not None:
                waiting.discard(job.id)
                if not waiting:
                    del self.children[dep.job]


def parents_needed(after: Iterable[After]) -> set[JobId]:
    return {d.job for d in after}
