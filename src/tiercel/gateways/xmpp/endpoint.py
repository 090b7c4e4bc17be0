"""Where and how to reach an XMPP server: plain values, read with the configuration (no XMPP library)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

TlsMode = Literal["starttls", "direct", "plain"]


@dataclass(frozen=True)
class Endpoint:
    """Where and how to reach the XMPP server."""

    host: str | None = None  # None: the JID's domain (DNS SRV records)
    port: int | None = None
    tls: TlsMode = "starttls"
    ca_file: Path | None = None
