"""Pages from templates, every value escaped, with headers that let no other origin in."""

from __future__ import annotations

import time
from typing import Any

import jinja2
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from tiercel import __version__
from tiercel.core.model import MAX_JOB_ID, JobId
from tiercel.manager.auth import Identity
from tiercel.manager.events import JobSummary
from tiercel.manager.shell import Manager

# Scripts, styles, images and sockets from this origin only: even a value that slipped through
# escaping could not run a script or reach another host.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
HEADERS = {"Content-Security-Policy": CSP, "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
           "Referrer-Policy": "same-origin", "X-Frame-Options": "DENY"}

_env = jinja2.Environment(loader=jinja2.PackageLoader("tiercel.gateways.web", "templates"),
                          autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def page(name: str, who: Identity | None, status: int = 200, **context: Any) -> HTMLResponse:
    html = _env.get_template(name).render(who=who, version=__version__, now=time.time(), **context)
    return HTMLResponse(html, status_code=status, headers=HEADERS)


def problem(who: Identity | None, status: int, message: str) -> HTMLResponse:
    return page("error.html", who, status, message=message, title="error")


def data(value: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(value, status_code=status, headers=HEADERS)


def to_sign_in() -> Response:
    return RedirectResponse("/ui/signin", status_code=303, headers=HEADERS)


def job_number(text: str) -> int | None:
    return int(text) if text.isdigit() and text.isascii() and 1 <= int(text) <= MAX_JOB_ID else None


async def own_job(manager: Manager, who: Identity, text: str) -> JobSummary | None:
    """A job the viewer may see (their own; any, for an admin); None for anyone else's, as for no job:
    ids reveal nothing."""
    job_id = job_number(text)
    if job_id is None:
        return None
    summary = await manager.queries.summary(JobId(job_id))
    if summary is None or (not who.sees(summary.owner)):
        return None
    return summary


def not_yours(who: Identity, text: str) -> HTMLResponse:
    return problem(who, 404, f"job: {text[:40]!r} is not a job of yours (see the jobs page)")
