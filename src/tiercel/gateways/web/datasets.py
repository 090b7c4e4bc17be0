"""The dashboard's datasets page: the Gfarm nodes the manager knows, and where the input files of
unfinished jobs are.

The nodes (up or down, as the manager's watch of them last saw) hold no one's jobs: any signed-in
user sees them. The files are counted per job with the jobs pages' rule: a user sees their own
jobs' files, an admin everyone's. With ``?part=1`` only the page's live part, which its script
reads again when the pool (Gfarm's nodes included) changes.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from tiercel.gateways.web import views
from tiercel.gateways.web.render import page, to_sign_in
from tiercel.gateways.web.session import viewer
from tiercel.manager.shell import Manager


def router(manager: Manager) -> APIRouter:
    ui = APIRouter(include_in_schema=False)

    @ui.get("/ui/datasets")
    async def datasets(request: Request) -> Response:
        who = viewer(manager, request)
        if who is None:
            return to_sign_in()
        fs = manager.queries.gfarm()
        jobs, more = await manager.queries.input_replicas(None if who.admin else who.user)
        return page("datasets.html", who, title="datasets", part=request.query_params.get("part") == "1",
                    fs=fs, table=views.replica_table(jobs, fs["nodes"]), more=more,
                    size=views.size_text)

    return ui
