"""Workflows: submit named jobs that wait for one another, follow, cancel and retry them as one."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from tiercel.core.model import AFTER_KINDS, JobId, JobState
from tiercel.core.problems import Problem
from tiercel.gateways.rest.auth import Person
from tiercel.gateways.rest.errors import ApiError, answers
from tiercel.jobspec.request import JobRequest, Line, build_spec
from tiercel.manager import workflows
from tiercel.manager.auth import Identity
from tiercel.manager.events import JobSummary
from tiercel.manager.shell import Manager
from tiercel.store import WorkflowRow

WorkflowPath = Annotated[int, Path(ge=1, le=2**63 - 1, description="a workflow id")]
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")


class WorkflowRequest(BaseModel):
    """A workflow: named jobs (the fields of a job request, ``name`` required), whose ``after`` may name
    other jobs of the workflow (``"prepare"``, ``"sweep:corr"``) as well as earlier jobs by id."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: Line = Field("", max_length=200)
    jobs: list[JobRequest] = Field(min_length=1, max_length=workflows.MAX_JOBS)
    max_running: int | None = Field(None, ge=1, le=100_000_000,
                                    description="at most this many tasks of the workflow's jobs at once")
    categories: dict[Line, Annotated[int, Field(ge=1, le=100_000_000)]] = Field(
        default_factory=dict, description="category -> at most this many tasks of its jobs at once")
    category_of: dict[Line, Line] = Field(default_factory=dict, description="job name -> its category")


def router(manager: Manager) -> APIRouter:
    api = APIRouter()

    async def summaries(row: WorkflowRow) -> list[JobSummary]:
        return await manager.queries.summaries([job_id for _, job_id in row.jobs])

    async def own(workflow_id: int, who: Identity) -> tuple[WorkflowRow, list[JobSummary]]:
        found = await manager.queries.workflow(workflow_id)
        if found is None or (not who.sees(found[0].owner)):
            raise ApiError(404, f"workflow: {workflow_id} is not a workflow of yours (see 'tiercel workflow list')",
                           "workflow")
        return found

    @api.post("/v1/workflows", status_code=201, responses=answers(403, 422, 507))
    async def submit(req: WorkflowRequest, who: Person) -> dict[str, Any]:
        """Submit a workflow whole: every job checked first, then all stored in one transaction."""
        names = {j.name for j in req.jobs}
        planned: list[workflows.Planned] = []
        for n, job in enumerate(req.jobs):
            if not _NAME.fullmatch(job.name):
                raise ApiError(422, f"jobs.{n}.name: {job.name!r} must name the job: letters, digits, _ . - "
                                    "(at most 64), not starting with a digit", f"jobs.{n}.name")
            inside, outside = [], []
            for item in job.after:
                ref, _, kind = str(item).partition(":")
                if ref in names:
                    if (kind or "ok") not in AFTER_KINDS:
                        raise ApiError(422, f"jobs.{job.name}.after: {item!r} has the kind {kind!r}; a dependency "
                                            f"is one of {', '.join(AFTER_KINDS)}", f"jobs.{job.name}.after")
                    inside.append((ref, kind or "ok"))
                else:
                    outside.append(item)
            spec = build_spec(job.model_copy(update={"after": outside}), max_tasks=manager.settings.max_tasks)
            if isinstance(spec, Problem):
                raise ApiError(422, f"jobs.{job.name}.{spec.message()}", f"jobs.{job.name}.{spec.field}")
            admitted = manager.admit(who.user, spec)
            if isinstance(admitted, Problem):
                raise ApiError(422, f"jobs.{job.name}.{admitted.message()}", f"jobs.{job.name}.{admitted.field}")
            planned.append(workflows.Planned(job.name, admitted, tuple(inside), req.category_of.get(job.name)))
        unknown = sorted(set(req.category_of) - names)
        if unknown:
            raise ApiError(422, f"category_of: {unknown[0]!r} is not a job of the workflow", "category_of")
        throttle = workflows.Throttle(req.max_running, tuple(req.categories.items()))
        made = await workflows.submit(manager, who.user, req.name, planned, throttle)
        if isinstance(made, Problem):
            raise ApiError.of(made, 422)
        return workflows.row_json(*await own(made[0], who))

    @api.get("/v1/workflows", responses=answers(403))
    async def listed(who: Person, all: bool = False, limit: Annotated[int, Query(ge=1, le=1000)] = 50
                     ) -> list[dict[str, Any]]:
        """Your workflows, the newest first (an admin's with all=true: everyone's)."""
        owner = None if (who.admin and all) else who.user
        return [workflows.row_json(row, jobs) for row, jobs in await manager.queries.workflows(owner, limit)]

    @api.get("/v1/workflows/{workflow_id}", responses=answers(403, 404))
    async def one(workflow_id: WorkflowPath, who: Person) -> dict[str, Any]:
        """A workflow: its state, and each job's state and progress, in the order they were submitted."""
        return workflows.row_json(*await own(workflow_id, who))

    @api.post("/v1/workflows/{workflow_id}/cancel", responses=answers(403, 404))
    async def cancel(workflow_id: WorkflowPath, who: Person) -> dict[str, Any]:
        """Cancel every job of the workflow that has not ended."""
        row, jobs = await own(workflow_id, who)
        for s in jobs:
            if not s.state.terminal:
                await manager.cancel(s.id)
        return workflows.row_json(row, await summaries(row))

    @api.post("/v1/workflows/{workflow_id}/retry", responses=answers(403, 404, 409, 507))
    async def retry(workflow_id: WorkflowPath, who: Person) -> dict[str, Any]:
        """Run again what failed or was cancelled, and so what waited for it: nothing that finished."""
        row, _ = await own(workflow_id, who)
        again = 0
        for _, job_id in row.jobs:  # in submission order: a job waits again for its retried parents
            s = await manager.queries.summary(JobId(job_id))
            if s is None or s.state not in (JobState.FAILED, JobState.CANCELLED) or not (
                    s.counts.failed or s.counts.cancelled):
                continue
            chosen = await manager.controls.retry(s, failed=True, cancelled=True, tasks=None)
            if isinstance(chosen, list):
                again += len(chosen)
        if not again:
            raise ApiError(409, f"workflow: {workflow_id} has nothing that failed or was cancelled to run again",
                           "workflow")
        return {**workflows.row_json(row, await summaries(row)), "tasks": again}

    return api
