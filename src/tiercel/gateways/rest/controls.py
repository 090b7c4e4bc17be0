"""What a job's owner changes after submitting it: hold, release, update, retry."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from tiercel.core.model import JobId
from tiercel.core.ranges import IndexRanges, merge_spans
from tiercel.gateways.rest.auth import Person, own_job
from tiercel.gateways.rest.errors import ApiError, answers
from tiercel.gateways.rest.jobs import JobPath
from tiercel.gateways.rest.models import JobChanges, JobInfo, RetryAnswer, RetryRequest
from tiercel.manager.controls import Changes
from tiercel.manager.shell import Manager


def router(manager: Manager) -> APIRouter:
    api = APIRouter()

    async def after(job_id: int) -> dict[str, Any]:
        summary = await manager.queries.summary(JobId(job_id))
        assert summary is not None
        return summary.to_json()

    def holding(held: bool, doc: str) -> None:
        path = f"/v1/jobs/{{job_id}}/{'hold' if held else 'release'}"

        async def route(job_id: JobPath, who: Person) -> dict[str, Any]:
            problem = await manager.controls.hold(await own_job(manager, job_id, who), held)
            if problem is not None:
                raise ApiError.of(problem, 409)
            return await after(job_id)

        api.post(path, response_model=JobInfo, responses=answers(403, 404, 409, 507), description=doc,
                 name="hold" if held else "release")(route)

    holding(True, "Stop new tasks of the job from starting; those running go on.")
    holding(False, "Let a held job's tasks start again.")

    @api.patch("/v1/jobs/{job_id}", response_model=JobInfo, responses=answers(403, 404, 409, 507))
    async def update(job_id: JobPath, changes: JobChanges, who: Person) -> dict[str, Any]:
        """Change a job's priority or cap on running tasks, or its walltime before any task started."""
        problem = await manager.controls.update(
            await own_job(manager, job_id, who),
            Changes(changes.priority, changes.walltime, changes.max_running, changes.no_max_running))
        if problem is not None:
            raise ApiError.of(problem, 409 if problem.field in ("job", "walltime") else 422)
        return await after(job_id)

    @api.post("/v1/jobs/{job_id}/retry", response_model=RetryAnswer, responses=answers(403, 404, 409, 507))
    async def retry(job_id: JobPath, req: RetryRequest, who: Person) -> dict[str, Any]:
        """Run ended tasks of the job again as new attempts (default: the failed ones)."""
        if req.tasks is not None and (req.failed or req.cancelled):
            raise ApiError(422, "tasks: cannot be given together with failed or cancelled (choose one)", "tasks")
        chosen = await manager.controls.retry(await own_job(manager, job_id, who), failed=req.failed,
                                              cancelled=req.cancelled, tasks=req.tasks)
        if not isinstance(chosen, list):
            raise ApiError.of(chosen, 422 if chosen.field == "tasks" else 409)
        spans = merge_spans((i, i + 1) for i in chosen)
        return {"job": await after(job_id), "tasks": len(chosen), "indexes": IndexRanges(spans).text()}

    return api
