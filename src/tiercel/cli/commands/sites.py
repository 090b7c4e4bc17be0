"""``tiercel sites``, ``queues`` and ``reserve``: where tasks can run, the queues that order them,
and the slots held for some users over a window (CSF4's cluster query, queue service and reservations)."""

from __future__ import annotations

import time
from typing import Any

import click

from tiercel.cli.common import (
    CONTEXT_SETTINGS,
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
    when,
)


@click.command(context_settings=CONTEXT_SETTINGS)
@url_option
@token_option
@json_option
@friendly
def sites(url: str | None, token: str | None, as_json: bool) -> None:
    """List sites: the pool and each batch system, their mode, state, slots and work (CSF4's cluster query);
    then the sites of peer managers, as PEER/SITE with mode peer, as their last summary described them."""
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


@click.command(context_settings=CONTEXT_SETTINGS)
@url_option
@token_option
@json_option
@friendly
def peers(url: str | None, token: str | None, as_json: bool) -> None:
    """List peer managers ([peers.NAME]): link state, round-trip time, last exchange, what they offer, work
    forwarded each way, and refusals (by this manager, and by the peer) with the last one said."""
    from rich.markup import escape

    with client(url, token) as c:
        rows = c.json("GET", "/v1/peers")
    if as_json:
        print_json(rows)
        return
    if not rows:
        console.print("no peers: add [peers.NAME] tables to the manager's config (see the README, Federation)")
        return
    numbers = ("RTT", "FREE/SLOTS", "SENT THERE", "RUN HERE", "REFUSED")
    table = make_table("PEER", "STATE", "LINK", *numbers, "LAST EXCHANGE", "TAGS", "LAST REFUSAL", right=numbers,
                       wrap=("LAST REFUSAL",))
    now = time.time()
    for r in rows:
        state = "[green]up[/]" if r["state"] == "up" else f"[red]{escape(r['state'])}[/]"
        rtt = "-" if r["rtt_ms"] is None else f"{r['rtt_ms']:.1f} ms"
        offer = r["offer"]
        last = "-" if r["last_exchange"] is None else age(now - r["last_exchange"]) + " ago"
        refusal = r["refusals"][-1]["what"] if r.get("refusals") else (r["why"] or "-")
        admin = "tasks_there" in r  # a user's token sees the link and the offer only
        table.add_row(r["name"], state, r.get("link") or "-", rtt, f"{offer['slots_free']}/{offer['slots_total']}",
                      f"{r['tasks_there']} in {r['ranges']}" if admin else "-",
                      f"{r['tasks_here']} in {r['ranges_here']}" if admin else "-",
                      f"{r['refused']}/{r['refused_by_it']}" if admin else "-", last,
                      ",".join(offer["tags"]) or "-", escape(refusal))
    console.print(table)


@click.command(context_settings=CONTEXT_SETTINGS)
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


@click.group(context_settings=CONTEXT_SETTINGS)
def reserve() -> None:
    """Advance reservations: slots of a site held for some users over a window (admins)."""


@reserve.command("create", context_settings=CONTEXT_SETTINGS)
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
                      f"from {when(r['start'])} to {when(r['end'])} for {', '.join(r['users'])}"
                      + (f"; mirrored as {r['mirror']}" if r.get("mirror") else ""))


@reserve.command("list", context_settings=CONTEXT_SETTINGS)
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
        table.add_row(r["name"], r["site"], str(r["slots"]), when(r["start"]), when(r["end"]), ",".join(r["users"]),
                      r.get("mirror") or "-")
    console.print(table)


@reserve.command("delete", context_settings=CONTEXT_SETTINGS)
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
