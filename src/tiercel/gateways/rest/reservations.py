"""Advance reservations: create (admins), list, delete (admins)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from tiercel.core.problems import Problem, Refusal
from tiercel.core.reservations import Reservation
from tiercel.gateways.rest.auth import Who
from tiercel.gateways.rest.errors import ApiError, answers
from tiercel.gateways.rest.models import ReservationRequest
from tiercel.jobspec.values import parse_when
from tiercel.manager.shell import Manager


def router(manager: Manager) -> APIRouter:
    api = APIRouter()

    @api.post("/v1/reservations", status_code=201, responses=answers(403, 409, 502, 507))
    async def reserve(req: ReservationRequest, who: Who) -> dict[str, Any]:
        if not who.admin:
            raise ApiError(403, "token: only an admin may create reservations", "token")
        now = manager.clock()
        # Numbers go through the same reading as text, so a time out of range is refused alike.
        start = parse_when(str(req.start), now, "start")
        if isinstance(start, Problem):
            raise ApiError.of(start, 422)
        end = parse_when(str(req.end), start, "end")
        if isinstance(end, Problem):
            raise ApiError.of(end, 422)
        if start < now - 60:
            raise ApiError.of(Problem("start", req.start, "is in the past"), 422)
        name = req.name or f"r{int(now)}"
        r = Reservation(name, req.site, req.slots, max(start, now), end, frozenset(req.users or [who.user]), who.user)
        problem = await manager.reserve(r, mirror=req.mirror)
        if problem is not None:
            # A Refusal is the batch system's no, not the request's fault: a bad gateway, not a bad request.
            raise ApiError.of(problem, 502 if isinstance(problem, Refusal) else
                              409 if problem.field in ("slots", "name") else 422)
        made = manager.queries.reservation(r.name)
        assert made is not None
        return _json(made)

    @api.get("/v1/reservations")
    async def reservations(who: Who) -> list[dict[str, Any]]:
        return [_json(r) for r in manager.queries.reservations()]

    @api.delete("/v1/reservations/{name}", responses=answers(403, 404))
    async def unreserve(name: str, who: Who) -> dict[str, str]:
        if not who.admin:
            raise ApiError(403, "token: only an admin may delete reservations", "token")
        found, trouble = await manager.unreserve(name)
        if not found:
            raise ApiError.of(Problem("reservation", name, "does not exist (see 'tiercel reserve list')"), 404)
        return {"deleted": name, **({"warning": trouble} if trouble else {})}

    return api


def _json(r: Reservation) -> dict[str, Any]:
    return {"name": r.name, "site": r.site, "slots": r.slots, "start": r.start, "end": r.end,
            "users": sorted(r.users), "owner": r.owner, "mirror": r.mirror}
