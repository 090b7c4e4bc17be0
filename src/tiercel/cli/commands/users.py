"""``tiercel user``: which XMPP addresses (JIDs) speak for which Tiercel user.

A linked JID may chat with the manager's XMPP gateway as that user, and gets
``{'type':'job_finished', 'job_id': N}`` when that user's jobs end, however they were submitted.
"""

from __future__ import annotations

from urllib.parse import quote

import click

from tiercel.cli.common import (
    CONTEXT_SETTINGS,
    UserError,
    client,
    console,
    friendly,
    json_option,
    make_table,
    print_json,
    token_option,
    url_option,
)


def _jid(value: str) -> str:
    from slixmpp import JID
    from slixmpp.jid import InvalidJID

    try:
        jid = JID(value)
    except InvalidJID as exc:
        raise UserError(f"jid: {value!r} is not a JID ({exc}); write it as user@domain") from None
    if not jid.user or jid.resource:
        raise UserError(f"jid: {value!r} must be a bare JID such as alice@example.org")
    return str(jid.bare)


@click.group(context_settings=CONTEXT_SETTINGS)
def user() -> None:
    """Users' XMPP addresses, for the chat gateway (admins)."""


@user.command("link-jid", context_settings=CONTEXT_SETTINGS)
@click.argument("jid")
@click.argument("name", metavar="USER")
@url_option
@token_option
@friendly
def link_jid(jid: str, name: str, url: str | None, token: str | None) -> None:
    """Let JID chat with the manager as USER, and send it USER's job_finished notices."""
    bare = _jid(jid)
    with client(url, token) as c:
        c.json("PUT", f"/v1/jids/{quote(bare, safe='@')}", json={"user": name})
    console.print(f"{bare} now speaks for {name}")


@user.command("unlink-jid", context_settings=CONTEXT_SETTINGS)
@click.argument("jid")
@url_option
@token_option
@friendly
def unlink_jid(jid: str, url: str | None, token: str | None) -> None:
    """Undo link-jid (JIDs in the [xmpp.users] table of the configuration stay)."""
    bare = _jid(jid)
    with client(url, token) as c:
        c.json("DELETE", f"/v1/jids/{quote(bare, safe='@')}")
    console.print(f"{bare} unlinked")


@user.command("jids", context_settings=CONTEXT_SETTINGS)
@url_option
@token_option
@json_option
@friendly
def jids(url: str | None, token: str | None, as_json: bool) -> None:
    """List JIDs and the users they speak for (yours only, unless you are an admin)."""

    with client(url, token) as c:
        rows = c.json("GET", "/v1/jids")
    if as_json:
        print_json(rows)
        return
    if not rows:
        console.print("no JIDs linked (tiercel user link-jid JID USER, or [xmpp.users] in the manager's config)")
        return
    table = make_table("JID", "USER", "FROM")
    for r in rows:
        table.add_row(r["jid"], r["user"], r["source"])
    console.print(table)
