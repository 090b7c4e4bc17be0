"""``tiercel``: submit, watch, cancel and collect many-task jobs."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click

from tiercel import __version__
from tiercel.cli.common import (
    CONTEXT_SETTINGS,
    UserError,
    age,
    client,
    console,
    errors,
    friendly,
    jobs_table,
    json_option,
    make_table,
    print_json,
    token_option,
    url_option,
)
from tiercel.cli.progress import wait_with_progress
from tiercel.client import WaitTimeout
from tiercel.core.problems import Problem
from tiercel.jobfiles import load_job_file
from tiercel.jobs import spec_from_mapping

CONTEXT = CONTEXT_SETTINGS


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, prog_name="tiercel")
def cli() -> None:
    """Tiercel: run thousands to millions of tasks on whatever you have.

    \b
    On a laptop, one command does it all:
      tiercel run --workers 4 --queue 1000 -- ./runtask.sh
    With a manager and workers:
      tiercel manager &                      # prints the URL and token files
      tiercel worker --slots 8 &             # on each machine (set TIERCEL_URL)
      tiercel submit --queue 10000 -- ~/runtask.sh
      tiercel wait 1; tiercel logs 1 --task 7

    Every command reads TIERCEL_URL and TIERCEL_TOKEN.
    """


def job_fields(
    queue: int | None, array: str | None, requires: tuple[str, ...], cleanup: str | None, retries: int | None,
    walltime: str | None, env: tuple[str, ...], cwd: str | None, name: str | None, no_index: bool,
    cpus: int | None, memory: str | None, priority: int | None, file: Path | None, command: tuple[str, ...],
    queue_name: str | None = None, reservation: str | None = None, site: str | None = None,
) -> dict[str, Any]:
    """Merge a job file with the command line (the command line wins) and validate locally."""
    data: dict[str, Any] = {}
    if file is not None:
        loaded = load_job_file(file)
        if isinstance(loaded, Problem):
            raise UserError(loaded.message())
        data.update(loaded)
    if command:
        data["command"] = list(command)
    for key, value in (("queue", queue), ("array", array), ("cleanup", cleanup), ("retries", retries),
                       ("walltime", walltime), ("cwd", cwd), ("name", name), ("cpus", cpus),
                       ("memory", memory), ("priority", priority), ("queue_name", queue_name),
                       ("reservation", reservation), ("site", site)):
        if value is not None:
            data[key] = value
    if queue is not None:
        data.pop("array", None)
    if array is not None:
        data.pop("queue", None)
    if requires:
        data["requires"] = [t for item in requires for t in item.split(",") if t]
    if env:
        if not isinstance(data.get("env", {}), dict):
            raise UserError(f"env: {data['env']!r} in the job file must be a table of KEY = \"VALUE\"")
        pairs = dict(data.get("env", {}))
        for item in env:
            key, eq, value = item.partition("=")
            if not eq or not key:
                raise UserError(f"env: {item!r} must be written KEY=VALUE")
            pairs[key] = value
        data["env"] = pairs
    if no_index:
        data["append_index"] = False
    if "command" not in data:
        raise UserError("command: is required: put it after '--' (tiercel submit --queue 10 -- ./task.sh) "
                        "or in the job file")
    spec = spec_from_mapping(data)
    if isinstance(spec, Problem):
        raise UserError(spec.message())
    return data


def job_options(fn: Any) -> Any:
    options = [
        click.option("--queue", "-n", type=int, metavar="N", help="Run N tasks, indexes 0..N-1 (Kestrel's queue)."),
        click.option("--array", "-a", metavar="RANGES", help="Index ranges, e.g. 0-99,200-299 or 0-999:10."),
        click.option("--requires", "-r", multiple=True, metavar="TAG",
                     help="Tag a worker must have (repeat, or comma-separate)."),
        click.option("--cleanup", metavar="CMD", help="Run once on each worker that ran tasks, after the job."),
        click.option("--retries", type=int, metavar="K", help="Retry a failed task up to K times."),
        click.option("--walltime", "-t", metavar="TIME", help="Kill a task after TIME (90s, 10m, 1h30m)."),
        click.option("--env", "-e", multiple=True, metavar="K=V", help="Set an environment variable (repeat)."),
        click.option("--cwd", metavar="DIR", help="Working directory of the tasks."),
        click.option("--name", metavar="NAME", help="A name to show in status."),
        click.option("--no-index", is_flag=True, help="Do not append the task index to the command."),
        click.option("--cpus", type=int, metavar="N", help="Slots each task takes (default 1)."),
        click.option("--memory", metavar="SIZE", help="Memory each task needs (512M, 4G)."),
        click.option("--priority", type=int, metavar="P", help="Higher runs first (-1000..1000)."),
        click.option("--queue-name", "-Q", metavar="NAME", help="The queue (see 'tiercel queues')."),
        click.option("--reservation", metavar="NAME", help="Run inside this advance reservation."),
        click.option("--site", metavar="NAME", help="Run on this site (default: the scheduler chooses; "
                                                    "see 'tiercel sites')."),
        click.option("--file", "-f", type=click.Path(path_type=Path, dir_okay=False), metavar="FILE",
                     help="Job file: TOML [job] table, or a Kestrel .job file."),
    ]
    for opt in reversed(options):
        fn = opt(fn)
    return fn


@cli.command(context_settings={**CONTEXT, "allow_interspersed_args": False})
@job_options
@url_option
@token_option
@json_option
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@friendly
def submit(url: str | None, token: str | None, as_json: bool, **kw: Any) -> None:
    """Submit a job: COMMAND runs once per index, with the index in TIERCEL_TASK_INDEX.

    \b
    Examples:
      tiercel submit --queue 10000 -- ~/runtask.sh
      tiercel submit --array 0-99,200-299 --retries 2 --walltime 10m -- python sim.py
      tiercel submit --file sweep.job
    The index is also appended as the last argument unless --no-index is given.
    """
    data = job_fields(**kw)
    with client(url, token) as c:
        job = c.submit(**data)
    if as_json:
        print_json(job.data)
    else:
        console.print(f"submitted job [bold]{job.id}[/] ({job.data['total']} tasks)")


@cli.command(context_settings=CONTEXT)
@click.argument("job_id", type=int, required=False)
@click.option("--all", "everyone", is_flag=True, help="Admins: show every user's jobs.")
@url_option
@token_option
@json_option
@friendly
def status(job_id: int | None, everyone: bool, url: str | None, token: str | None, as_json: bool) -> None:
    """Show your jobs, or one job, with task counts per state."""
    with client(url, token) as c:
        jobs = [c.job(job_id).data] if job_id is not None else c.jobs(everyone)
    if as_json:
        print_json(jobs[0] if job_id is not None else jobs)
        return
    if not jobs:
        console.print("no jobs yet: submit one with 'tiercel submit --queue N -- COMMAND'")
        return
    owners = {j["owner"] for j in jobs}
    console.print(jobs_table(jobs, show_owner=len(owners) > 1))
    for j in jobs:
        if j.get("waiting") and job_id is not None:
            console.print(f"[yellow]waiting:[/] {j['waiting']}")
        if j.get("reason") and job_id is not None:
            from rich.markup import escape

            console.print(f"[yellow]ended early:[/] {escape(j['reason'])}")


@cli.command(context_settings=CONTEXT)
@click.argument("job_id", type=int)
@click.option("--timeout", type=float, metavar="SECONDS", help="Give up after this long (exit status 124).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@url_option
@token_option
@json_option
@friendly
def wait(job_id: int, timeout: float | None, quiet: bool, url: str | None, token: str | None,
         as_json: bool) -> None:
    """Wait for a job with a progress bar. Exit status 1 if any task failed."""
    with client(url, token) as c:
        job = c.job(job_id)
        try:
            job = wait_with_progress(job, show=not (quiet or as_json), timeout=timeout)
        except WaitTimeout as exc:
            errors.print(f"[yellow]timeout:[/] {exc}")
            raise click.exceptions.Exit(124) from None
    if as_json:
        print_json(job.data)
    else:
        print_summary(job.data)
    sys.exit(exit_status(job.data))


def exit_status(data: dict[str, Any]) -> int:
    return 0 if data["state"] == "done" else 1


def print_summary(data: dict[str, Any], wall: float | None = None) -> None:
    color = {"done": "green", "failed": "red", "cancelled": "magenta"}.get(data["state"], "")
    line = (f"job {data['id']} [{color}]{data['state']}[/]: {data['done']} done, {data['failed']} failed, "
            f"{data['cancelled']} cancelled of {data['total']}")
    if wall is not None and wall > 0:
        line += f" in {wall:.2f}s ({data['total'] / wall:,.0f} tasks/s)"
    console.print(line)
    if data["failed"]:
        console.print(f"see failures with: tiercel logs {data['id']} --failed --stderr")


@cli.command(context_settings=CONTEXT)
@click.argument("job_id", type=int, required=False)
@url_option
@token_option
@json_option
@friendly
def cancel(job_id: int | None, url: str | None, token: str | None, as_json: bool) -> None:
    """Cancel a job, or all of your unfinished jobs when no JOB_ID is given."""
    with client(url, token) as c:
        if job_id is None:
            ids = c.cancel_all()
            if as_json:
                print_json({"cancelled": ids})
            else:
                console.print(f"cancelled {len(ids)} job(s)" + (f": {', '.join(map(str, ids))}" if ids else ""))
            return
        job = c.job(job_id).cancel()
    if as_json:
        print_json(job.data)
    else:
        console.print(f"job {job.id}: {job.state}")


@cli.command(context_settings=CONTEXT)
@click.argument("job_id", type=int)
@click.option("--task", "-i", type=int, metavar="INDEX", help="Only this task.")
@click.option("--stderr", is_flag=True, help="Show standard error instead of standard output.")
@click.option("--failed", is_flag=True, help="Only tasks that failed.")
@url_option
@token_option
@friendly
def logs(job_id: int, task: int | None, stderr: bool, failed: bool, url: str | None, token: str | None) -> None:
    """Print the output of a job's tasks (the attempt that settled each task)."""
    with client(url, token) as c:
        job = c.job(job_id)
        stream = "stderr" if stderr else "stdout"
        if failed:
            rows = [r for r in job.results() if r.outcome in ("failed", "timeout")]
            for r in rows:
                sys.stdout.write(f"==> task {r.index} (attempt {r.attempt}, {r.outcome}, exit {r.exit_code}) <==\n")
                sys.stdout.flush()
                sys.stdout.buffer.write(job.output(r.index, stream))
            return
        headers = task is None and int(job.data["total"]) > 1
        resp = c.request("GET", f"/v1/jobs/{job_id}/logs",
                         params={"stream": stream, "headers": headers, **({"task": task} if task is not None else {})})
        sys.stdout.buffer.write(resp.content)


