"""``tiercel worker --xmpp JID --password-file F [--manager-jid JID]``: the options, checked.

The options keep their values in the click context rather than in the worker command's
arguments, so the command stays as it is for WebSocket workers.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from tiercel.cli.common import UserError

F = TypeVar("F", bound=Callable[..., Any])
META = "tiercel.xmpp_worker"


def _keep(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    ctx.meta.setdefault(META, {})[param.name] = value
    return value


def xmpp_worker_options(fn: F) -> F:
    options = [
        click.option("--xmpp", "xmpp_jid", metavar="JID", expose_value=False, callback=_keep,
                     help="Reach the manager over XMPP as this account (user@domain[/resource]) instead of "
                          "WebSocket."),
        click.option("--password-file", type=click.Path(path_type=Path, dir_okay=False), metavar="FILE",
                     expose_value=False, callback=_keep, help="With --xmpp: the account's password."),
        click.option("--manager-jid", metavar="JID", expose_value=False, callback=_keep,
                     help="With --xmpp: the manager's JID (default: tiercel@ the worker's domain)."),
        click.option("--xmpp-server", metavar="HOST[:PORT]", expose_value=False, callback=_keep,
                     help="With --xmpp: the server to connect to (default: the JID's domain, by DNS SRV)."),
        click.option("--xmpp-tls", type=click.Choice(["starttls", "direct", "plain"]), default="starttls",
                     show_default=True, expose_value=False, callback=_keep,
                     help="With --xmpp: STARTTLS, direct TLS (XEP-0368), or plain (loopback only)."),
        click.option("--xmpp-ca", type=click.Path(path_type=Path, dir_okay=False), metavar="FILE",
                     expose_value=False, callback=_keep, help="With --xmpp: trust this CA certificate."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def xmpp_settings() -> Any:
    """The checked settings (worker.xmpp_transport.XmppSettings) when --xmpp was given, else None."""
    given: dict[str, Any] = click.get_current_context().meta.get(META, {})
    jid_text = given.get("xmpp_jid")
    if not jid_text:
        used = [k.replace("_", "-") for k in ("password_file", "manager_jid", "xmpp_server", "xmpp_ca")
                if given.get(k)]
        if used:
            raise UserError(f"{used[0]}: is only for XMPP workers; add --xmpp JID (or leave --{used[0]} out)")
        return None
    from slixmpp import JID
    from slixmpp.jid import InvalidJID

    from tiercel.gateways.xmpp.config import PLAIN_ONLY_ON_LOOPBACK, loopback, read_secret
    from tiercel.gateways.xmpp.link import Endpoint
    from tiercel.gateways.xmpp.worker_link import XmppSettings
    from tiercel.secretfiles import exposed

    def jid(option: str, text: str) -> JID:
        try:
            value = JID(text)
        except InvalidJID as exc:
            raise UserError(f"{option}: {text!r} is not a JID ({exc}); write it as user@domain") from None
        if not value.user:
            raise UserError(f"{option}: {text!r} needs a user part, as in worker1@example.org")
        return value

    me = jid("xmpp", jid_text)
    manager = jid("manager-jid", given.get("manager_jid") or f"tiercel@{me.domain}")
    path: Path | None = given.get("password_file")
    if path is None:
        raise UserError("password-file: is required with --xmpp (a file holding the account's password)")
    why = exposed(path)
    if why is not None:
        raise UserError(f"password-file: {str(path)!r} {why}")
    try:
        password = read_secret(path)
    except OSError as exc:
        raise UserError(f"password-file: {str(path)!r} cannot be read: {exc.strerror}") from None
    except ValueError:
        raise UserError(f"password-file: {str(path)!r} is not UTF-8 text; it must hold the password") from None
    if not password:
        raise UserError(f"password-file: {str(path)!r} is empty")
    host, port = None, None
    server = given.get("xmpp_server")
    if server:
        host, sep, port_text = server.rpartition(":")
        if not sep:
            host, port_text = server, ""
        if not host or (port_text and (not port_text.isdigit() or not 1 <= int(port_text) <= 65535)):
            raise UserError(f"xmpp-server: {server!r} must be HOST or HOST:PORT, e.g. xmpp.example.org:5222")
        port = int(port_text) if port_text else (5223 if given.get("xmpp_tls") == "direct" else 5222)
    ca: Path | None = given.get("xmpp_ca")
    if ca is not None and not ca.is_file():
        raise UserError(f"xmpp-ca: {str(ca)!r} is not a readable file")
    tls: Any = given.get("xmpp_tls") or "starttls"
    if tls == "plain" and not loopback(host or me.domain):
        raise UserError(f"xmpp-tls: 'plain' {PLAIN_ONLY_ON_LOOPBACK.split(': ', 1)[1]}")
    endpoint = Endpoint(host, port, tls, ca)
    return XmppSettings(str(me), password, str(manager.bare), endpoint)
