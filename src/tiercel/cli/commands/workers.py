"""``tiercel workers``: who runs the tasks, and how each is doing."""

from __future__ import annotations

import time

import click

from tiercel.cli.common import (
    CONTEXT_SETTINGS,
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
