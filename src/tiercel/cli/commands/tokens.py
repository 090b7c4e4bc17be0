"""``tiercel token create/list/revoke``: who may use the manager, and in which role (admins)."""

from __future__ import annotations

import click

from tiercel.cli.common import (
    CONTEXT_SETTINGS,
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


@click.group(context_settings=CONTEXT_SETTINGS)
def token() -> None:
    """Manage access tokens (admins)."""


@token.command("create", context_settings=CONTEXT_SETTINGS)
@click.option("--user", required=True, metavar="NAME", help="Who the token is for.")
@click.option("--role", type=click.Choice(["user", "admin", "worker", "peer"]), default="user", show_default=True,
              help="user: own jobs; admin: everything; worker: run what it is handed; peer: a manager that "
                   "exchanges summaries and runs forwarded work (its --user names the [peers.NAME] it stands for)")
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


@token.command("list", context_settings=CONTEXT_SETTINGS)
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
        table.add_row(t["id"], t["user"], t["role"], when(t["created"]),
                      when(t["last_used"]) if t.get("last_used") else "never", t.get("label") or "-")
    console.print(table)


@token.command("revoke", context_settings=CONTEXT_SETTINGS)
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
