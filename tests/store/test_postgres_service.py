"""The PostgreSQL the store tests run against: up for the session, a fresh database per test, dropped after."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from tests.postgres import CONNECT_TIMEOUT, Postgres

pytestmark = pytest.mark.timeout(120)


def test_the_server_is_durable_on_loopback_and_takes_many_connections(postgres: Postgres) -> None:
    with postgres.connect() as conn:
        settings = dict(conn.execute(
            "SELECT name, setting FROM pg_settings WHERE name IN "
            "('fsync', 'synchronous_commit', 'full_page_writes', 'listen_addresses', 'max_connections', 'port')"
        ).fetchall())
        version = conn.execute("SHOW server_version_num").fetchone()
    assert settings == {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on",
                        "listen_addresses": "127.0.0.1", "max_connections": "200", "port": str(postgres.port)}
    assert version is not None and int(version[0]) >= 150000


def test_a_database_is_made_used_and_dropped(postgres: Postgres) -> None:
    import psycopg

    url = postgres.create_database()
    name = urlsplit(url).path.lstrip("/")
    assert url == postgres.url(name) and name in postgres.databases()
    with psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT) as conn:
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()
        assert tables == (0,)  # brand-new and empty
        conn.execute("CREATE TABLE t (k integer PRIMARY KEY, v bytea)")
        conn.execute("INSERT INTO t VALUES (1, %s)", (b"\x00\xff",))
        conn.commit()
    conn = psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT)
    try:
        assert conn.execute("SELECT v FROM t WHERE k = 1").fetchone() == (b"\x00\xff",)
        postgres.drop_database(url)  # even with a connection still open to it: that one is ended
        with pytest.raises(psycopg.OperationalError):
            conn.execute("SELECT 1")
    finally:
        conn.close()
    assert name not in postgres.databases()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT).close()


def test_each_test_gets_its_own_empty_database(pg_url: str, postgres: Postgres) -> None:
    import psycopg

    other = postgres.create_database()
    try:
        assert other != pg_url
        with psycopg.connect(pg_url, autocommit=True, connect_timeout=CONNECT_TIMEOUT) as conn:
            conn.execute("CREATE TABLE only_here (k integer)")
        with psycopg.connect(other, connect_timeout=CONNECT_TIMEOUT) as conn:
            found = conn.execute("SELECT count(*) FROM pg_tables WHERE tablename = 'only_here'").fetchone()
        assert found == (0,)
    finally:
        postgres.drop_database(other)
