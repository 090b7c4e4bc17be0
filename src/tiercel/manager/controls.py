"""What a job's owner changes after submitting it: hold and release, its cap and priority, and
running settled tasks again (`tiercel hold/release/update/retry`).

Part of the shell: every change is checked whole first (a Problem names the field and what is
allowed, and nothing changes), then made durable, and only then applied to the engine, so a
restart finds what the answer said.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from tiercel.core.engine import Effect, Engine
from tiercel.core.model import JobId, JobSpec, Outcome
from tiercel.core.problems import MISSING, Problem
from tiercel.core.ranges import parse_ranges
from tiercel.jobspec.request import MAX_INDEX, MAX_TASKS
from tiercel.jobspec.values import parse_duration
from tiercel.manager import dependencies
from tiercel.manager.events import JobSummary
from tiercel.store import ReopenTasks, Store, UpdateJob

FAILED = frozenset({Outcome.FAILED.value, Outcome.TIMEOUT.value})


class Shell(Protocol):
    """The shell, as job controls need it: its state and its one write path."""

    engine: Engine
    store: Store

    def apply(self, effects: Iterable[Effect]) -> asyncio.Future[None]: ...
    def pump(self) -> None: ...
    def refuse_new_work(self) -> None: ...
    def forget_ended(self, job_id: JobId) -> None: ...
    def recently_ended(self, job_id: JobId) -> JobSummary | None: ...


@dataclass(frozen=True)
class Changes:
    """`tiercel update`'s fields: None leaves a field as it is."""

    priority: int | None = None
    walltime: str | float | None = None
    max_running: int | None = None
    clear_max_running: bool = False


class Controls:
    def __init__(self, shell: Shell, clock: Callable[[], float]) -> None:
        self._shell = shell
        self._clock = clock

    def _live(self, summary: JobSummary, verb: str) -> JobSpec | Problem:
        run = self._shell.engine.jobs.get(summary.id)
        if run is None:
            return Problem("job", summary.id, f"has ended ({summary.state.value}): there is nothing to {verb}; "
                                              f"'tiercel retry {summary.id}' runs its failed or cancelled tasks again")
        return run.spec

    async def _change(self, job_id: JobId, spec: JobSpec) -> None:
        self._shell.refuse_new_work()
        await asyncio.wrap_future(self._shell.store.write([UpdateJob(job_id, spec)]))
        self._shell.engine.set_spec(job_id, spec)
        self._shell.pump()

    async def hold(self, summary: JobSummary, held: bool) -> Problem | None:
        spec = self._live(summary, "hold" if held else "release")
        if isinstance(spec, Problem):
            return spec
        if spec.held != held:
            await self._change(summary.id, dataclasses.replace(spec, held=held))
        return None

    async def update(self, summary: JobSummary, changes: Changes) -> Problem | None:
        spec = self._live(summary, "update")
        if isinstance(spec, Problem):
            return spec
        new = spec
        if changes.priority is not None:
            if not -1000 <= changes.priority <= 1000:
                return Problem("priority", changes.priority, "must be between -1000 and 1000")
            new = dataclasses.replace(new, priority=changes.priority)
        if changes.max_running is not None:
            if not 1 <= changes.max_running <= MAX_TASKS:
                return Problem("max_running", changes.max_running, f"must be between 1 and {MAX_TASKS:,}")
            new = dataclasses.replace(new, max_running=changes.max_running)
        elif changes.clear_max_running:
            new = dataclasses.replace(new, max_running=None)
        if changes.walltime is not None:
            run = self._shell.engine.jobs[summary.id]
            if run.started:
                return Problem("walltime", changes.walltime, "cannot change once tasks of the job have started "
                                                             "(their limit is set when they start); priority and "
                                                             "max_running can")
            walltime = parse_duration(changes.walltime)
            if isinstance(walltime, Problem):
                return walltime
            new = dataclasses.replace(new, walltime=walltime)
        if new == spec:
            return Problem("update", MISSING, "needs at least one of priority, walltime, max_running")
        await self._change(summary.id, new)
        return None

    async def retry(self, summary: JobSummary, *, failed: bool, cancelled: bool, tasks: str | None
                    ) -> list[int] | Problem:
        """Run settled tasks again as new attempts of the same job; the indexes it took."""
        shell = self._shell
        job_id = summary.id
        if job_id in shell.engine.jobs:
            pass
        elif not summary.state.terminal:
            return Problem("job", job_id, "is just ending; try again in a moment")
        outcomes = await asyncio.to_thread(shell.store.task_outcomes, job_id)
        run = shell.engine.jobs.get(job_id)
        unsettled: set[int] = set() if run is None else {*run.running, *run.retry}

        def settled(index: int) -> str | bool | None:
            """How a task settled: 'done', 'failed', None (cancelled), or False while it waits or runs."""
            if index in unsettled or (run is not None and index in run.fresh):
                return False
            outcome = outcomes.get(index, (None, 0))[0]
            return "failed" if outcome in FAILED else outcome

        chosen: list[int] = []
        if tasks is not None:
            wanted = parse_ranges(tasks, max_size=MAX_TASKS, max_index=MAX_INDEX)
            if isinstance(wanted, Problem):
                return dataclasses.replace(wanted, field="tasks")
            for index in wanted:
                if index not in summary.spec.indexes:
                    return Problem("tasks", index, f"is not a task of job {job_id} (its indexes: "
                                                   f"{summary.spec.indexes.text()})")
                if settled(index) is False:
                    return Problem("tasks", index, f"is still waiting or running in job {job_id}: only tasks "
                                                   "that ended can run again")
                chosen.append(index)
        else:
            if not failed and not cancelled:
                failed = True  # the default: what failed
            for index in summary.spec.indexes:
                how = settled(index)
                if (failed and how == "failed") or (cancelled and how is None):
                    chosen.append(index)
            if not chosen:
                what = " or ".join(w for w, on in (("failed", failed), ("cancelled", cancelled)) if on)
                return Problem("job", job_id, f"has no {what} tasks to run again")
        shell.refuse_new_work()
        await asyncio.wrap_future(shell.store.write([ReopenTasks(job_id, tuple(chosen))]))
        plan = {i: (outcomes.get(i, (None, 0))[1] + 1, _outcome(settled(i))) for i in chosen}
        if job_id in shell.engine.jobs:
            effects = shell.engine.reopen(job_id, plan)
        else:
            restored = await asyncio.to_thread(shell.store.restored, job_id)
            spec = summary.spec
            if spec.entries is None:  # a job read back from its row has no entries: they are a blob of their own
                spec = dataclasses.replace(spec, entries=await asyncio.to_thread(shell.store.entries, job_id))
            # tasks cancelled before they ran left no rows: those not chosen stay cancelled
            rerun = set(chosen)
            still = [i for i in summary.spec.indexes if i not in rerun and settled(i) is None]
            shell.forget_ended(job_id)
            found = await dependencies.resolve(shell, summary.owner, spec) if spec.after else {}
            parents = {} if isinstance(found, Problem) else found  # its parents are the owner's: they resolve
            parents = await dependencies.current(shell, summary.owner, spec, parents)
            effects = shell.engine.add_job(job_id, spec, summary.owner, summary.submitted, restored, parents)
            shell.engine.resume(job_id, rerun=chosen, cancelled=still, reason=summary.reason)
        await shell.apply(effects)
        shell.pump()
        return chosen


def _outcome(how: str | bool | None) -> str | None:
    return None if how is None or how is False else str(how)
