"""The dashboard's workflows: a listing, and a workflow's page with its jobs in order and what each waits for.

Read through the same queries as ``/v1/workflows``, with the same rule: a user sees their own
workflows, an admin everyone's; someone else's answers as no workflow at all. With ``?part=1`` a
page answers only its live part, which the page's script swaps in when one of its jobs moves.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from tiercel.gateways.web import views
from tiercel.gateways.web.render import page, problem, to_sign_in
from tiercel.gateways.web.session import viewer
from tiercel.manager.shell import Manager

LISTED = 100  # workflows the listing shows, the newest first
MAX_WORKFLOW_ID = 2**63 - 1


def router(manager: Manager) -> APIRouter:
    ui = APIRouter(include_in_schema=False)

    @ui.get("/ui/workflows")
    async def listing(request: Request) -> Response:
        who = viewer(manager, request)
        if who is None:
            return to_sign_in()
        found = await manager.queries.workflows(None if who.admin else who.user, LISTED)
        now = manager.clock()
        return page("workflows.html", who, title="workflows", kind="workflows",
                    part=request.query_params.get("part") == "1",
                    rows=[views.workflow_row(row, jobs, now) for row, jobs in found], now_s=now)

    @ui.get("/ui/workflows/{workflow}")
    async def one(request: Request, workflow: str) -> Response:
        who = viewer(manager, request)
        if who is None:
            return to_sign_in()
        number = int(workflow) if workflow.isdigit() and workflow.isascii() and len(workflow) < 20 else 0
        found = await manager.queries.workflow(number) if 1 <= number <= MAX_WORKFLOW_ID else None
        if found is None or (not who.sees(found[0].owner)):
            return problem(who, 404, f"workflow: {workflow[:40]!r} is not a workflow of yours (see the workflows page)")
        row, jobs = found
        now = manager.clock()
        return page("workflow.html", who, title=f"workflow {row.id}", kind="workflow",
                    part=request.query_params.get("part") == "1",
                    wf=views.workflow_row(row, jobs, now), jobs=views.workflow_jobs(row, jobs), now_s=now)

    return ui
