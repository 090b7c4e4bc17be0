"""The dashboard's pages: jobs, a job, workers, sites, peers, queues, reservations (read through queries only)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from tiercel.core.model import JobState, UserName
from tiercel.core.problems import Problem
from tiercel.core.reservations import when
from tiercel.gateways.web import views
from tiercel.gateways.web.render import not_yours, own_job, page, problem, to_sign_in
from tiercel.gateways.web.session import viewer
from tiercel.manager.auth import Identity
from tiercel.manager.shell import Manager

MAX_PAGE = 100_000


@dataclass(frozen=True, slots=True)
class Listing:
    """The jobs page's filters and page, as the query string gave them."""

    state: str = ""
    user: str = ""
    queue: str = ""
    page: int = 1
    size: int = 50

    def query(self, **changed: Any) -> str:
        values = {"state": self.state, "user": self.user, "queue": self.queue, "page": self.page, "size": self.size,
                  **changed}
        return urlencode({k: v for k, v in values.items() if v not in ("", None) and not (k == "size" and v == 50)
                          and not (k == "page" and v == 1)})


def listing(params: dict[str, str], who: Identity) -> Listing | Problem:
    """The filters of a listing, or what is wrong with one of them."""
    state = params.get("state", "")
    if state and state not in views.STATE_NAMES:
        return Problem("state", state, f"is not a job state; one of {', '.join(views.STATE_NAMES)}")
    user = params.get("user", "").strip()
    if len(user) > 64:
        return Problem("user", user, "must be a user name of at most 64 characters")
    if user and not who.admin and user != who.user:
        return Problem("user", user, "is not you: only an admin sees other users' jobs")
    queue = params.get("queue", "").strip()
    if len(queue) > 64:
        return Problem("queue", queue, "must be a queue name of at most 64 characters")
    numbers = {}
    for name, default, allowed in (("page", 1, f"must be a page number from 1 to {MAX_PAGE:,}"),
                                   ("size", 50, f"must be one of {', '.join(map(str, views.PAGE_SIZES))}")):
        text = params.get(name, "") or str(default)
        value = int(text) if text.isdigit() and text.isascii() and len(text) < 8 else None
        if value is None or (name == "page" and not 1 <= value <= MAX_PAGE) or \
                (name == "size" and value not in views.PAGE_SIZES):
            return Problem(name, text, allowed)
        numbers[name] = value
    return Listing(state, user, queue, numbers["page"], numbers["size"])


async def job_rows(manager: Manager, who: Identity, at: Listing) -> tuple[list[dict[str, Any]], bool]:
    owner = UserName(at.user) if at.user else (None if who.admin else who.user)
    states = (JobState(at.state),) if at.state else ()
    found, more = await manager.queries.jobs_page(owner, states, at.queue or None, (at.page - 1) * at.size, at.size)
    now = manager.clock()
    return [views.job_row(s, places, now) for s, places in found], more


def router(manager: Manager) -> APIRouter:
    ui = APIRouter(include_in_schema=False)

    @ui.get("/")
    async def root() -> Response:
        return RedirectResponse("/ui/", status_code=307)

    @ui.get("/ui")
    async def bare() -> Response:
        return RedirectResponse("/ui/", status_code=307)

    @ui.get("/ui/")
    async def jobs(request: Request) -> Response:
        who = viewer(manager, request)
        if who is None:
            return to_sign_in()
        at = listing(dict(request.query_params), who)
        if isinstance(at, Problem):
            return problem(who, 422, at.message())
        rows, more = await job_rows(manager, who, at)
        queues = [q["name"] for q in manager.queries.queues()]
        return page("jobs.html", who, title="jobs", rows=rows, more=more, at=at, states=views.STATE_NAMES,
                    queues=queues)

    @ui.get("/ui/jobs/{job}")
    async def job(request: Request, job: str) -> Response:
        who = viewer(manager, request)
        if who is None:
            return to_sign_in()
        summary = await own_job(manager, who, job)
        if summary is None:
            return not_yours(who, job)
        j = summary.to_json()
        explained = manager.queries.explain(summary) if not summary.state.terminal else None
        return page("job.html", who, title=f"job {summary.id}", job=j, bar=views.bar(j),
                    histogram=views.histogram(j), spec=views.describe(summary.spec), explain=explained,
                    data=views.data_panel(summary.spec, explained),
                    forwarded=views.forwarded_rows(explained["forwarded"] if explained else []),
                    has_peers=bool(manager.queries.peers()),
                    queue=summary.spec.queue, rate=views.rate_text(views.rate(j, manager.clock())),
                    age=views.age(manager.clock() - summary.submitted))

    @ui.get("/ui/workers")
    async def workers(request: Request) -> Response:
        return pool(request, "workers.html", "workers", rows=manager.queries.workers())

    @ui.get("/ui/sites")
    async def sites(request: Request) -> Response:
        return pool(request, "sites.html", "sites", rows=manager.queries.sites())

    @ui.get("/ui/peers")
    async def peers(request: Request) -> Response:
        """The peer managers: any signed-in user sees their links and offers; an admin also the work forwarded
        each way and the refusals (views.peer_rows)."""
        who = viewer(manager, request)
        if who is None:
            return to_sign_in()
        return pool(request, "peers.html", "peers",
                    rows=views.peer_rows(manager.queries.peers(), who.admin, manager.clock()))

    @ui.get("/ui/queues")
    async def queues(request: Request) -> Response:
        return pool(request, "queues.html", "queues", rows=manager.queries.queues())

    @ui.get("/ui/reservations")
    async def reservations(request: Request) -> Response:
        found = manager.queries.reservations()
        return pool(request, "reservations.html", "reservations", rows=found,
                    timeline=views.timeline(found, manager.clock()))

    def pool(request: Request, template: str, title: str, **context: Any) -> Response:
        """A page of the pool's own views, which hold no one's jobs: any signed-in user may read it.
        With ``?part=1`` only its table, which the page's script swaps in when the pool changes."""
        who = viewer(manager, request)
        if who is None:
            return to_sign_in()
        return page(template, who, title=title, part=request.query_params.get("part") == "1",
                    now_s=manager.clock(), age=views.age, when=when, **context)

    return ui

