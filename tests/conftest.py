"""Fixtures for every test: a PostgreSQL and a Gfarm for the session (each started only when a test asks
for it), a database per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests import gfarm as gfarm_service
from tests.postgres import Postgres, start_or_skip


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """One PostgreSQL for the whole session, stopped at its end."""
    server = start_or_skip(Postgres())
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def pg_url(postgres: Postgres) -> Iterator[str]:
    """The URL of a brand-new empty database, dropped after the test."""
    url = postgres.create_database()
    try:
        yield url
    finally:
        postgres.drop_database(url)


@pytest.fixture(scope="session")
def gfarm() -> Iterator[gfarm_service.Gfarm]:
    """One Gfarm (a metadata server, three file-system nodes) for the whole session, stopped at its end."""
    fs = gfarm_service.start_or_skip(gfarm_service.Gfarm())
    try:
        yield fs
    finally:
        fs.cleanup()
