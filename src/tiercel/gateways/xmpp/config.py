"""The ``[xmpp]`` table of the manager's configuration file.

    [xmpp]
    jid = "tiercel@example.org"            # the manager's account (resource: "tiercel" unless given)
    password_file = "xmpp.password"        # or password = "..."; relative to this file
    server = "xmpp.example.org"            # default: the JID's domain (DNS SRV)
    port = 5222                            # default 5222, or 5223 with tls = "direct"
    tls = "starttls"                       # "starttls", "direct" (XEP-0368) or "plain" (loopback only)
    ca_file = "/etc/ssl/my-ca.pem"         # trust this CA (a self-signed server)
    workers = ["node1@example.org", "*@workers.example.org"]   # accounts that may run tasks
    rate_burst = 10                        # messages one JID may send at once ...
    rate_per_minute = 60                   # ... and in a minute

    [xmpp.users]                           # who may chat with the manager, as which Tiercel user
    "alice@example.org" = "alice"

``tiercel.config`` reads the file and hands this module the table; other top-level tables are
not its business. Any error names the key, its value and what is allowed (the loader adds the
file and the line).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tiercel.core.problems import MISSING, Problem
from tiercel.gateways.xmpp.endpoint import Endpoint, TlsMode
from tiercel.secretfiles import exposed

USER_NAME = r"^[A-Za-z0-9_.@-]{1,64}$"
DEFAULT_RESOURCE = "tiercel"


def _parse(value: str) -> Any:
    """A JID (slixmpp's, imported only when a JID is read: a manager without XMPP never loads it);
    ValueError saying what is wrong."""
    from slixmpp import JID
    from slixmpp.jid import InvalidJID

    try:
        return JID(value)
    except InvalidJID as exc:
        raise ValueError(f"is not a JID ({exc}); write it as user@domain") from None


def bare_jid(value: str, *, wildcard: bool = False) -> str:
    """A bare JID in its normal form; raises ValueError naming what is wrong."""
    if wildcard and value.startswith("*@"):
        domain = bare_jid("x@" + value[2:]).split("@", 1)[1]
        return "*@" + domain
    jid = _parse(value)
    if not jid.user or jid.resource:
        raise ValueError("must be a bare JID such as alice@example.org")
    return str(jid.bare)


PLAIN_ONLY_ON_LOOPBACK = ('tls = "plain" sends the password in clear: it is allowed only for a server on '
                          "loopback (127.0.0.1, ::1 or localhost); use starttls or direct")


def loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


def read_secret(path: Path) -> str:
    """A password file's first line; OSError or ValueError (not UTF-8) for the caller to report."""
    return path.read_text(encoding="utf-8").strip()


class XmppConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    jid: str = Field(description="the manager's account, user@domain[/resource]")
    password: str | None = Field(None, repr=False)
    password_file: Path | None = None
    server: str | None = Field(None, min_length=1, max_length=255)
    port: int | None = Field(None, ge=1, le=65535)
    tls: TlsMode = "starttls"
    ca_file: Path | None = None
    users: dict[str, str] = Field(default_factory=dict)
    workers: list[str] = Field(default_factory=list)
    rate_burst: int = Field(10, ge=1, le=10_000)
    rate_per_minute: float = Field(60.0, gt=0, le=100_000)
    ping_interval: float = Field(15.0, ge=0.5, le=3600, description="XEP-0199 pings to XMPP workers")
    ping_timeout: float = Field(10.0, ge=0.5, le=3600)
    max_status_jobs: int = Field(20, ge=1, le=1000)

    @field_validator("jid")
    @classmethod
    def _jid(cls, value: str) -> str:
        jid = _parse(value)
        if not jid.user:
            raise ValueError("must have a user part, as in tiercel@example.org")
        return str(jid.full if jid.resource else f"{jid.bare}/{DEFAULT_RESOURCE}")

    @field_validator("users")
    @classmethod
    def _users(cls, value: dict[str, str]) -> dict[str, str]:
        import re

        out = {}
        for jid, user in value.items():
            try:
                key = bare_jid(jid)
            except ValueError as exc:
                raise ValueError(f"key {jid!r} {exc}") from None
            if not isinstance(user, str) or not re.match(USER_NAME, user):
                raise ValueError(f"{jid!r} = {user!r}: a user name is 1 to 64 letters, digits or _.@-")
            out[key] = user
        return out

    @field_validator("workers")
    @classmethod
    def _workers(cls, value: list[str]) -> list[str]:
        out = []
        for jid in value:
            try:
                out.append(bare_jid(jid, wildcard=True))
            except ValueError as exc:
                raise ValueError(f"{jid!r} {exc} (or *@domain for every account of a domain)") from None
        return out

    @model_validator(mode="after")
    def _password(self) -> XmppConfig:
        if (self.password is None) == (self.password_file is None):
            raise ValueError("give exactly one of password and password_file")
        if self.tls == "plain" and not loopback(self.server or _parse(self.jid).domain):
            raise ValueError(PLAIN_ONLY_ON_LOOPBACK)
        return self

    @property
    def bare(self) -> str:
        return str(_parse(self.jid).bare)

    def secret(self) -> str:
        if self.password is not None:
            return self.password
        assert self.password_file is not None
        return read_secret(self.password_file)

    def endpoint(self) -> Endpoint:
        port = self.port or ((5223 if self.tls == "direct" else 5222) if self.server else None)
        return Endpoint(self.server, port, self.tls, self.ca_file)

    def may_work(self, bare: str) -> bool:
        domain = bare.split("@", 1)[-1]
        return bare in self.workers or f"*@{domain}" in self.workers


def parse(data: dict[str, Any], base: Path | None = None) -> XmppConfig | Problem | None:
    """The [xmpp] table of a parsed TOML document; None when there is none."""
    table = data.get("xmpp")
    if table is None:
        return None
    if not isinstance(table, dict):
        return Problem("xmpp", table, "must be a table: [xmpp]")
    try:
        config = XmppConfig.model_validate(table)
    except ValidationError as exc:
        return _problem(exc, table)
    if base is not None:
        resolved = {k: base / p for k in ("password_file", "ca_file")
                    if (p := getattr(config, k)) is not None and not p.is_absolute()}
        if resolved:
            config = config.model_copy(update=resolved)
    for key in ("password_file", "ca_file"):
        path = getattr(config, key)
        if path is not None and not path.is_file():
            return Problem(f"xmpp.{key}", str(path), "is not a readable file")
    if config.password_file is not None and (why := exposed(config.password_file)) is not None:
        return Problem("xmpp.password_file", str(config.password_file), why)
    try:
        if not config.secret():
            return Problem("xmpp.password_file" if config.password_file else "xmpp.password", MISSING,
                           "is empty; the manager's XMPP account needs its password")
    except (OSError, ValueError) as exc:
        return Problem("xmpp.password_file", str(config.password_file),
                       f"cannot be read: {getattr(exc, 'strerror', None) or exc}")
    return config


SHAPES = {
    "dict_type": 'must be a table, e.g. [xmpp.users] with "alice@example.org" = "alice"',
    "list_type": 'must be a list, e.g. ["node1@example.org", "*@workers.example.org"]',
    "string_type": "must be a string in quotes",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
}


def _problem(exc: ValidationError, table: dict[str, Any]) -> Problem:
    err = exc.errors()[0]
    loc = [str(p) for p in err.get("loc", ())]
    field = ".".join(["xmpp", *loc]) if loc else "xmpp"
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        return Problem(field, MISSING, f"is not an [xmpp] setting (allowed: {', '.join(XmppConfig.model_fields)})")
    if kind == "missing":
        return Problem(field, MISSING, "is required")
    value = table.get(loc[0]) if loc else table
    if kind == "literal_error":
        return Problem(field, value, "is not allowed: choose starttls, direct or plain")
    if kind in SHAPES:
        return Problem(field, value, SHAPES[kind])
    message = str(err.get("msg", "")).removeprefix("Value error, ")
    if not loc:  # a check across keys
        return Problem("xmpp", MISSING, message)
    return Problem(field, value, message if message.startswith(("is ", "must ", "key ", "'")) else
                   f"is not allowed: {message}")
