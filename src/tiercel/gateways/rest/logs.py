"""A job's outputs: read by pages of tasks and streamed, or followed step by step as tasks settle.

Without ``cursor`` the answer streams every task's output in task order, page after page (the
settling attempt of each task, else its latest one), so a 100,000-task job never sits in memory.
With ``cursor`` it is one step of following: the tasks that settled since the cursor, and in
``X-Tiercel-Cursor`` the cursor of the next step (start with ``-1``); ``X-Tiercel-More`` says the
next step has more to read at once, ``X-Tiercel-Ended`` that the job had ended before this step.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Sequence
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import PlainTextResponse, Response, StreamingResponse

from tiercel.core.problems import Problem
from tiercel.core.ranges import IndexRanges
from tiercel.gateways.rest.auth import Person, own_job
from tiercel.gateways.rest.errors import ApiError, answers
from tiercel.gateways.rest.jobs import JobPath, TaskQuery
from tiercel.manager import outputs
from tiercel.manager.outputs import FAILED, Cursor
from tiercel.manager.shell import Manager
from tiercel.store.base import STREAMS, AttemptRow

JSONL = "application/x-ndjson"
STEP_HEADERS = {
    "X-Tiercel-Cursor": "where the next step of following starts (with ?cursor=)",
    "X-Tiercel-More": "true: the next step has more to read at once; false: wait a little before it",
    "X-Tiercel-Ended": "true: the job had ended before this step, so once More is false nothing more comes",
    "X-Tiercel-Forgotten": "when the job's outputs were dropped ('tiercel forget'), in seconds since the epoch",
}


def task_line(r: AttemptRow) -> bytes:
    """One task as a line of JSON: its outputs as UTF-8 text, or both in base64 (``"base64": true``)
    when either is not UTF-8."""
    try:
        out, err, raw = r.stdout.decode(), r.stderr.decode(), False
    except UnicodeDecodeError:
        out, err, raw = base64.b64encode(r.stdout).decode(), base64.b64encode(r.stderr).decode(), True
    return (json.dumps({"index": r.index, "attempt": r.attempt, "outcome": r.outcome, "final": r.final,
                        "exit_code": r.exit_code, "worker": r.worker, "started": r.started, "ended": r.ended,
                        "stdout": out, "stderr": err, "base64": raw}) + "\n").encode()


def render(rows: Sequence[AttemptRow], *, jsonl: bool, stream: str, headers: bool, failed: bool) -> bytes:
    chunks: list[bytes] = []
    for r in rows:
        if failed and r.outcome not in FAILED:
            continue
        if jsonl:
            chunks.append(task_line(r))
            continue
        if headers:
            chunks.append(f"==> task {r.index} (attempt {r.attempt}, {r.outcome}, exit {r.exit_code}) <==\n".encode())
        chunks.append(r.stdout if stream == "stdout" else r.stderr)
    return b"".join(chunks)


def router(manager: Manager) -> APIRouter:
    api = APIRouter()
    described: dict[int | str, dict[str, Any]] = {
        200: {"description": "the tasks' outputs in task order: text, or a line of JSON per task (format=jsonl)",
              "content": {JSONL: {"schema": {"type": "string"}}},
              "headers": {name: {"description": why, "schema": {"type": "string"}}
                          for name, why in STEP_HEADERS.items()}},
        **answers(403, 404, 422),
    }

    @api.get("/v1/jobs/{job_id}/logs", response_class=PlainTextResponse, responses=described)
    async def logs(job_id: JobPath, who: Person, task: TaskQuery = None,
                   stream: Annotated[Literal["stdout", "stderr"], Query()] = "stdout",
                   headers: bool = False,
                   failed: Annotated[bool, Query(description="only tasks whose settling attempt failed or timed "
                                                             "out")] = False,
                   fmt: Annotated[Literal["text", "jsonl"], Query(alias="format", description="text (one stream), "
                                                                              "or a line of JSON per task (both)")
                                  ] = "text",
                   cursor: Annotated[str | None, Query(max_length=16_000, description="follow the job: -1, then "
                                                       "each answer's X-Tiercel-Cursor")] = None) -> Response:
        """The tasks' output, in task order: the settling attempt of each, else its latest one; with
        ``cursor``, one step of following (settled tasks only)."""
        summary = await own_job(manager, job_id, who)
        if task is not None and task not in summary.spec.indexes:
            raise ApiError(404, f"task: {task} is not an index of job {job_id} "
                                f"(indexes: {summary.spec.indexes.text()})", "task")
        jsonl = fmt == "jsonl"
        streams = STREAMS if jsonl else (stream,)
        media = JSONL if jsonl else "text/plain"
        said: dict[str, str] = {}
        stored = await manager.queries.stored(summary.id)
        if stored is not None and stored.forgotten is not None:
            said["X-Tiercel-Forgotten"] = repr(stored.forgotten)

        if cursor is not None:
            start = Cursor.parse(cursor)
            if isinstance(start, Problem):
                raise ApiError.of(start, 422)
            tasks = IndexRanges(((task, task + 1),)) if task is not None else summary.spec.indexes
            ended = summary.state.terminal  # read before the step: then it reads every settled task
            step = await outputs.follow_step(manager.queries, summary.id, tasks, start, ended=ended,
                                             streams=streams)
            said.update({"X-Tiercel-Cursor": step.cursor.text(), "X-Tiercel-More": str(step.more).lower(),
                         "X-Tiercel-Ended": str(ended).lower()})
            answer = render(step.rows, jsonl=jsonl, stream=stream, headers=headers, failed=failed)
            return Response(answer, media_type=media, headers=said)

        within = ((task, task + 1),) if task is not None else ()

        async def body() -> AsyncIterator[bytes]:
            async for page in outputs.pages(manager.queries, summary.id, final=failed, streams=streams,
                                            within=within):
                chunk = render(page, jsonl=jsonl, stream=stream, headers=headers, failed=failed)
                if chunk:
                    yield chunk

        # Served as the text it almost always is; the bytes are the task's own, whatever their encoding.
        return StreamingResponse(body(), media_type=media, headers=said)

    return api
