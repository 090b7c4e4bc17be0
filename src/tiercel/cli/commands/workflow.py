"""``tiercel workflow``: submit a file of jobs that wait for one another, follow, cancel, retry it."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click

from tiercel.cli.common import (
    CONTEXT_SETTINGS,
    STATE_STYLE,
    UserError,
    age,
    client,
    console,
    errors,
    friendly,
    json_option,
    make_table,
    print_json,
    token_option,
    url_option,
)


@click.group(context_settings=CONTEXT_SETTINGS)
def workflow() -> None:
    """Workflows: a TOML file of named jobs that wait for one another (after = [...]).

    \b
      tiercel workflow submit flow.toml --var data=/data/run2
      tiercel workflow status 3        # each job's state and progress
      tiercel workflow wait 3          # a progress bar over all its tasks
      tiercel workflow retry 3         # what failed or was cancelled, and what waited for it
    """


@workflow.command(context_settings=CONTEXT_SETTINGS)
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--var", "variables", multiple=True, metavar="NAME=VALUE", help="Set a variable of the file's [vars].")
@url_option
@token_option
@json_option
@friendly
def submit(file: Path, variables: tuple[str, ...], url: str | None, token: str | None, as_json: bool) -> None:
    """Submit a workflow file: every job is checked first, and all are accepted or none."""
    from tiercel.cli.workflowfile import WorkflowFileError, load_workflow

    overrides = {}
    for item in variables:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise UserError(f"var: {item!r} must be written NAME=VALUE")
        overrides[key] = value
    try:
        request = load_workflow(file, overrides)
    except WorkflowFileError as exc:
        raise UserError(str(exc)) from None
    with client(url, token) as c:
        data = c.submit_workflow(request)
    if as_json:
        print_json(data)
        return
    jobs = ", ".join(f"{j['name']}={j['id']}" for j in data["jobs"])
    console.print(f"submitted workflow {data['id']} ({data['name']}): {len(data['jobs'])} jobs: {jobs}")


def _table(data: dict[str, Any]) -> None:
    console.print(f"workflow {data['id']} ({data['name']}): [{STATE_STYLE.get(data['state'], '')}]{data['state']}[/]")
    table = make_table("JOB", "ID", "STATE", "TASKS", "QUEUED", "RUNNING", "DONE", "FAILED", "CANCELLED", "WAITING",
                       right=("ID", "TASKS", "QUEUED", "RUNNING", "DONE", "FAILED", "CANCELLED"), wrap=("WAITING",))
    for j in data["jobs"]:
        table.add_row(j["name"], str(j["id"]), f"[{STATE_STYLE.get(j['state'], '')}]{j['state']}[/]", str(j["total"]),
                      str(j["queued"]), str(j["running"]), str(j["done"]), str(j["failed"]), str(j["cancelled"]),
                      j.get("reason") or j.get("waiting") or "-")
    console.print(table)


@workflow.command(context_settings=CONTEXT_SETTINGS)
@click.argument("workflow_id", type=int)
@url_option
@token_option
@json_option
@friendly
def status(workflow_id: int, url: str | None, token: str | None, as_json: bool) -> None:
    """A workflow's state, and each job's state and progress."""
    with client(url, token) as c:
        data = c.workflow(workflow_id)
    if as_json:
        print_json(data)
    else:
        _table(data)


@workflow.command(name="list", context_settings=CONTEXT_SETTINGS)
@click.option("--all", "everyone", is_flag=True, help="Everyone's (admins).")
@url_option
@token_option
@json_option
@friendly
def listed(everyone: bool, url: str | None, token: str | None, as_json: bool) -> None:
    """Your workflows, the newest first."""
    with client(url, token) as c:
        rows = c.workflows(everyone)
    if as_json:
        print_json(rows)
        return
    table = make_table("ID", "NAME", "STATE", "JOBS", "TASKS", "DONE", "FAILED", "AGE",
                       right=("ID", "JOBS", "TASKS", "DONE", "FAILED", "AGE"))
    now = time.time()
    for w in rows:
        jobs = w["jobs"]
        table.add_row(str(w["id"]), w["name"], w["state"], str(len(jobs)), str(sum(j["total"] for j in jobs)),
                      str(sum(j["done"] for j in jobs)), str(sum(j["failed"] for j in jobs)), age(now - w["submitted"]))
    console.print(table)


@workflow.command(context_settings=CONTEXT_SETTINGS)
@click.argument("workflow_id", type=int)
@click.option("--timeout", type=float, metavar="SECONDS", help="Give up after this long (exit status 124).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@url_option
@token_option
@json_option
@friendly
def wait(workflow_id: int, timeout: float | None, quiet: bool, url: str | None, token: str | None,
         as_json: bool) -> None:
    """Wait for every job of a workflow, with a progress bar over all its tasks. Exit status 1 if it
    did not end done."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from tiercel.client import WaitTimeout

    with client(url, token) as c, Progress(TextColumn(f"[bold]workflow {workflow_id}[/]"), BarColumn(),
                                            MofNCompleteColumn(), TextColumn("{task.fields[detail]}"),
                                            TimeElapsedColumn(), console=console,
                                            disable=quiet or as_json) as bar:
        task = bar.add_task("wait", total=None, detail="")

        def show(data: dict[str, Any]) -> None:
            jobs = data["jobs"]
            ended = sum(j["done"] + j["failed"] + j["cancelled"] for j in jobs)
            running = [j["name"] for j in jobs if j["state"] == "running"]
            bar.update(task, total=sum(j["total"] for j in jobs), completed=ended,
                       detail=("running: " + ", ".join(running)) if running else data["state"])

        try:
            data = c.wait_workflow(workflow_id, timeout=timeout, progress=show)
        except WaitTimeout as exc:
            errors.print(f"[yellow]timeout:[/] {exc}")
            raise click.exceptions.Exit(124) from None
    if as_json:
        print_json(data)
    else:
        _table(data)
    sys.exit(0 if data["state"] == "done" else 1)


@workflow.command(context_settings=CONTEXT_SETTINGS)
@click.argument("workflow_id", type=int)
@url_option
@token_option
@json_option
@friendly
def cancel(workflow_id: int, url: str | None, token: str | None, as_json: bool) -> None:
    """Cancel every job of a workflow that has not ended."""
    with client(url, token) as c:
        data = c.json("POST", f"/v1/workflows/{workflow_id}/cancel")
    if as_json:
        print_json(data)
    else:
        console.print(f"workflow {workflow_id}: {data['state']}")


@workflow.command(context_settings=CONTEXT_SETTINGS)
@click.argument("workflow_id", type=int)
@url_option
@token_option
@json_option
@friendly
def retry(workflow_id: int, url: str | None, token: str | None, as_json: bool) -> None:
    """Run again what failed or was cancelled, and what waited for it; nothing that finished runs again."""
    with client(url, token) as c:
        data = c.json("POST", f"/v1/workflows/{workflow_id}/retry")
    if as_json:
        print_json(data)
    else:
        console.print(f"workflow {workflow_id}: {data['tasks']} task(s) run again; "
                      f"'tiercel workflow wait {workflow_id}' follows them")
