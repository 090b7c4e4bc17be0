"""Tokens (admins only): make one, list them (never the secret), revoke one."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path

from tiercel.core.model import UserName
from tiercel.core.problems import Problem
from tiercel.gateways.rest.auth import Who
from tiercel.gateways.rest.errors import ApiError, answers
from tiercel.gateways.rest.models import TokenRequest, TokenRow
from tiercel.manager.auth import ROLES, Identity
from tiercel.manager.shell import Manager

TokenId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[0-9a-f]+$")]


def _admin(who: Identity, doing: str) -> None:
    if not who.admin:
        raise ApiError(403, f"token: only an admin may {doing} tokens", "token")


def router(manager: Manager) -> APIRouter:
    api = APIRouter()

    @api.get("/v1/tokens", response_model=list[TokenRow], responses=answers(403))
    async def token_list(who: Who) -> list[dict[str, Any]]:
        _admin(who, "list")
        return manager.tokens.rows()

    @api.delete("/v1/tokens/{token_id}", responses=answers(403, 404))
    async def token_revoke(token_id: TokenId, who: Who) -> dict[str, str]:
        _admin(who, "revoke")
        gone = await manager.revoke_token(token_id)
        if gone is None:
            raise ApiError.of(Problem("token", token_id, "is not the id of a token (see 'tiercel token list')"), 404)
        return {"id": token_id, "user": gone.user, "role": gone.role}

    @api.post("/v1/tokens", status_code=201, responses=answers(403, 507))
    async def tokens(req: TokenRequest, who: Who) -> dict[str, str]:
        _admin(who, "create")
        if req.role not in ROLES:
            raise ApiError.of(Problem("role", req.role, f"is not allowed: choose one of {', '.join(ROLES)}"), 422)
        token = await manager.create_token(UserName(req.user), req.role, label=f"created by {who.user}")
        return {"user": req.user, "role": req.role, "token": token}

    return api
