"""How a client reaches the manager: its URL or URLs (an active one and its standbys), which to turn to
when one does not serve, the token, and the error a person can act on.

The Python client (client.py), the command line and the worker share these; none of them sends a request.
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from urllib.parse import urlsplit

DEFAULT_PORT = 8750
ACTIVE_HEADER = "X-Tiercel-Active"  # a standby manager's 503 names the active one with it


class TiercelError(Exception):
    """An error a person can act on; its text is one line, without a traceback."""


def default_state_dir() -> Path:
    env = os.environ.get("TIERCEL_STATE_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "tiercel"


def default_url() -> str:
    """$TIERCEL_URL (one manager's URL, or several separated by commas), else the local manager's."""
    url = os.environ.get("TIERCEL_URL")
    if url:
        return url
    info = default_state_dir() / "manager.json"
    try:
        return str(json.loads(info.read_text())["url"])
    except (OSError, ValueError, KeyError):
        return f"http://127.0.0.1:{DEFAULT_PORT}"


def manager_url(value: str) -> str | None:
    """``value`` as a manager's URL without its trailing slash, or None if it is not one."""
    url = value.strip().rstrip("/")
    try:
        parts = urlsplit(url)
        port_ok = parts.port is None or parts.port > 0  # .port raises ValueError when not a number in range
    except ValueError:
        return None
    if not port_ok or parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        return None
    return url


def manager_urls(value: str, what: str = "url") -> list[str]:
    """One manager's URL, or several separated by commas (an active manager and its standbys).

    Raises TiercelError naming the first that is not a URL; ``what`` is the option's name.
    """
    urls: list[str] = []
    pieces = [piece.strip() for piece in value.split(",")]
    for piece in pieces:
        if not piece:
            continue
        url = manager_url(piece)
        if url is None:
            among = f" (in {value!r})" if len(pieces) > 1 else ""
            raise TiercelError(f"{what}: {piece!r}{among} must be the manager's URL, e.g. http://127.0.0.1:8750; "
                               "several are separated by commas")
        if url not in urls:
            urls.append(url)
    if not urls:
        raise TiercelError(f"{what}: no manager URL given, e.g. http://127.0.0.1:8750")
    return urls


def next_url(urls: Sequence[str], current: str, tried: Collection[str], active: str | None = None) -> str | None:
    """Where to turn after ``current`` did not serve: the active manager a standby named, else the
    URL after ``current`` in ``urls`` (round the list), skipping those already ``tried``; None when
    every one has been."""
    if active is not None and active not in tried:
        return active
    start = urls.index(current) + 1 if current in urls else 0
    for k in range(len(urls)):
        url = urls[(start + k) % len(urls)]
        if url not in tried:
            return url
    return None


def standby_active(headers: Mapping[str, str], body: bytes) -> tuple[bool, str | None]:
    """Read a 503 answer: whether a standby manager gave it, and the active manager's URL if it named one.

    A standby says so with the ``X-Tiercel-Active`` header or an ``active`` key in its JSON body
    (null when it knows no active manager); any other 503 is not a standby's.
    """
    named = headers.get(ACTIVE_HEADER)
    standby = named is not None
    if not named:
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        if isinstance(data, dict) and "active" in data:
            standby = True
            named = data["active"] if isinstance(data["active"], str) else None
    return standby, manager_url(named) if named else None


def resolve_token(explicit: str | None = None, *, files: tuple[str, ...] = ("admin.token",)) -> str | None:
    """--token, then TIERCEL_TOKEN, TIERCEL_TOKEN_FILE, then the local manager's token file."""
    if explicit:
        return explicit
    if os.environ.get("TIERCEL_TOKEN"):
        return os.environ["TIERCEL_TOKEN"]
    paths = [Path(os.environ["TIERCEL_TOKEN_FILE"])] if os.environ.get("TIERCEL_TOKEN_FILE") else []
    paths += [default_state_dir() / f for f in files]
    for path in paths:
        try:
            return path.expanduser().read_text().strip()
        except OSError:
            continue
    return None
