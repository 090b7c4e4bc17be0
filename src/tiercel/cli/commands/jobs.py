"""``tiercel submit``, ``status``, ``wait``, ``cancel``, ``logs`` and ``explain``: a job from the user's side."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from tiercel.cli.common import (
    CONTEXT_SETTINGS,
    UserError,
    client,
    console,
    errors,
    exit_status,
    friendly,
    jobs_table,
    json_option,
    print_json,
    print_summary,
    token_option,
    url_option,
    when,
)
from tiercel.cli.jobopts import job_fields, job_options
from tiercel.cli.progress import wait_with_progress
from tiercel.client import WaitTimeout


@click.command(context_settings={**CONTEXT_SETTINGS, "allow_interspersed_args": False})
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
      tiercel submit --each-line inputs.txt --stdout 'out/{index}.txt' -- ./run.sh
      tiercel submit --queue 300 --input 'gfarm:///data/sample_{index}.bam' \\
          --output 'gfarm:///results/{index}.out' -- ./align.sh
    The index (with --each-line, the task's line) is also appended as the last argument unless
    --no-index is given.
    """
    data = job_fields(**kw, check=False)
    plain = kw.get("file") is None and kw.get("each_line") is None and kw.get("each_json") is None
    with client(url, token) as c:
        # from the command line alone the fields already have the API's types: sent as they are
        job = c.submit_checked_by_manager(data) if plain else c.submit(**data)
    if as_json:
        print_json(job.data)
    else:
        console.print(f"submitted job [bold]{job.id}[/] ({job.data['total']} tasks)")


@click.command(context_settings=CONTEXT_SETTINGS)
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


@click.command(context_settings=CONTEXT_SETTINGS)
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


@click.command(context_settings=CONTEXT_SETTINGS)
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


@click.command(context_settings=CONTEXT_SETTINGS)
@click.argument("job_id", type=int)
@click.option("--task", "-i", type=int, metavar="INDEX", help="Only this task.")
@click.option("--stderr", is_flag=True, help="Show standard error instead of standard output.")
@click.option("--failed", is_flag=True, help="Only tasks that failed.")
@click.option("--follow", "-f", is_flag=True, help="Go on as tasks settle, until the job ends (settled tasks only).")
@click.option("--to", "directory", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="Write each task's stdout and stderr into DIR/INDEX.out and DIR/INDEX.err (non-empty ones).")
@click.option("--data", "data", is_flag=True,
              help="List the files the job's done tasks put into Gfarm (its --output), with the node each was "
                   "written on, instead of output (as 'tiercel job data' does).")
@url_option
@token_option
@json_option
@friendly
def logs(job_id: int, task: int | None, stderr: bool, failed: bool, follow: bool, directory: Path | None,
         data: bool, url: str | None, token: str | None, as_json: bool) -> None:
    """Print the output of a job's tasks in task order: the attempt that settled each task, else its latest.

    \b
    Examples:
      tiercel logs 7                    # every task's stdout, read a page at a time
      tiercel logs 7 --task 12 --stderr
      tiercel logs 7 --failed --stderr  # what went wrong, task by task
      tiercel logs 7 --follow           # tasks as they settle, until the job ends
      tiercel logs 7 --to out/          # out/0.out, out/0.err, ... (--json: a line of JSON per task)
      tiercel logs 7 --data             # TASK  URL  NODE: what it put into Gfarm, and where
    """
    if data and (stderr or failed or follow or directory is not None):
        raise UserError("data: lists the outputs of done tasks; it goes with --task and --json only")
    with client(url, token) as c:
        job = c.job(job_id)
        if data:
            from tiercel.cli.gfarm_outputs import gfarm_outputs, outputs_table

            rows = gfarm_outputs(job, task)
            if as_json:
                print_json({"job": job.id, "outputs": rows})
            elif rows:
                console.print(outputs_table(rows))
            else:
                console.print(f"job {job.id} put nothing into Gfarm" + (" (yet)" if not job.finished else ""))
        elif directory is not None:
            files, tasks = job.save_outputs(directory, task=task, failed=failed, follow=follow)
            if as_json:
                print_json({"job": job.id, "directory": str(directory), "files": files, "tasks": tasks})
            else:
                console.print(f"wrote {files} file(s) into {directory} from {tasks} task(s)", soft_wrap=True)
        else:
            headers = failed or (task is None and int(job.data["total"]) > 1)
            chunks = job.logs("stderr" if stderr else "stdout", task=task, failed=failed, headers=headers,
                              follow=follow, format="jsonl" if as_json else "text")
            write_out(chunks)
    if job.forgotten is not None:
        errors.print(f"note: the outputs of job {job.id} were dropped at {when(job.forgotten)} ('tiercel forget')")


def write_out(chunks: Iterator[bytes]) -> None:
    """Bytes to standard output as they come; a reader that went away (``| head``) ends it quietly."""
    out = sys.stdout.buffer
    try:
        for chunk in chunks:
            out.write(chunk)
            out.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing more for the closed pipe
        raise SystemExit(0) from None


@click.command(context_settings=CONTEXT_SETTINGS)
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
    if data.get("data"):
        _data_costs(data["data"])
    for f in data.get("forwarded", []):  # ranges of it at peer managers
        console.print(f"indexes {escape(f['indexes'])} forwarded to peer {escape(f['peer'])}: {escape(f['why'])} "
                      f"({f['state']}, epoch {f['epoch']}, {f['settled']}/{f['tasks']} settled)")
    if not data["workers"]:
        console.print("no worker is connected: start one with 'tiercel worker'")
    for w in data["workers"]:
        mark = "[green]ok[/]" if w["code"] == "ok" else f"[yellow]{w['code']}[/]"
        console.print(f"  {escape(w['worker'])}: {mark} {escape(w['reason'])}")


def _data_costs(data: dict[str, Any]) -> None:
    """The places its first waiting task could run, each with what its inputs cost there."""
    from rich.markup import escape
    from rich.table import Table

    if data.get("reason"):
        console.print(f"data: {escape(data['reason'])}")
    if not data["places"]:
        return
    table = Table(box=None, pad_edge=False, title_justify="left",
                  title=f"data cost of its first waiting task (copies at {data['copy_rate'] / 1e6:g} MB/s, "
                        f"{data['copies_under_way']} under way)")
    for col in ("WORKER", "NODE", "HOLDS INPUTS", "COPY BYTES", "COPY TIME"):
        table.add_column(col, justify="right" if col.startswith("COPY") else "left")
    for p in data["places"]:
        table.add_row(escape(p["worker"]), escape(p["node"] or "-"), "yes" if p["local"] else "no",
                      f"{p['copy_bytes']:,}", "-" if p["local"] else f"{p['copy_seconds']:g}s")
    console.print(table)
