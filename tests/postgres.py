"""A real PostgreSQL on loopback for the store tests, started by scripts/services/postgres_up.sh.

One server serves a whole test session; each test gets a brand-new database of its own
(``create_database``), dropped after it. Each instance has its own directory and port. In CI
(``CI`` set) a PostgreSQL that cannot be installed or started fails the tests; elsewhere they are
skipped with the reason.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest

if TYPE_CHECKING:
    import psycopg

ROOT = Path(__file__).resolve().parent.parent
UP = ROOT / "scripts" / "services" / "postgres_up.sh"
DOWN = ROOT / "scripts" / "services" / "postgres_down.sh"
BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
CONNECT_TIMEOUT = 10  # seconds, for every connection the tests make themselves


class PostgresUnavailable(Exception):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Postgres:
    def __init__(self) -> None:
        # As root the server runs as user postgres: its directory must be reachable, so not under pytest's 0700 tmp.
        self.dir = Path(tempfile.mkdtemp(prefix="tiercel-postgres-"))
        self.dir.chmod(0o755)
        self.port = free_port()
        self.user = "postgres"

    def env(self) -> dict[str, str]:
        return {**os.environ, "PG_DIR": str(self.dir), "PG_PORT": str(self.port), "PG_BIN": str(BIN)}

    def start(self) -> None:
        if os.geteuid() != 0 and not (BIN / "initdb").exists():
            raise PostgresUnavailable(f"PostgreSQL is not installed ({BIN}/initdb) and installing it needs root")
        try:
            import psycopg  # noqa: F401  (the tests talk to the server with it)
        except ImportError as exc:
            raise PostgresUnavailable(f"psycopg is not installed: {exc}") from None
        try:
            out = subprocess.run(["bash", str(UP)], env=self.env(), capture_output=True, text=True, timeout=900)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PostgresUnavailable(f"{UP.name} did not run: {exc}") from None
        if out.returncode != 0:
            raise PostgresUnavailable(f"{UP.name} failed ({out.returncode}): {(out.stdout + out.stderr)[-2000:]}")
        try:
            with self.connect():
                pass
        except Exception as exc:
            raise PostgresUnavailable(f"started, but no connection to {self.url()}: {exc}\n{self.log()}") from None

    def stop(self) -> None:
        """Stop the server by its own pg_ctl, or failing that by its postmaster's pid."""
        subprocess.run(["bash", str(DOWN)], env=self.env(), capture_output=True, timeout=120)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str = "postgres") -> psycopg.Connection[tuple[object, ...]]:
        import psycopg

        return psycopg.connect(self.url(database), autocommit=True, connect_timeout=CONNECT_TIMEOUT)

    def create_database(self) -> str:
        """A brand-new empty database with a name of its own; its URL."""
        from psycopg import sql

        name = f"tiercel_{uuid.uuid4().hex[:16]}"
        with self.connect() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def drop_database(self, url: str) -> None:
        """Drop a database made by create_database, closing whatever connections are still open to it."""
        from psycopg import sql

        name = urlsplit(url).path.lstrip("/")
        if not name or name in ("postgres", "template0", "template1"):
            raise ValueError(f"not a database of a test: {url}")
        with self.connect() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def databases(self) -> list[str]:
        with self.connect() as conn:
            rows = conn.execute("SELECT datname FROM pg_database WHERE NOT datistemplate ORDER BY datname").fetchall()
        return [str(r[0]) for r in rows]

    def log(self) -> str:
        path = self.dir / "server.log"
        if not path.exists():
            return ""
        return f"--- server.log\n{path.read_text(errors='replace')[-3000:]}"


def start_or_skip(postgres: Postgres) -> Postgres:
    """Start it; without PostgreSQL the tests fail in CI and are skipped elsewhere, saying why."""
    try:
        postgres.start()
    except PostgresUnavailable as exc:
        postgres.cleanup()
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required in CI and could not be started: {exc}", pytrace=False)
        pytest.skip(f"PostgreSQL is not available here: {exc}")
    return postgres
