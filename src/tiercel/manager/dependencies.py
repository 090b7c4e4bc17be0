"""What the shell tells the engine of the jobs a job depends on (``--after``), and the checks at submit.

The engine weighs dependencies (core/engine/deps.py) on what it holds live; of a parent that has
ended it knows nothing, so the shell reads it from the store: how it ended and, for ``corr``,
which of its tasks are done and which failed for good.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from tiercel.core.engine import Engine
from tiercel.core.model import FAILED_OUTCOMES, JobId, JobSpec, JobState, Parent, UserName
from tiercel.core.problems import Problem
from tiercel.manager.events import JobSummary
from tiercel.store import Store

MAX_AFTER = 1000  # dependencies of one job


class Shell(Protocol):
    engine: Engine
    store: Store

    def recently_ended(self, job_id: JobId) -> JobSummary | None: ...


async def resolve(shell: Shell, owner: UserName, spec: JobSpec) -> dict[JobId, Parent] | Problem:
    """Check a new job's dependencies and say what the engine needs of each parent it does not hold."""
    if len(spec.after) > MAX_AFTER:
        return Problem("after", len(spec.after), f"holds too many jobs: at most {MAX_AFTER:,}")
    out: dict[JobId, Parent] = {}
    for dep in spec.after:
        run = shell.engine.jobs.get(dep.job)
        if run is not None:
            parent_owner, indexes, state = run.owner, run.spec.indexes, None
        else:
            row = await asyncio.to_thread(shell.store.job, dep.job)
            if row is None:
                return Problem("after", dep.text(), f"names job {dep.job}, which does not exist "
                                                    "(a job can wait only for jobs submitted before it)")
            parent_owner, indexes, state = row.owner, row.spec.indexes, row.state
            if state is None:  # ended just now: its end is on its way to the store
                ended = shell.recently_ended(dep.job)
                state = None if ended is None or not ended.state.terminal else ended.state
        if parent_owner != owner:
            return Problem("after", dep.text(), f"names job {dep.job}, which is not a job of yours")
        if dep.kind == "corr" and indexes != spec.indexes:
            return Problem("after", dep.text(), f"links task i to task i of job {dep.job}, whose indexes "
                                                f"({indexes.text()}) are not this job's ({spec.indexes.text()})")
        out[dep.job] = await parent(shell, dep.job, state, corr=dep.kind == "corr")
    return out


async def parent(shell: Shell, job_id: JobId, state: JobState | None, *, corr: bool) -> Parent:
    if not corr:
        return Parent(state)
    # A parent that has just ended may still have results on their way to the store: read its
    # tasks once everything written before now is durable (an empty write resolves then).
    await asyncio.wrap_future(shell.store.write([]))
    outcomes = await asyncio.to_thread(shell.store.task_outcomes, job_id)
    done = frozenset(i for i, (o, _) in outcomes.items() if o == "done")
    failed = frozenset(i for i, (o, _) in outcomes.items() if o in FAILED_OUTCOMES)
    return Parent(state, done, failed)


def restored_parents(store: Store, spec: JobSpec, live: Callable[[JobId], bool]) -> dict[JobId, Parent]:
    """At a restart (in a thread): what the engine needs of a restored job's parents."""
    out: dict[JobId, Parent] = {}
    for dep in spec.after:
        state = None
        if not live(dep.job):
            row = store.job(dep.job)
            state = JobState.CANCELLED if row is None else row.state
        if dep.kind == "corr":
            outcomes = store.task_outcomes(dep.job)
            out[dep.job] = Parent(state, frozenset(i for i, (o, _) in outcomes.items() if o == "done"),
                                  frozenset(i for i, (o, _) in outcomes.items() if o in FAILED_OUTCOMES))
        else:
            out[dep.job] = Parent(state)
    return out


async def current(shell: Shell, owner: UserName, spec: JobSpec, found: dict[JobId, Parent]) -> dict[JobId, Parent]:
    """What the engine needs of the parents right now, for a job about to join it: a parent that was
    unfinished when checked may have ended during the awaits since, and the engine, which no longer
    holds it, must learn how (and, for corr, which of its tasks were done: read again once durable).
    The caller hands the answer to the engine with no await in between."""
    for _ in range(10):  # a parent ends once: this settles at the second look
        if all(p.state is not None or j in shell.engine.jobs for j, p in found.items()):
            return found
        again = await resolve(shell, owner, spec)
        if isinstance(again, Problem):  # it was checked before: only the way it ended can have changed
            return found
        found = again
    return found
