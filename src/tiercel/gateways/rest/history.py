"""What happened to jobs that ended: their history, and dropping their outputs once read."""

from __future__ import annotations

import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from tiercel.core.model import JobState, UserName
from tiercel.core.problems import Problem
from tiercel.gateways.rest.auth import Person, own_job
from tiercel.gateways.rest.errors import ApiError, answers
from tiercel.gateways.rest.jobs import JobPath
from tiercel.jobspec.values import parse_duration
from tiercel.manager import outputs
from tiercel.manager.shell import Manager
from tiercel.store.base import JobRow

SINCE_FORMS = ("a duration back from now (90s, 10m, 12h, 2d, 1h30m; at most 365d), a date (2026-11-21) or a date "
               "and time (2026-11-21T10:00, local unless it names its zone)")
ENDED_STATES = (JobState.DONE, JobState.FAILED, JobState.CANCELLED)


class HistoryEntry(BaseModel):
    """An ended job: its counts, how long it took, and where it ran."""

    id: int
    name: str | None
    owner: str
    state: str
    total: int
    done: int
    failed: int
    cancelled: int
    submitted: float
    ended: float
    wall: float  # ended - submitted, in seconds
    cpu: float | None  # CPU seconds of its tasks' processes (user + system), when measured
    places: list[str]  # where its attempts ran: worker names, SITE/PILOT, native sites
    reason: str | None
    command: list[str]
    forgotten: float | None  # when its outputs were dropped


class Forgotten(BaseModel):
    job: int
    rows: int  # attempt rows that held an output (the rows themselves stay)
    bytes: int  # what their outputs took in the store


def parse_since(text: str, now: float) -> float | Problem:
    """``--since``: a duration back from ``now``, a date, or a date and time."""
    value = text.strip()
    seconds = parse_duration(value) if value else None
    if isinstance(seconds, float):
        return now - seconds
    try:
        when = datetime.datetime.fromisoformat(value)
    except ValueError:
        return Problem("since", text, f"is not a time: give {SINCE_FORMS}")
    if when.tzinfo is None:
        when = when.astimezone()
    return when.timestamp()


def parse_states(text: str) -> tuple[JobState, ...] | Problem:
    """``--state``: one or more of done, failed and cancelled, separated by commas."""
    states: list[JobState] = []
    for word in (w.strip().lower() for w in text.split(",")):
        state = next((s for s in ENDED_STATES if s.value == word), None)
        if state is None:
            return Problem("state", text, "is not a state a job ends in: done, failed or cancelled "
                                          "(several separated by commas)")
        if state not in states:
            states.append(state)
    return tuple(states)


def entry(row: JobRow) -> dict[str, Any]:
    assert row.state is not None and row.ended is not None and row.counts is not None
    c = row.counts
    return {"id": row.id, "name": row.spec.name, "owner": row.owner, "state": row.state.value, "total": c.total,
            "done": c.done, "failed": c.failed, "cancelled": c.cancelled, "submitted": row.submitted,
            "ended": row.ended, "wall": max(0.0, row.ended - row.submitted), "cpu": row.cpu, "places": list(row.places),
            "reason": row.reason, "command": list(row.spec.command), "forgotten": row.forgotten}


def router(manager: Manager) -> APIRouter:
    api = APIRouter()

    @api.get("/v1/history", response_model=list[HistoryEntry], responses=answers(403, 422))
    async def history(who: Person, user: Annotated[str | None, Query(max_length=200)] = None, all: bool = False,
                      since: Annotated[str | None, Query(max_length=100, description=SINCE_FORMS)] = None,
                      state: Annotated[str | None, Query(max_length=100, description="done, failed or cancelled "
                                                         "(several separated by commas)")] = None,
                      limit: Annotated[int, Query(ge=1, le=10_000)] = 50) -> list[dict[str, Any]]:
        """Ended jobs, the last ended first: yours, a user's (admins) or everyone's (admins, ``all``)."""
        if user is not None and user != who.user and not who.admin:
            raise ApiError(403, f"user: {user!r} is not you: only an admin sees another user's history "
                                "(leave it out for yours)", "user")
        owner = UserName(user) if user is not None else (None if who.admin and all else who.user)
        after: float | None = None
        if since is not None:
            when = parse_since(since, manager.clock())
            if isinstance(when, Problem):
                raise ApiError.of(when, 422)
            after = when
        states: tuple[JobState, ...] = ()
        if state is not None:
            chosen = parse_states(state)
            if isinstance(chosen, Problem):
                raise ApiError.of(chosen, 422)
            states = chosen
        return [entry(row) for row in await manager.queries.history(owner, after, states, limit)]

    @api.post("/v1/jobs/{job_id}/forget", response_model=Forgotten, responses=answers(403, 404, 409, 507))
    async def forget(job_id: JobPath, who: Person) -> dict[str, int]:
        """Drop the outputs (stdout, stderr) of an ended job; its attempts and counts stay."""
        summary = await own_job(manager, job_id, who)
        if not summary.state.terminal:
            raise ApiError(409, f"job: {job_id} has not ended ({summary.state.value}); its outputs are dropped "
                                f"only once it has (wait for it with 'tiercel wait {job_id}', or cancel it)", "job")
        rows, size = await outputs.forget(manager, summary)
        return {"job": job_id, "rows": rows, "bytes": size}

    return api
