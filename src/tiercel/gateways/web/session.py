"""Who is looking at the dashboard: the token kept in the session cookie, never in a URL.

The cookie holds the token itself, HttpOnly (no script reads it) and SameSite=Strict (no other
site's page sends it), so it is checked against the manager's tokens at every request: a revoked
token signs its pages out at once, and a restarted manager knows the same tokens (they are in its
store), so open pages carry on without signing in again. Forms and the live socket also check
that they come from the dashboard's own origin.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from starlette.requests import HTTPConnection, Request
from starlette.responses import Response

from tiercel.manager.auth import Identity
from tiercel.manager.shell import Manager

COOKIE = "tiercel_session"
PATH = "/ui"
MAX_FORM = 256 * 1024  # bytes of a form's body (a command is at most 64 KiB)


def viewer(manager: Manager, conn: HTTPConnection) -> Identity | None:
    """The user or admin whose token the session holds; None when signed out (a worker token never signs in)."""
    who = manager.identify(conn.cookies.get(COOKIE))
    return who if who is not None and who.may_submit else None


def sign_in(response: Response, token: str, secure: bool) -> None:
    response.set_cookie(COOKIE, token, path=PATH, httponly=True, samesite="strict", secure=secure)


def sign_out(response: Response) -> None:
    response.delete_cookie(COOKIE, path=PATH, httponly=True, samesite="strict")


def same_origin(conn: HTTPConnection) -> bool:
    """A form or socket opened by the dashboard's own pages: its Origin, when the browser sends one,
    is this host. (SameSite=Strict already keeps other sites' requests from carrying the cookie.)"""
    origin = conn.headers.get("origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc == conn.headers.get("host", "")


async def form(request: Request) -> dict[str, str] | None:
    """A URL-encoded form's fields (the last value of each), or None when the body is too large."""
    body = await request.body()
    if len(body) > MAX_FORM:
        return None
    try:
        fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=100)
    except ValueError:  # more fields than any of the dashboard's forms has
        return None
    return {k: v[-1] for k, v in fields.items()}
