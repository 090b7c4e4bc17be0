"""Peers from the manager's TOML configuration.

    [peers.B]                       # another Tiercel manager
    url = "http://b.example:8750"   # connect out to it (leave out if B connects to us, e.g. from behind NAT)
    token_file = "b-peer.token"     # a token B made with 'tiercel token create --role peer --user A'
    user = "fed-b"                  # the local user that owns the work B forwards here
    timeout = "60s"                 # B silent this long: the ranges it holds are taken back and placed again
    start_timeout = "5m"            # B accepted a range and started none of it this long: taken back

The table's name is what this manager calls the peer, and it is the user of the peer token the
peer connects in with: a peer token of user ``B`` stands for ``[peers.B]``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tiercel.core.problems import MISSING, Problem
from tiercel.jobspec.values import parse_duration
from tiercel.secretfiles import exposed

NAME_CHARS = "letters, digits, - or _ (a letter first, at most 32)"


def _seconds(v: str | float) -> float:
    out = parse_duration(v)
    if isinstance(out, Problem):
        raise ValueError(out.allowed)
    return out


class PeerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str | None = Field(None, description="the peer manager's URL, to connect out to it")
    token_file: str | None = Field(None, description="the peer token the peer made for this manager")
    user: str | None = Field(None, description="the local user owning work forwarded from this peer")
    timeout: str | float = Field("60s", description="silence after which its ranges are taken back")
    start_timeout: str | float = Field("5m", description="a range accepted and not started this long is taken back")
    summary_interval: str | float = Field("2s", description="how often summaries are sent to it")
    prefetch: float = Field(1.0, ge=0.0, le=100.0, description="tasks offered beyond its free slots, per slot")
    forward: bool = Field(True, description="send work to it (false: only run what it sends)")

    @field_validator("timeout", "start_timeout", "summary_interval")
    @classmethod
    def _durations(cls, v: str | float) -> str | float:
        if _seconds(v) <= 0:
            raise ValueError("must be a positive duration, e.g. '30s' or '5m'")
        return v

    @field_validator("url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None:
            u = urlparse(v)
            if u.scheme not in ("http", "https") or not u.netloc:
                raise ValueError("must be an http:// or https:// URL of a manager, e.g. http://b.example:8750")
        return v

    @field_validator("user")
    @classmethod
    def _user(cls, v: str | None) -> str | None:
        if v is not None and (not v or len(v) > 64 or any(c.isspace() for c in v)):
            raise ValueError("must be a user name without spaces (at most 64 characters)")
        return v

    def seconds(self, key: str) -> float:
        return _seconds(getattr(self, key))


class Peer:
    """One [peers.NAME] table, checked, with its token file resolved next to the config file."""

    def __init__(self, name: str, cfg: PeerConfig, base: Path | None) -> None:
        self.name = name
        self.cfg = cfg
        self.url = cfg.url.rstrip("/") if cfg.url else None
        tf = Path(cfg.token_file).expanduser() if cfg.token_file else None
        self.token_file = (base / tf if base is not None and tf is not None and not tf.is_absolute() else tf)
        self.user = cfg.user or f"peer-{name}"
        self.timeout = cfg.seconds("timeout")
        self.start_timeout = cfg.seconds("start_timeout")
        self.summary_interval = cfg.seconds("summary_interval")
        self.prefetch = cfg.prefetch
        self.forward = cfg.forward

    def __repr__(self) -> str:
        return f"Peer({self.name!r}, url={self.url!r})"


def parse(table: object, base: Path | None) -> dict[str, Peer] | Problem:
    """The [peers.NAME] tables, or the first problem (naming the key)."""
    import re

    if not isinstance(table, dict):
        return Problem("peers", table, "must be tables [peers.NAME]")
    out: dict[str, Peer] = {}
    for name, body in table.items():
        where = f"peers.{name}"
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]{0,31}", name):
            return Problem(where, name, f"must be a peer name: {NAME_CHARS}")
        if not isinstance(body, dict):
            return Problem(where, body, "must be a table")
        try:
            cfg = PeerConfig.model_validate(body)
        except ValidationError as exc:
            err = exc.errors()[0]
            key = str(err["loc"][0]) if err["loc"] else "?"
            value: Any = body.get(key, err.get("input"))
            if err["type"] == "extra_forbidden":
                return Problem(f"{where}.{key}", value, "is not a peer option; options: "
                               + ", ".join(PeerConfig.model_fields))
            return Problem(f"{where}.{key}", value, str(err["msg"]).removeprefix("Value error, "))
        if cfg.url is not None and cfg.token_file is None:
            return Problem(f"{where}.token_file", MISSING, "is needed with url: the peer token the peer made for "
                           "this manager ('tiercel token create --role peer --user NAME' there)")
        peer = Peer(name, cfg, base)
        if peer.token_file is not None and not peer.token_file.is_file():
            return Problem(f"{where}.token_file", str(peer.token_file), "is not a readable file")
        if peer.token_file is not None and (why := exposed(peer.token_file)) is not None:
            return Problem(f"{where}.token_file", str(peer.token_file), why)
        out[name] = peer
    return out
