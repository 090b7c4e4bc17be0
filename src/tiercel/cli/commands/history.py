"""``tiercel history``, ``forget`` and ``completion``: ended jobs, dropping their outputs, and the shell."""

from __future__ import annotations

from typing import Any

import click
from click.shell_completion import get_completion_class

from tiercel.cli.common import (
    CONTEXT_SETTINGS,
    STATE_STYLE,
    UserError,
    age,
    client,
    console,
    friendly,
    json_option,
    make_table,
    print_json,
    token_option,
    url_option,
    when,
)

SHELLS = ("bash", "zsh", "fish")


def size(n: int) -> str:
    """Bytes as a person reads them: 812 bytes, 4.2 MB."""
    value, unit = float(n), "bytes"
    for bigger in ("KB", "MB", "GB", "TB"):
        if value < 1024:
            break
        value, unit = value / 1024, bigger
    return f"{n} bytes" if unit == "bytes" else f"{value:,.1f} {unit}"


@click.command(context_settings=CONTEXT_SETTINGS)
@click.option("--user", "-u", metavar="USER", help="Admins: this user's jobs.")
@click.option("--all", "everyone", is_flag=True, help="Admins: every user's jobs.")
@click.option("--since", metavar="WHEN", help="Ended since: 2d, 12h, 30m (back from now), 2026-11-21 or "
                                               "2026-11-21T10:00.")
@click.option("--state", metavar="STATE", help="done, failed or cancelled (several separated by commas).")
@click.option("--limit", "-n", type=click.IntRange(1, 10_000), default=50, show_default=True,
              help="At most this many jobs.")
@url_option
@token_option
@json_option
@friendly
def history(user: str | None, everyone: bool, since: str | None, state: str | None, limit: int,
            url: str | None, token: str | None, as_json: bool) -> None:
    """Show jobs that ended, the last ended first: their counts, how long they took and where they ran.

    \b
    Examples:
      tiercel history
      tiercel history --since 2d --state failed
      tiercel history --all --limit 200          # admins: everyone's
    WALL is from submission to the end; CPU is the user and system time of its tasks' processes,
    summed over every attempt ('-' where no worker measured it: native batch arrays).
    """
    with client(url, token) as c:
        jobs = c.history(user=user, everyone=everyone, since=since, state=state, limit=limit)
    if as_json:
        print_json(jobs)
        return
    if not jobs:
        console.print("no ended jobs" + (" match" if since or state or user else " yet"))
        return
    show_owner = len({j["owner"] for j in jobs}) > 1
    table = make_table("ID", "NAME", *(["OWNER"] if show_owner else []), "STATE", "TASKS", "DONE", "FAILED",
                       "CANCELLED", "ENDED", "WALL", "CPU", "WHERE",
                       right=("TASKS", "DONE", "FAILED", "CANCELLED", "WALL", "CPU"), wrap=("WHERE",))
    for j in jobs:
        name = j["name"] or " ".join(j["command"])[:30]
        style = STATE_STYLE.get(j["state"], "")
        table.add_row(str(j["id"]), name, *([j["owner"]] if show_owner else []), f"[{style}]{j['state']}[/]",
                      str(j["total"]), str(j["done"]), str(j["failed"]), str(j["cancelled"]), when(j["ended"]),
                      age(j["wall"]), _cpu(j["cpu"]), ", ".join(j["places"]) or "-")
    console.print(table)


@click.command(context_settings=CONTEXT_SETTINGS)
@click.argument("job_ids", metavar="JOB...", type=int, nargs=-1, required=True)
@url_option
@token_option
@json_option
@friendly
def forget(job_ids: tuple[int, ...], url: str | None, token: str | None, as_json: bool) -> None:
    """Drop the outputs (stdout, stderr) of ended jobs from the manager; their tasks and counts stay.

    Every job is checked first: if one is unknown, not yours or not ended, nothing is dropped.
    """
    chosen = list(dict.fromkeys(job_ids))
    answers: list[dict[str, Any]] = []
    with client(url, token) as c:
        jobs = [c.job(job_id) for job_id in chosen]
        for job in jobs:
            if not job.finished:
                raise UserError(f"job {job.id} has not ended ({job.state}): nothing was dropped; wait for it "
                                f"('tiercel wait {job.id}') or cancel it first")
        for job in jobs:
            answers.append(job.forget())
    if as_json:
        print_json(answers)
        return
    for a in answers:
        if a["rows"]:
            console.print(f"job {a['job']}: dropped the outputs of {a['rows']:,} attempt(s), {size(a['bytes'])}")
        else:
            console.print(f"job {a['job']}: no outputs to drop")


@click.command(context_settings=CONTEXT_SETTINGS)
@click.argument("shell", type=click.Choice(SHELLS))
def completion(shell: str) -> None:
    """Print the shell completion script for bash, zsh or fish.

    \b
    Enable it with:
      bash:  eval "$(tiercel completion bash)"   (in ~/.bashrc)
      zsh:   eval "$(tiercel completion zsh)"    (in ~/.zshrc)
      fish:  tiercel completion fish > ~/.config/fish/completions/tiercel.fish
    """
    root = click.get_current_context().find_root()
    prog = root.info_name or "tiercel"
    # What click prints for _TIERCEL_COMPLETE=bash_source tiercel (the variable is named after the program).
    variable = f"_{prog.replace('-', '_').replace('.', '_')}_COMPLETE".upper()
    script = get_completion_class(shell)
    assert script is not None
    click.echo(script(root.command, {}, prog, variable).source().encode(), nl=False)  # as click prints it


def _cpu(seconds: float | None) -> str:
    """CPU time as the table shows it: tenths under a minute (tasks are often short), else as ages are."""
    if seconds is None:
        return "-"
    return f"{seconds:.1f}s" if seconds < 60 else age(seconds)
