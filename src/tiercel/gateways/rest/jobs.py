"""Jobs: submit, list, read, cancel, their tasks' attempts, and why they wait (their outputs: logs.py)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from tiercel.core.model import MAX_JOB_ID, JobId
from tiercel.core.problems import Problem
from tiercel.gateways.rest import auth
from tiercel.gateways.rest.auth import Person
from tiercel.gateways.rest.errors import ApiError, answers
from tiercel.gateways.rest.models import JobInfo, TaskAttempt
from tiercel.jobspec.request import JobRequest, build_spec
from tiercel.manager.auth import Identity
from tiercel.manager.events import JobSummary
from tiercel.manager.shell import Manager

JobPath = Annotated[int, Path(ge=1, le=MAX_JOB_ID, description="a job id")]
TaskQuery = Annotated[int | None, Query(ge=0, le=2**31 - 1, description="a task index")]


def router(manager: Manager) -> APIRouter:
    api = APIRouter()

    async def own_job(job_id: int, who: Identity) -> JobSummary:
        return await auth.own_job(manager, job_id, who)

    @api.post("/v1/jobs", status_code=201, response_model=JobInfo, responses=answers(403, 507))
    async def submit(req: JobRequest, who: Person) -> dict[str, Any]:
        spec = build_spec(req, max_tasks=manager.settings.max_tasks)
        if isinstance(spec, Problem):
            raise ApiError.of(spec, 422)
        admitted = manager.admit(who.user, spec)
        if isinstance(admitted, Problem):
            raise ApiError.of(admitted, 422)
        spec = admitted
        return (await manager.submit(who.user, spec)).to_json()

    @api.get("/v1/jobs", response_model=list[JobInfo], responses=answers(403, 422))
    async def jobs(who: Person, all: bool = False, limit: Annotated[int, Query(ge=1, le=10_000)] = 200,
                   ids: Annotated[str | None, Query(max_length=100_000, pattern="^[0-9,]*$",
                                                    description="only these jobs, e.g. 3,17,42 (one request "
                                                                "for the state of many)")] = None
                   ) -> list[dict[str, Any]]:
        """Your jobs, newest first (an admin's with all=true: everyone's); with ids, just those."""
        if ids is not None:
            wanted = [int(x) for x in ids.split(",") if x]
            if len(wanted) > 10_000 or any(not 1 <= j <= MAX_JOB_ID for j in wanted):
                raise ApiError(422, "ids: must be at most 10,000 job ids, each from 1", "ids")
            found = [await manager.queries.summary(JobId(j)) for j in dict.fromkeys(wanted)]
            return [s.to_json() for s in found if s is not None and who.sees(s.owner)]
        return [s.to_json() for s in await manager.queries.jobs(who, all, limit)]

    @api.get("/v1/jobs/{job_id}", response_model=JobInfo, responses=answers(403, 404))
    async def job(job_id: JobPath, who: Person,
                  wait: Annotated[float, Query(ge=0, le=60, description="seconds to wait for the job to end "
                                                                        "before answering (a long poll)")] = 0
                  ) -> dict[str, Any]:
        """A job's state; with ``wait``, answered as soon as the job ends, or after that many seconds."""
        summary = await own_job(job_id, who)
        if wait and not summary.state.terminal:
            await manager.events.until_ended(summary.id, wait)
            summary = await own_job(job_id, who)
        return summary.to_json()

    @api.post("/v1/jobs/{job_id}/cancel", response_model=JobInfo, responses=answers(403, 404))
    async def cancel(job_id: JobPath, who: Person) -> dict[str, Any]:
        summary = await own_job(job_id, who)
        if not summary.state.terminal:
            await manager.cancel(summary.id)
        after = await manager.queries.summary(summary.id)
        assert after is not None
        return after.to_json()

    @api.post("/v1/jobs/cancel", responses=answers(403))
    async def cancel_mine(who: Person) -> dict[str, list[int]]:
        return {"cancelled": [int(j) for j in await manager.cancel_all(who.user)]}

    @api.get("/v1/jobs/{job_id}/tasks", response_model=list[TaskAttempt], responses=answers(403, 404))
    async def tasks(job_id: JobPath, who: Person, index: TaskQuery = None, final: bool = False
                    ) -> list[dict[str, Any]]:
        await own_job(job_id, who)
        rows = await manager.queries.attempts(JobId(job_id), index, final)
        return [{"index": r.index, "attempt": r.attempt, "outcome": r.outcome, "final": r.final,
                 "worker": r.worker, "exit_code": r.exit_code, "started": r.started, "ended": r.ended}
                for r in rows]

    @api.get("/v1/jobs/{job_id}/explain", responses=answers(403, 404))
    async def explain(job_id: JobPath, who: Person) -> dict[str, Any]:
        """Why a job's waiting tasks are not running: its queue's verdict and each worker's."""
        return manager.queries.explain(await own_job(job_id, who))

    return api
