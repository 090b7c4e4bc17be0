"""Who is who on XMPP: bare JIDs mapped to Tiercel users.

Two sources: the ``[xmpp.users]`` table of the configuration, and links an admin makes
at run time with ``tiercel user link-jid JID USER`` (kept in ``xmpp-jids.json`` in the
state dir, written atomically). A link overrides the table for the same JID. A user's
JIDs are also where ``job_finished`` goes for jobs they submitted another way.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from tiercel.core.model import UserName
from tiercel.core.problems import SetupError
from tiercel.gateways.xmpp_config import USER_NAME, bare_jid
from tiercel.manager.api import WORKER_REFUSED, answers
from tiercel.manager.auth import bearer
from tiercel.manager.service import Manager

FILE = "xmpp-jids.json"


class JidDirectory:
    def __init__(self, state_dir: Path, configured: dict[str, str] | None = None) -> None:
        self.path = state_dir / FILE
        self.configured = dict(configured or {})
        self.linked: dict[str, str] = {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            self.linked = {str(k): str(v) for k, v in data.get("links", {}).items()}
        except FileNotFoundError:
            pass
        except (OSError, ValueError, AttributeError) as exc:
            raise SetupError(f"{self.path}: cannot be read ({exc}); fix or remove it") from None

    def user_of(self, jid: str) -> UserName | None:
        user = self.linked.get(jid) or self.configured.get(jid)
        return None if user is None else UserName(user)

    def jids_of(self, user: str) -> list[str]:
        merged = {**self.configured, **self.linked}
        return sorted(j for j, u in merged.items() if u == user)

    def rows(self) -> list[dict[str, str]]:
        rows = [{"jid": j, "user": u, "source": "config"} for j, u in self.configured.items() if j not in self.linked]
        rows += [{"jid": j, "user": u, "source": "linked"} for j, u in self.linked.items()]
        return sorted(rows, key=lambda r: (r["user"], r["jid"]))

    def link(self, jid: str, user: str) -> None:
        self._save({**self.linked, jid: user})

    def unlink(self, jid: str) -> bool:
        if jid not in self.linked:
            return False
        self._save({j: u for j, u in self.linked.items() if j != jid})
        return True

    def _save(self, links: dict[str, str]) -> None:
        """Write the new links durably, then use them: a failed write changes nothing."""
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # the state dir's files are private
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"links": links}, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(self.path)
        self.linked = links


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

