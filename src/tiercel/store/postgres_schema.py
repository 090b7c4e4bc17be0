"""The PostgreSQL store's schema: each version's migration step, and the one function that applies them.

A database is created or brought to ``SCHEMA_VERSION`` by ``migrate`` under an advisory lock, when
a manager (or ``tiercel store copy``) first reaches it (postgres.py ``PostgresStore.prepare``).
The fence function ``tiercel_fence`` that every write transaction calls is created here; what it
guards is told in postgres.py and lease.py.
"""

from __future__ import annotations

import secrets
from typing import Any

import psycopg

SCHEMA_VERSION = 6

# Each step takes the schema from the version before it to its own; never edited once released.
MIGRATIONS: dict[int, str] = {
    1: """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE tokens (
    digest TEXT PRIMARY KEY, username TEXT NOT NULL, role TEXT NOT NULL,
    label TEXT NOT NULL DEFAULT '', created DOUBLE PRECISION NOT NULL, last_used DOUBLE PRECISION);
CREATE TABLE jobs (
    id BIGINT PRIMARY KEY, owner TEXT NOT NULL, spec JSONB NOT NULL, submitted DOUBLE PRECISION NOT NULL,
    state TEXT, ended DOUBLE PRECISION, total BIGINT NOT NULL,
    done BIGINT, failed BIGINT, cancelled BIGINT, reason TEXT);
CREATE INDEX jobs_unfinished ON jobs (id) WHERE state IS NULL;
CREATE INDEX jobs_owner ON jobs (owner, id);
CREATE TABLE attempts (
    job BIGINT NOT NULL, idx INTEGER NOT NULL, attempt INTEGER NOT NULL,
    outcome TEXT NOT NULL, final BOOLEAN NOT NULL, worker TEXT NOT NULL,
    exit_code INTEGER, started DOUBLE PRECISION NOT NULL, ended DOUBLE PRECISION NOT NULL,
    stdout BYTEA, stderr BYTEA,
    PRIMARY KEY (job, idx, attempt, worker));
CREATE TABLE workers (id TEXT PRIMARY KEY, name TEXT, host TEXT, seen DOUBLE PRECISION);
CREATE TABLE reservations (
    name TEXT PRIMARY KEY, site TEXT NOT NULL, slots INTEGER NOT NULL,
    start_ DOUBLE PRECISION NOT NULL, end_ DOUBLE PRECISION NOT NULL,
    users JSONB NOT NULL, owner TEXT NOT NULL, created DOUBLE PRECISION NOT NULL, mirror TEXT);
CREATE TABLE site_jobs (
    site TEXT NOT NULL, native_id TEXT NOT NULL, payload TEXT NOT NULL, submitted DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (site, native_id));
CREATE TABLE lease (
    id INTEGER PRIMARY KEY CHECK (id = 1), epoch BIGINT NOT NULL, holder TEXT, name TEXT, url TEXT,
    since TIMESTAMPTZ, expires TIMESTAMPTZ NOT NULL);
INSERT INTO lease (id, epoch, expires) VALUES (1, 0, '-infinity');
CREATE TABLE managers (
    name TEXT PRIMARY KEY, url TEXT NOT NULL, instance TEXT NOT NULL,
    started TIMESTAMPTZ NOT NULL, seen TIMESTAMPTZ NOT NULL);
CREATE FUNCTION tiercel_fence(mine BIGINT) RETURNS VOID LANGUAGE plpgsql AS $$
DECLARE current_epoch BIGINT;
BEGIN
    SELECT epoch INTO current_epoch FROM lease WHERE id = 1 FOR SHARE;
    IF current_epoch IS DISTINCT FROM mine THEN
        RAISE EXCEPTION 'epoch % is over: epoch % holds the lease', mine, current_epoch
            USING ERRCODE = 'TC001';
    END IF;
END $$;
""",
    2: """
CREATE TABLE job_entries (job BIGINT PRIMARY KEY, blob BYTEA NOT NULL);
""",
    3: """
ALTER TABLE jobs ADD COLUMN places JSONB, ADD COLUMN forgotten DOUBLE PRECISION;
CREATE INDEX jobs_ended ON jobs (ended, id);
CREATE INDEX jobs_owner_ended ON jobs (owner, ended, id);
CREATE INDEX jobs_state_ended ON jobs (state, ended, id);
""",
    # The fence gets a row of its own: a write's share lock on the lease row made its renewal wait
    # behind a steady stream of writes, so an active manager under full load let its lease run out.
    4: """
CREATE TABLE fence (id INTEGER PRIMARY KEY CHECK (id = 1), epoch BIGINT NOT NULL);
INSERT INTO fence SELECT 1, epoch FROM lease;
CREATE OR REPLACE FUNCTION tiercel_fence(mine BIGINT) RETURNS VOID LANGUAGE plpgsql AS $$
DECLARE current_epoch BIGINT;
BEGIN
    SELECT epoch INTO current_epoch FROM fence WHERE id = 1 FOR SHARE;
    IF current_epoch IS DISTINCT FROM mine THEN
        RAISE EXCEPTION 'epoch % is over: epoch % holds the lease', mine, current_epoch
            USING ERRCODE = 'TC001';
    END IF;
END $$;
""",
    5: """
ALTER TABLE attempts ADD COLUMN cpu DOUBLE PRECISION;
ALTER TABLE jobs ADD COLUMN cpu DOUBLE PRECISION;
""",
    6: """
CREATE TABLE workflows (
    id BIGINT PRIMARY KEY, owner TEXT NOT NULL, name TEXT NOT NULL, submitted DOUBLE PRECISION NOT NULL,
    jobs JSONB NOT NULL);
CREATE INDEX workflows_owner ON workflows (owner, id);
""",
}

# One advisory lock key for creating and migrating the schema: two managers starting together on
# an empty database do not both create it.
SCHEMA_LOCK = 0x7469657263656C  # "tiercel"


class SchemaTooNew(Exception):
    pass


def migrate(conn: psycopg.Connection[Any], shown: str) -> None:
    """Create the schema, or bring it to this version; refuse one newer than this code knows."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
        exists = conn.execute("SELECT to_regclass('meta') IS NOT NULL").fetchone()
        version = 0
        if exists and exists[0]:
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
            version = int(row[0]) if row else 0
        if version > SCHEMA_VERSION:
            raise SchemaTooNew(f"store {shown}: its schema is version {version}, newer than this Tiercel knows "
                               f"({SCHEMA_VERSION}); run a Tiercel at least as new as the one that wrote it")
        for step in range(version + 1, SCHEMA_VERSION + 1):
            conn.execute(MIGRATIONS[step])
            conn.execute("INSERT INTO meta VALUES ('schema', %s) ON CONFLICT (key) DO UPDATE SET value = %s",
                         (str(step), str(step)))
        conn.execute("INSERT INTO meta VALUES ('seal_key', %s) ON CONFLICT DO NOTHING", (secrets.token_hex(32),))