@cli.command(context_settings=CONTEXT)
@url_option
@token_option
@json_option
@friendly
def workers(url: str | None, token: str | None, as_json: bool) -> None:
    """List workers: name, host, slots busy/total, tags, state, link, last seen.

    STATE is connected, draining (takes no new tasks: leaving, or an XMPP worker whose
    presence says busy) or away (disconnected; its tasks wait for it until the silence
    time-out). LINK is how it reaches the manager: websocket, xmpp, or site for a batch
    system's native arrays (which are polled, not heard from: LAST SEEN is -). REFUSED
    counts reports about tasks the worker was never handed, which were dropped.
    """
    with client(url, token) as c:
        rows = c.workers()
    if as_json:
        print_json(rows)
        return
    if not rows:
        console.print("no workers connected: start one with 'tiercel worker --slots N'")
        return
    refusals = any(w.get("refused") for w in rows)
    table = make_table("NAME", "HOST", "BUSY", "SLOTS", "TAGS", "STATE", "LINK", "LAST SEEN", "TASKS RUN",
                       *(["REFUSED"] if refusals else []), right=("BUSY", "SLOTS", "LAST SEEN", "TASKS RUN", "REFUSED"))
    now = time.time()
    for w in rows:
        state = "[yellow]away[/]" if not w["connected"] else "draining" if w.get("draining") else "connected"
        seen = "-" if w.get("last_seen") is None else age(now - w["last_seen"]) + " ago"
        table.add_row(w["name"], w["host"], str(w["busy"]), str(w["slots"]), ",".join(w["tags"]) or "-",
                      state, w.get("link") or "-", seen, str(w["tasks_run"]),
                      *([f"[red]{w['refused']}[/]" if w.get("refused") else "0"] if refusals else []))
    console.print(table)


