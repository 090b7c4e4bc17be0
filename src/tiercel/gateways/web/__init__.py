"""The dashboard: pages on the manager's own port for people who would rather look than read tables.

Server-rendered pages (Jinja2 templates, every value escaped) with one small script that keeps
them live from the manager's job events over a WebSocket, and uPlot for the throughput plot.
Every file it serves ships inside this package: it works with no network and asks no other host.
It reads through the manager's queries and acts through its commands, as every gateway does:

    pages.py    jobs, a job, workers, sites, peers, queues, reservations
    workflows.py  workflows, a workflow's jobs in order with their dependencies
    datasets.py  Gfarm's nodes, and where the replicas of unfinished jobs' input files are
    forms.py    sign in and out, submit a job array, cancel a job
    data.py     the script's JSON reads and the live socket
    views.py    what the pages show, computed from the queries' answers (no I/O)
    session.py  the token in the session cookie; same-origin checks
    render.py   templates and the headers every answer carries
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from tiercel.gateways.web import data, datasets, forms, pages, workflows
from tiercel.manager.shell import Manager


def attach(manager: Manager, app: FastAPI) -> None:
    """Put the dashboard at / (its pages under /ui/) on the manager's app."""
    for part in (pages, workflows, datasets, forms, data):
        app.include_router(part.router(manager))
    app.mount("/ui/static", StaticFiles(packages=[("tiercel.gateways.web", "static")]), name="ui-static")
