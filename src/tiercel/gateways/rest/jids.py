"""``/v1/jids``: the REST face of the XMPP gateway's JID directory, for ``tiercel user link-jid``.

Added to the app by the XMPP gateway when the manager has an [xmpp] table.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from tiercel.gateways.rest.auth import WORKER_REFUSED
from tiercel.gateways.rest.errors import answers
from tiercel.gateways.xmpp.config import USER_NAME, bare_jid
from tiercel.gateways.xmpp.jids import JidDirectory
from tiercel.manager.auth import bearer
from tiercel.manager.shell import Manager


class LinkRequest(BaseModel):
    model_config = {"extra": "forbid"}
    user: str = Field(min_length=1, max_length=64, pattern=USER_NAME)


def router(manager: Manager, jids: JidDirectory) -> APIRouter:
    """``/v1/jids``: list, link and unlink (admins), each user sees their own."""
    api = APIRouter()

    def who(request: Request) -> Any:
        found = manager.identify(bearer(request.headers.get("authorization")))
        if found is None:
            return _error(401, "token: missing or unknown; pass 'Authorization: Bearer TOKEN'", "token")
        return found

    def jid_of(raw: str) -> str | JSONResponse:
        try:
            return bare_jid(raw)
        except ValueError as exc:
            return _error(422, f"jid: {raw!r} {exc}", "jid")

    @api.get("/v1/jids", responses=answers(403))
    async def list_jids(request: Request) -> Any:
        identity = who(request)
        if isinstance(identity, JSONResponse):
            return identity
        if not identity.may_submit:  # a worker token's user name is a label, never a person
            return _error(403, WORKER_REFUSED, "token")
        rows = jids.rows()
        return rows if identity.admin else [r for r in rows if r["user"] == identity.user]

    def admin_jid(request: Request, jid: str, doing: str) -> str | JSONResponse:
        """The bare JID an admin's request names, or the error response saying what is wrong."""
        identity = who(request)
        if isinstance(identity, JSONResponse):
            return identity
        if not identity.admin:
            return _error(403, f"token: only an admin may {doing}", "token")
        return jid_of(jid)

    @api.put("/v1/jids/{jid}", responses=answers(403))
    async def link(jid: str, req: LinkRequest, request: Request) -> Any:
        bare = admin_jid(request, jid, "link JIDs to users")
        if isinstance(bare, JSONResponse):
            return bare
        jids.link(bare, req.user)
        return {"jid": bare, "user": req.user}

    @api.delete("/v1/jids/{jid}", responses=answers(403, 404))
    async def unlink(jid: str, request: Request) -> Any:
        bare = admin_jid(request, jid, "unlink JIDs")
        if isinstance(bare, JSONResponse):
            return bare
        if not jids.unlink(bare):
            source = "the [xmpp.users] table of the configuration" if bare in jids.configured else "nowhere"
            return _error(404, f"jid: {bare!r} is not linked with tiercel user link-jid (it is in {source})", "jid")
        return {"unlinked": bare}

    return api


def _error(status: int, message: str, field: str) -> JSONResponse:
    return JSONResponse({"error": message, "field": field}, status_code=status)

