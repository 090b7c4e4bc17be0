"""Where the manager keeps its state: the ``[store]`` table and ``tiercel manager --store``.

Without either, the store is SQLite in the state directory. A ``postgresql://`` URL puts it in
PostgreSQL, where several managers may share it: one active, the others standby.

    [store]
    url = "postgresql://tiercel@db.example.org/tiercel"
    password_file = "store.password"   # kept out of the URL and the config file
    name = "m1"                        # how `tiercel managers` shows this one (default host:port)
    advertise = "http://m1.example.org:8750"  # where clients reach this one (default: its --listen)
    lease = 5.0                        # seconds: a standby takes over this long after the active one dies
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from tiercel.core.problems import MISSING, Problem
from tiercel.secretfiles import exposed

SCHEMES = ("postgresql", "postgres")
KEYS = ("url", "password_file", "name", "advertise", "lease")


@dataclass(frozen=True)
class StoreConfig:
    url: str
    name: str = ""
    advertise: str = ""
    lease: float = 5.0
    password_file: Path | None = None

    def connect_url(self) -> str:
        """The URL with the password from password_file, if there is one."""
        if self.password_file is None:
            return self.url
        secret = self.password_file.read_text().strip()
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        if parts.port:
            host += f":{parts.port}"
        return urlunsplit(parts._replace(netloc=f"{quote(parts.username or '')}:{quote(secret, safe='')}@{host}"))


def check_url(url: str, field: str) -> Problem | None:
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        return Problem(field, url, f"is not a URL ({exc})")
    if parts.scheme not in SCHEMES:
        return Problem(field, url.split("@")[-1] if "@" in url else url,
                       "must be a postgresql:// URL, e.g. postgresql://tiercel@db.example.org/tiercel "
                       "(without one the store is SQLite in the state directory)")
    if not parts.path.strip("/") and "dbname=" not in parts.query:
        return Problem(field, url.split("@")[-1], "must name a database, e.g. postgresql://tiercel@HOST/tiercel")
    return None


def parse(table: object, base: Path | None) -> StoreConfig | Problem:
    if not isinstance(table, dict):
        return Problem("store", table, 'must be a table: [store] with url = "postgresql://..."')
    for key in table:
        if key not in KEYS:
            return Problem(f"store.{key}", table[key], f"is not a key of [store] (known: {', '.join(KEYS)})")
    url = table.get("url")
    if url is None:
        return Problem("store.url", MISSING, 'is required, e.g. url = "postgresql://tiercel@db.example.org/tiercel"')
    found: dict[str, Any] = {}
    for key in ("url", "password_file", "name", "advertise"):
        value = table.get(key)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            return Problem(f"store.{key}", value, "must be a non-empty string in quotes")
        if value is not None:
            found[key] = value.strip()
    problem = check_url(found["url"], "store.url")
    if problem is not None:
        return problem
    lease = table.get("lease", 5.0)
    if isinstance(lease, bool) or not isinstance(lease, int | float) or not 1 <= lease <= 600:
        return Problem("store.lease", lease, "must be a number of seconds from 1 to 600")
    advertise = found.get("advertise", "")
    if advertise and not advertise.startswith(("http://", "https://")):
        return Problem("store.advertise", advertise, "must be this manager's http:// or https:// URL")
    password_file = None
    if "password_file" in found:
        password_file = Path(found["password_file"]).expanduser()
        if base is not None and not password_file.is_absolute():
            password_file = base / password_file
        if not password_file.is_file():
            return Problem("store.password_file", str(password_file), "is not a readable file")
        if (why := exposed(password_file)) is not None:
            return Problem("store.password_file", str(password_file), why)
    return StoreConfig(found["url"], found.get("name", ""), advertise, float(lease), password_file)
