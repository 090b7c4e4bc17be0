"""The dashboard's forms: sign in and out, submit a job array, cancel a job (after asking).

Every form posts URL-encoded fields from the dashboard's own pages (checked by their Origin); a
field that is not allowed is said as the command line says it — the field, the value and what is
allowed — beside the form kept as it was typed, and nothing is submitted.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from tiercel.core.problems import MISSING, Problem
from tiercel.gateways.web.render import HEADERS, not_yours, own_job, page, problem, to_sign_in
from tiercel.gateways.web.session import form, same_origin, sign_in, sign_out, viewer
from tiercel.jobspec.request import spec_from_mapping
from tiercel.manager.shell import Manager, SubmitRefused, Unavailable

SUBMIT_FIELDS = ("command", "queue", "array", "requires", "walltime", "name")
WORKER_REFUSED = "token: a worker token runs tasks and nothing else; sign in with a user or admin token"
FOREIGN = "request: this form was not sent from the dashboard's own page"


def request_of(fields: dict[str, str]) -> dict[str, Any]:
    """A job request from the submit form's text fields, as a job file gives it: blank fields are left
    out, tags may be separated by commas or spaces."""
    data: dict[str, Any] = {"command": fields.get("command", "")}
    for name in ("queue", "array", "walltime", "name"):
        value = fields.get(name, "").strip()
        if value:
            data[name] = value
    tags = fields.get("requires", "").replace(",", " ").split()
    if tags:
        data["requires"] = tags
    return data


def router(manager: Manager) -> APIRouter:
    ui = APIRouter(include_in_schema=False)

    @ui.get("/ui/signin")
    async def signin_form(request: Request) -> Response:
        return page("signin.html", viewer(manager, request), title="sign in", error=None)

    @ui.post("/ui/signin")
    async def signin(request: Request) -> Response:
        fields = await form(request)
        if fields is None or not same_origin(request):
            return page("signin.html", None, 400, title="sign in", error=FOREIGN)
        token = fields.get("token", "").strip()
        who = manager.identify(token) if token else None
        if who is None:
            return page("signin.html", None, 401, title="sign in",
                        error="token: missing or unknown; paste a token from 'tiercel token create', or the "
                              "manager's admin.token")
        if not who.may_submit:
            return page("signin.html", None, 403, title="sign in", error=WORKER_REFUSED)
        answer = RedirectResponse("/ui/", status_code=303, headers=HEADERS)
        sign_in(answer, token, secure=request.url.scheme == "https")
        return answer

    @ui.post("/ui/signout")
    async def signout(request: Request) -> Response:
        answer = RedirectResponse("/ui/signin", status_code=303, headers=HEADERS)
        if same_origin(request):
            sign_out(answer)
        return answer

    @ui.get("/ui/submit")
    async def submit_form(request: Request) -> Response:
        who = viewer(manager, request)
        if who is None:
            return to_sign_in()
        blank = {**dict.fromkeys(SUBMIT_FIELDS, ""), "queue": "1"}
        return page("submit.html", who, title="submit", fields=blank, error=None)

    @ui.post("/ui/submit")
    async def submit(request: Request) -> Response:
        who = viewer(manager, request)
        if who is None:
            return to_sign_in()
        fields = await form(request)
        if fields is None or not same_origin(request):
            return problem(who, 400, FOREIGN if fields is not None else "request: the form is too large")
        kept = {k: fields.get(k, "") for k in SUBMIT_FIELDS}
        spec = spec_from_mapping(request_of(fields), max_tasks=manager.settings.max_tasks)
        if not isinstance(spec, Problem):
            spec = manager.admit(who.user, spec)
        if isinstance(spec, Problem):
            return page("submit.html", who, 422, title="submit", fields=kept, error=spec)
        try:
            made = await manager.submit(who.user, spec)
        except SubmitRefused as exc:
            return page("submit.html", who, 422, title="submit", fields=kept, error=exc.problem)
        except Unavailable as exc:
            return page("submit.html", who, 507, title="submit", fields=kept,
                        error=Problem("request", MISSING, f"the manager cannot take new work now: {exc}"))
        return RedirectResponse(f"/ui/jobs/{made.id}", status_code=303, headers=HEADERS)

    @ui.get("/ui/jobs/{job}/cancel")
    async def cancel_form(request: Request, job: str) -> Response:
        who = viewer(manager, request)
        if who is None:
            return to_sign_in()
        summary = await own_job(manager, who, job)
        if summary is None:
            return not_yours(who, job)
        return page("cancel.html", who, title=f"cancel job {summary.id}", job=summary.to_json())

    @ui.post("/ui/jobs/{job}/cancel")
    async def cancel(request: Request, job: str) -> Response:
        who = viewer(manager, request)
        if who is None:
            return to_sign_in()
        if not same_origin(request):
            return problem(who, 400, FOREIGN)
        summary = await own_job(manager, who, job)
        if summary is None:
            return not_yours(who, job)
        if not summary.state.terminal:
            await manager.cancel(summary.id)
        return RedirectResponse(f"/ui/jobs/{summary.id}", status_code=303, headers=HEADERS)

    return ui