@cli.command(context_settings=CONTEXT)
@url_option
@token_option
@json_option
@friendly
def queues(url: str | None, token: str | None, as_json: bool) -> None:
    """List queues: their policy chains, limits and load."""
    with client(url, token) as c:
        rows = c.json("GET", "/v1/queues")
    if as_json:
        print_json(rows)
        return
    table = make_table("QUEUE", "POLICIES", "LIMITS", "JOBS", "QUEUED", "RUNNING", right=("JOBS", "QUEUED", "RUNNING"))
    for q in rows:
        limits = ", ".join(f"{k}={v}" for k, v in q["limits"].items()) or "-"
        name = q["name"] + (" (default)" if q["default"] else "")
        table.add_row(name, " > ".join(q["policies"]), limits, str(q["jobs"]), str(q["queued"]), str(q["running"]))
    console.print(table)


@cli.command(context_settings=CONTEXT)
@url_option
@token_option
@json_option
@friendly
def sites(url: str | None, token: str | None, as_json: bool) -> None:
    """List sites: the pool and each batch system, their mode, state, slots and work (CSF4's cluster query)."""
    from rich.markup import escape

    with client(url, token) as c:
        rows = c.json("GET", "/v1/sites")
    if as_json:
        print_json(rows)
        return
    numbers = ("SLOTS", "FREE", "QUEUED", "RUNNING", "BATCH JOBS", "LAST POLL")
    table = make_table("SITE", "KIND", "MODE", "STATE", *numbers, "LAST ERROR", right=numbers, wrap=("LAST ERROR",))
    now = time.time()
    for r in rows:
        state = "[green]ok[/]" if r["state"] == "ok" else f"[red]{r['state']}[/]"
        poll = "-" if r["last_poll"] is None else age(now - r["last_poll"]) + " ago"
        table.add_row(r["name"], r["kind"], r["mode"], state, str(r["slots_total"]), str(r["slots_free"]),
                      str(r["queued"]), str(r["running"]), str(r["batch_jobs"]), poll,
                      escape(r["last_error"] or "-"))
    console.print(table)


