"""``tiercel managers`` and ``tiercel store copy``: the managers on a store, and moving a store."""

from __future__ import annotations

import time
from typing import Any

import click

from tiercel.cli.common import (
    CONTEXT_SETTINGS,
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
)


@click.command(context_settings=CONTEXT_SETTINGS)
@url_option
@token_option
@json_option
@friendly
def managers(url: str | None, token: str | None, as_json: bool) -> None:
    """List the managers on this manager's store: which one is active, since when, the lease's epoch.

    On PostgreSQL several managers share one store: the one holding its lease is active, the
    others are standby and take over when it stops renewing it; EPOCH grows at every take-over.
    A manager on SQLite is the only one on its store. GONE: not seen for three leases.
    """
    with client(url, token) as c:
        rows: list[dict[str, Any]] = c.json("GET", "/v1/managers")
    if as_json:
        print_json(rows)
        return
    table = make_table("NAME", "URL", "ROLE", "SINCE", "EPOCH", "LAST SEEN", right=("EPOCH", "LAST SEEN"))
    now = time.time()
    for m in rows:
        role = {"active": "[green]active[/]", "gone": "[yellow]gone[/]"}.get(m["role"], m["role"])
        since = "-" if m.get("since") is None else age(now - m["since"]) + " ago"
        seen = "-" if m.get("seen") is None else age(m["seen"]) + " ago"
        table.add_row(m["name"] + (" *" if m.get("this") else ""), m["url"], role, since,
                      "-" if m.get("epoch") is None else str(m["epoch"]), seen)
    console.print(table)


@click.group(context_settings=CONTEXT_SETTINGS)
def store() -> None:
    """Work on a manager's store (SQLite in a state directory, or PostgreSQL)."""


@store.command(name="copy", context_settings=CONTEXT_SETTINGS)
@click.argument("src", metavar="SRC")
@click.argument("dst", metavar="DST")
@json_option
def copy_store(src: str, dst: str, as_json: bool) -> None:
    """Copy a manager's whole state from SRC into the new, empty store DST.

    \b
    SRC and DST are each a state directory (or its tiercel.db), or a postgresql:// URL:
      tiercel store copy ~/.local/state/tiercel postgresql://tiercel@db/tiercel
      tiercel store copy postgresql://tiercel@db/tiercel /srv/tiercel-state
    Jobs with every attempt and output, tokens, workers, reservations and sites' batch jobs go
    over. A manager may keep running on SRC (the copy reads one snapshot of it); work it does
    after the copy began is not copied. DST must be empty: a copy never merges two stores.
    """
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from tiercel.store.copy import CopyError, copy, is_url, open_store
    from tiercel.store.lease import LeaseLost, StoreUnreachable, hide_password

    shown_src, shown_dst = hide_password(src), hide_password(dst)
    if src == dst:
        raise UserError(f"{shown_src}: SRC and DST are the same store")
    try:
        source = open_store(src, source=True)
        if not is_url(dst):  # a new state directory is private, as the manager makes it
            from pathlib import Path

            from tiercel.manager import statedir

            path = Path(dst).expanduser()
            if path.is_dir() or not path.suffix:
                statedir.secure(path)
        target = open_store(dst, source=False)
        with Progress(SpinnerColumn(), TextColumn("copying: {task.completed:,} rows"), TimeElapsedColumn(),
                      console=console, transient=True, disable=as_json) as bar:
            task = bar.add_task("copy", total=None)
            started = time.perf_counter()
            done = copy(source, target, shown_dst, lambda n: bar.advance(task, n))
    except (CopyError, LeaseLost, StoreUnreachable) as exc:
        raise UserError(str(exc)) from None
    except Exception as exc:  # a store that failed under the copy: say so in one line
        raise UserError(f"the copy from {shown_src} to {shown_dst} failed: {type(exc).__name__}: {exc}; what was "
                        "copied so far stays in DST: remove it (a new database, or delete its tiercel.db) before "
                        "trying again") from None
    seconds = time.perf_counter() - started
    if as_json:
        print_json({"src": shown_src, "dst": shown_dst, "jobs": done.jobs, "attempts": done.attempts,
                    "tokens": done.tokens, "reservations": done.reservations, "seconds": round(seconds, 3)})
        return
    console.print(f"copied {done.jobs:,} jobs, {done.attempts:,} attempts, {done.tokens} tokens and "
                  f"{done.reservations} reservations from {shown_src} to {shown_dst} in {seconds:.1f} s")
