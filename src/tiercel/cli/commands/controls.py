"""``tiercel hold``, ``release``, ``update`` and ``retry``: changing a job after submitting it."""

from __future__ import annotations

import click

from tiercel.cli.common import (
    CONTEXT_SETTINGS,
    UserError,
    client,
    console,
    friendly,
    json_option,
    print_json,
    token_option,
    url_option,
)


def _state(data: dict[str, object]) -> str:
    return "held" if data.get("held") and data.get("state") in ("queued", "running") else str(data["state"])


def _hold_or_release(job_ids: tuple[int, ...], url: str | None, token: str | None, as_json: bool,
                     held: bool) -> None:
    with client(url, token) as c:
        jobs = [(c.job(j).hold() if held else c.job(j).release()).data for j in job_ids]
    if as_json:
        print_json(jobs)
        return
    for j in jobs:
        if held:
            console.print(f"job {j['id']}: held ({j['running']} running go on, {j['queued']} wait)")
        else:
            console.print(f"job {j['id']}: released ({j['queued']} waiting may start)")


@click.command(context_settings=CONTEXT_SETTINGS)
@click.argument("job_ids", nargs=-1, type=int, required=True, metavar="JOB...")
@url_option
@token_option
@json_option
@friendly
def hold(job_ids: tuple[int, ...], url: str | None, token: str | None, as_json: bool) -> None:
    """Hold jobs: no new task of theirs starts (running ones go on) until 'tiercel release'."""
    _hold_or_release(job_ids, url, token, as_json, True)


@click.command(context_settings=CONTEXT_SETTINGS)
@click.argument("job_ids", nargs=-1, type=int, required=True, metavar="JOB...")
@url_option
@token_option
@json_option
@friendly
def release(job_ids: tuple[int, ...], url: str | None, token: str | None, as_json: bool) -> None:
    """Release held jobs: their waiting tasks may start again."""
    _hold_or_release(job_ids, url, token, as_json, False)


@click.command(context_settings=CONTEXT_SETTINGS)
@click.argument("job_id", type=int)
@click.option("--priority", type=int, metavar="P", help="Higher runs first (-1000..1000).")
@click.option("--max-running", type=int, metavar="N", help="Run at most N of its tasks at once.")
@click.option("--no-max-running", is_flag=True, help="Remove its cap on running tasks.")
@click.option("--walltime", "-t", metavar="TIME", help="Per task (90s, 10m, 1h30m): only before any task started.")
@url_option
@token_option
@json_option
@friendly
def update(job_id: int, priority: int | None, max_running: int | None, no_max_running: bool,
           walltime: str | None, url: str | None, token: str | None, as_json: bool) -> None:
    """Change a job after submitting it: its priority and cap on running tasks at any time, its
    walltime only while none of its tasks has started (Slurm's scontrol update)."""
    if max_running is not None and no_max_running:
        raise UserError("max-running: cannot be given together with --no-max-running (choose one)")
    if priority is None and max_running is None and walltime is None and not no_max_running:
        raise UserError("update: give at least one of --priority, --max-running, --no-max-running, --walltime")
    with client(url, token) as c:
        data = c.job(job_id).update(priority=priority, walltime=walltime, max_running=max_running,
                                    no_max_running=no_max_running).data
    if as_json:
        print_json(data)
        return
    cap = "no cap" if data.get("max_running") is None else f"at most {data['max_running']} running"
    console.print(f"job {data['id']}: priority {data.get('priority', 0)}, {cap} ({_state(data)})")


@click.command(context_settings=CONTEXT_SETTINGS)
@click.argument("job_id", type=int)
@click.option("--failed", is_flag=True, help="Its tasks that failed (the default).")
@click.option("--cancelled", is_flag=True, help="Its tasks that were cancelled before they ended.")
@click.option("--tasks", metavar="RANGES", help="These tasks, e.g. 3,7-9 (any that ended).")
@url_option
@token_option
@json_option
@friendly
def retry(job_id: int, failed: bool, cancelled: bool, tasks: str | None, url: str | None, token: str | None,
          as_json: bool) -> None:
    """Run ended tasks of a job again, as new attempts of the same job (their history is kept).

    Works on a running job and on one that ended (it runs again). Each task gets the job's
    retries afresh.
    """
    if tasks is not None and (failed or cancelled):
        raise UserError("tasks: cannot be given together with --failed or --cancelled (choose one)")
    with client(url, token) as c:
        job = c.job(job_id)
        answer = job.retry(failed=failed, cancelled=cancelled, tasks=tasks)
    if as_json:
        print_json({**answer, "job": job.data})
        return
    console.print(f"job {job_id}: {answer['tasks']} task(s) run again ({answer['indexes']}); "
                  f"'tiercel wait {job_id}' follows them")