@cli.command(context_settings=CONTEXT)
@click.argument("job_id", type=int)
@url_option
@token_option
@json_option
@friendly
def explain(job_id: int, url: str | None, token: str | None, as_json: bool) -> None:
    """Say why a job's tasks are not running: which policy or requirement holds them, where."""
    from rich.markup import escape

    with client(url, token) as c:
        data = c.json("GET", f"/v1/jobs/{job_id}/explain")
    if as_json:
        print_json(data)
        return
    job = data["job"]
    console.print(f"job {job['id']} in queue [bold]{escape(data['queue'])}[/]: {job['state']}, "
                  f"{job['queued']} queued, {job['running']} running, {job['done']} done")
    verdict = data["verdict"]
    if job["state"] in ("done", "failed", "cancelled"):
        console.print("it has ended: nothing waits")
        return
    if verdict is None:
        console.print("nothing holds it: " + ("its tasks are running or about to be sent"
                                               if job["queued"] == 0 or job["running"] else "it goes out next"))
    else:
        who = f"{verdict['policy']}: " if verdict["policy"] else ""
        console.print(f"[yellow]waiting[/] ({verdict['code']}) — {escape(who + verdict['reason'])}")
    if data.get("site_reason"):
        console.print(f"site: {escape(data['site_reason'])}")
    if not data["workers"]:
        console.print("no worker is connected: start one with 'tiercel worker'")
    for w in data["workers"]:
        mark = "[green]ok[/]" if w["code"] == "ok" else f"[yellow]{w['code']}[/]"
        console.print(f"  {escape(w['worker'])}: {mark} {escape(w['reason'])}")


@cli.group(context_settings=CONTEXT)
def reserve() -> None:
    """Advance reservations: slots of a site held for some users over a window (admins)."""


@reserve.command("create", context_settings=CONTEXT)
@click.option("--site", default="pool", show_default=True, help="Whose slots to reserve.")
@click.option("--slots", type=int, required=True, metavar="N", help="How many slots.")
@click.option("--start", required=True, metavar="WHEN", help="now, +10m, or a time such as 2026-11-21T10:00.")
@click.option("--end", required=True, metavar="WHEN", help="As --start; +2h means two hours after the start.")
@click.option("--users", default="", metavar="A,B", help="Who may use it (default: you).")
@click.option("--name", metavar="NAME", help="Its name (jobs say --reservation NAME).")
@click.option("--mirror", is_flag=True,
              help="Also reserve the cores in the site's batch system (Slurm sites: scontrol create "
                   "reservation), so its other users cannot take them either.")
