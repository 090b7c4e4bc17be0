"""Workflows: named jobs submitted together, waiting for one another, accepted whole or not at all.

A workflow is its jobs and a record of them (``SaveWorkflow``: names and job ids), all written in
one transaction; dependencies inside it are ordinary ``--after`` edges between its jobs, so the
engine needs nothing more. Retrying a workflow runs again what failed or was cancelled, in the
workflow's order, so the jobs that waited for a retried one wait for it again: the rescue is what
the store says, and nothing that finished runs again, across restarts too.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from tiercel.core.engine import Effect, Engine
from tiercel.core.model import After, JobId, JobSpec, JobState, Parent, UserName
from tiercel.core.problems import Problem
from tiercel.manager import dependencies
from tiercel.manager.events import Events, JobSummary
from tiercel.manager.queries import Queries
from tiercel.manager.shell import Unavailable
from tiercel.store import AddJob, SaveWorkflow, Store, WorkflowRow, WriteOp

MAX_JOBS = 10_000  # jobs in one workflow


@dataclass(frozen=True)
class Planned:
    """One job of a workflow as submitted: its spec (dependencies outside the workflow only) and the
    jobs of the workflow it waits for, by name."""

    name: str
    spec: JobSpec
    inside: tuple[tuple[str, str], ...] = ()  # (a job's name in the workflow, the kind)
    category: str | None = None  # its share of the workflow's throttle (DAGMan's CATEGORY)


class Shell(Protocol):
    engine: Engine
    store: Store
    clock: Callable[[], float]
    events: Events
    queries: Queries

    def refuse_new_work(self) -> None: ...
    def take_job_ids(self, n: int) -> list[JobId]: ...
    def give_back_ids(self, ids: list[JobId], workflow_id: int) -> None: ...
    def take_workflow_id(self) -> int: ...
    def apply(self, effects: Iterable[Effect]) -> asyncio.Future[None]: ...
    def pump(self) -> None: ...
    def recently_ended(self, job_id: JobId) -> JobSummary | None: ...


def in_order(jobs: list[Planned]) -> list[Planned] | Problem:
    """The jobs with every one after those it waits for (their file order otherwise), or the cycle."""
    if not jobs:
        return Problem("jobs", "[]", "must hold at least one job")
    if len(jobs) > MAX_JOBS:
        return Problem("jobs", len(jobs), f"are too many: a workflow holds at most {MAX_JOBS:,}")
    by_name: dict[str, Planned] = {}
    for job in jobs:
        if not job.name:
            return Problem("jobs", job.spec.command[0][:40], "each needs a name, which others' after may use")
        if job.name in by_name:
            return Problem(f"jobs.{job.name}", job.name, "is the name of two jobs")
        by_name[job.name] = job
    for job in jobs:
        for name, _ in job.inside:
            if name not in by_name:
                return Problem(f"jobs.{job.name}.after", name, f"names no job of the workflow (its jobs: "
                                                             f"{', '.join(by_name)})")
    done: list[Planned] = []
    state: dict[str, int] = {}  # 1: being visited, 2: placed

    def visit(job: Planned, path: list[str]) -> Problem | None:
        if state.get(job.name) == 2:
            return None
        if state.get(job.name) == 1:
            cycle = [*path[path.index(job.name):], job.name]
            return Problem(f"jobs.{job.name}.after", " -> ".join(cycle), "is a cycle: a job cannot wait for itself")
        state[job.name] = 1
        for name, _ in job.inside:
            found = visit(by_name[name], [*path, job.name])
            if found is not None:
                return found
        state[job.name] = 2
        done.append(job)
        return None

    for job in jobs:
        found = visit(job, [])
        if found is not None:
            return found
    return done


@dataclass(frozen=True)
class Throttle:
    """At most ``max_running`` tasks of the workflow's jobs at once, and per category (DAGMan's MAXJOBS)."""

    max_running: int | None = None
    categories: tuple[tuple[str, int], ...] = ()


async def submit(shell: Shell, owner: UserName, name: str, jobs: list[Planned], throttle: Throttle = Throttle()
                 ) -> tuple[int, list[JobId]] | Problem:
    """Check and store a whole workflow, then start it; nothing is kept when anything is refused."""
    shell.refuse_new_work()
    ordered = in_order(jobs)
    if isinstance(ordered, Problem):
        return ordered
    caps = dict(throttle.categories)
    for job in ordered:
        if job.category is not None and job.category not in caps:
            return Problem(f"jobs.{job.name}.category", job.category, f"is not a category of the workflow "
                                                                      f"(its categories: {', '.join(caps) or 'none'})")
    workflow_id = shell.take_workflow_id()
    ids = shell.take_job_ids(len(ordered))
    by_name = {job.name: job_id for job, job_id in zip(ordered, ids, strict=True)}
    planned_by_name = {job.name: job for job in ordered}
    specs: list[JobSpec] = []
    parents: list[dict[JobId, Parent]] = []
    for job in ordered:
        inside = tuple(After(by_name[n], kind) for n, kind in job.inside)
        limits: tuple[tuple[str, int], ...] = ((f"workflow {workflow_id}", throttle.max_running),) \
            if throttle.max_running else ()
        if job.category is not None:
            limits += ((f"workflow {workflow_id} category {job.category}", caps[job.category]),)
        spec = dataclasses.replace(job.spec, after=job.spec.after + inside, limits=job.spec.limits + limits)
        for n, kind in job.inside:
            other = planned_by_name[n]
            if kind == "corr" and other.spec.indexes != spec.indexes:
                shell.give_back_ids(ids, workflow_id)
                return Problem(f"jobs.{job.name}.after", f"{n}:corr", f"links task i to task i of {n}, whose "
                                                                     f"indexes ({other.spec.indexes.text()}) are not "
                                                                     f"this job's ({spec.indexes.text()})")
        found = await dependencies.resolve(shell, owner, job.spec) if job.spec.after else {}
        if isinstance(found, Problem):
            shell.give_back_ids(ids, workflow_id)
            return dataclasses.replace(found, field=f"jobs.{job.name}.after")
        specs.append(spec)
        parents.append(found)
    now = shell.clock()
    ops: list[WriteOp] = [AddJob(job_id, owner, spec, now) for job_id, spec in zip(ids, specs, strict=True)]
    ops.append(SaveWorkflow(workflow_id, owner, name, now, tuple((j.name, i) for j, i in zip(ordered, ids,
                                                                                               strict=True))))
    try:
        await asyncio.wrap_future(shell.store.write(ops))  # one transaction: the workflow whole, or nothing
    except Exception as exc:
        shell.give_back_ids(ids, workflow_id)
        raise Unavailable(f"the manager could not store the workflow ({exc}); nothing was kept, try again") \
            from exc
    outside = [await dependencies.current(shell, owner, job.spec, found) if found else found
               for job, found in zip(ordered, parents, strict=True)]
    effects: list[Effect] = []
    for job_id, spec, found in zip(ids, specs, outside, strict=True):  # no await from here on
        effects += shell.engine.add_job(job_id, spec, owner, now, parents=found)
    shell.apply(effects)
    for job_id in ids:  # as a job submitted alone is announced: open pages and event streams hear of it
        summary = shell.queries.live(job_id) or shell.recently_ended(job_id)
        if summary is not None:
            shell.events.publish({"event": "job_submitted", "job": summary.to_json()})
    shell.pump()
    return workflow_id, ids


def state_of(jobs: list[JobSummary]) -> str:
    """A workflow's state from its jobs': running while any is, queued while all wait, else how it ended."""
    states = [j.state for j in jobs]
    if any(s is JobState.RUNNING for s in states) or (
            any(s.terminal for s in states) and not all(s.terminal for s in states)):
        return "running"
    if not all(s.terminal for s in states):
        return "queued"
    if any(s is JobState.CANCELLED for s in states):
        return "cancelled"
    return "failed" if any(s is JobState.FAILED for s in states) else "done"


def row_json(row: WorkflowRow, jobs: list[JobSummary]) -> dict[str, object]:
    by_id = {j.id: j for j in jobs}
    return {"id": row.id, "name": row.name, "owner": row.owner, "submitted": row.submitted,
            "state": state_of(jobs),
            "jobs": [{"name": name, **by_id[job_id].to_json()} for name, job_id in row.jobs if job_id in by_id]}