@url_option
@token_option
@json_option
@friendly
def reserve_create(site: str, slots: int, start: str, end: str, users: str, name: str | None, mirror: bool,
                   url: str | None, token: str | None, as_json: bool) -> None:
    """Reserve slots for a window: only the named users' jobs with --reservation use them then.

    Jobs of the reservation run on its site. With --mirror, the site's batch system holds the
    cores too, and the reservation's arrays (native mode) or pilots (pilot mode) go into it.
    """
    body: dict[str, Any] = {"site": site, "slots": slots, "start": start, "end": end,
                            "users": [u for u in users.split(",") if u], "mirror": mirror}
    if name:
        body["name"] = name
    with client(url, token) as c:
        r = c.json("POST", "/v1/reservations", json=body)
    if as_json:
        print_json(r)
    else:
        console.print(f"reservation [bold]{r['name']}[/]: {r['slots']} slot(s) of {r['site']} "
                      f"from {_when(r['start'])} to {_when(r['end'])} for {', '.join(r['users'])}"
                      + (f"; mirrored as {r['mirror']}" if r.get("mirror") else ""))


@reserve.command("list", context_settings=CONTEXT)
@url_option
@token_option
@json_option
@friendly
def reserve_list(url: str | None, token: str | None, as_json: bool) -> None:
    """List reservations."""

    with client(url, token) as c:
        rows = c.json("GET", "/v1/reservations")
    if as_json:
        print_json(rows)
        return
    if not rows:
        console.print("no reservations")
        return
    table = make_table("NAME", "SITE", "SLOTS", "START", "END", "USERS", "MIRROR", right=("SLOTS",))
    for r in rows:
        table.add_row(r["name"], r["site"], str(r["slots"]), _when(r["start"]), _when(r["end"]), ",".join(r["users"]),
                      r.get("mirror") or "-")
    console.print(table)


@reserve.command("delete", context_settings=CONTEXT)
@click.argument("name")
@url_option
@token_option
@friendly
def reserve_delete(name: str, url: str | None, token: str | None) -> None:
    """Delete a reservation: its slots are free for everyone again."""
    with client(url, token) as c:
        out = c.json("DELETE", f"/v1/reservations/{name}")
    console.print(f"reservation {name} deleted")
    if out.get("warning"):
        from rich.markup import escape

        errors.print(f"[yellow]warning:[/] {escape(out['warning'])}")


def _when(ts: float) -> str:
    import datetime

    return datetime.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


@cli.group(context_settings=CONTEXT)
def token() -> None:
    """Manage access tokens (admins)."""


@token.command("create", context_settings=CONTEXT)
@click.option("--user", required=True, metavar="NAME", help="Who the token is for.")
@click.option("--role", type=click.Choice(["user", "admin", "worker"]), default="user", show_default=True)
@url_option
@token_option
@json_option
@friendly
def token_create(user: str, role: str, url: str | None, token: str | None, as_json: bool) -> None:
    """Create a token for a user (shown once; only its digest is stored)."""
    with client(url, token) as c:
        data = c.json("POST", "/v1/tokens", json={"user": user, "role": role})
    if as_json:
        print_json(data)
    else:
        console.print(data["token"])


@token.command("list", context_settings=CONTEXT)
@url_option
@token_option
@json_option
@friendly
def token_list(url: str | None, token: str | None, as_json: bool) -> None:
    """List tokens: id, user, role, when made and last used (never the secret: only a digest is kept)."""
    with client(url, token) as c:
        rows = c.json("GET", "/v1/tokens")
    if as_json:
        print_json(rows)
        return
    table = make_table("ID", "USER", "ROLE", "CREATED", "LAST USED", "LABEL")
    for t in rows:
        table.add_row(t["id"], t["user"], t["role"], _when(t["created"]),
                      _when(t["last_used"]) if t.get("last_used") else "never", t.get("label") or "-")
    console.print(table)


@token.command("revoke", context_settings=CONTEXT)
@click.argument("token_id", metavar="ID")
@url_option
@token_option
@json_option
@friendly
def token_revoke(token_id: str, url: str | None, token: str | None, as_json: bool) -> None:
    """Revoke a token by its ID (from 'tiercel token list'): it is refused at once, and the
    worker connections and event streams it opened are closed."""
    with client(url, token) as c:
        data = c.json("DELETE", f"/v1/tokens/{token_id}")
    if as_json:
        print_json(data)
    else:
        console.print(f"token {data['id']} ({data['user']}, {data['role']}) revoked")


def main() -> None:
    from tiercel.cli import daemons, jobflow, run, sim, users  # noqa: F401  (registers their commands)

    cli(prog_name="tiercel")
