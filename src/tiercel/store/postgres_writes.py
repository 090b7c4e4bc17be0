"""The PostgreSQL store's writes: each write op as the statements that apply it.

The writer thread of postgres.py calls ``apply_all`` inside its fenced transaction (or once per
op's savepoint, when a batch failed as a whole); results go as one batched upsert per run.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from tiercel.store.base import (
    AddJob,
    AddPlaces,
    DeleteReservation,
    DeleteSiteJob,
    DeleteToken,
    EndJob,
    ForgetOutputs,
    ForgetWorker,
    Record,
    ReopenTasks,
    SaveReservation,
    SaveSiteJob,
    SaveToken,
    SaveWorkflow,
    SeenWorker,
    SetSealKey,
    TouchToken,
    UpdateJob,
    WriteOp,
)
from tiercel.store.rows import pack_entries, pack_output
from tiercel.store.specs import spec_to_row

# A run of results is one statement: each column as an array, unnested into rows (executemany
# adapted and sent every row by itself: twice the manager's CPU a result of the SQLite store).
_UPSERT_ATTEMPTS = (
    "INSERT INTO attempts (job, idx, attempt, outcome, final, worker, exit_code, started, ended, stdout, stderr, cpu) "
    "SELECT * FROM unnest(%s::bigint[], %s::integer[], %s::integer[], %s::text[], %s::boolean[], %s::text[], "
    "%s::integer[], %s::double precision[], %s::double precision[], %s::bytea[], %s::bytea[], "
    "%s::double precision[]) "
    "ON CONFLICT (job, idx, attempt, worker) "
    "DO UPDATE SET outcome = EXCLUDED.outcome, final = EXCLUDED.final, exit_code = EXCLUDED.exit_code, "
    "started = EXCLUDED.started, ended = EXCLUDED.ended, stdout = EXCLUDED.stdout, stderr = EXCLUDED.stderr, "
    "cpu = EXCLUDED.cpu"
)


def apply_all(conn: psycopg.Connection[Any], ops: list[WriteOp]) -> None:
    """Apply ops in order; a run of results goes as one batched statement."""
    rows: list[tuple[object, ...]] = []
    for op in ops:
        if isinstance(op, Record):
            rows.extend(
                (r.job, r.index, r.attempt, r.outcome.value, a.final, a.worker, r.exit_code,
                 r.started, r.ended, pack_output(r.stdout), pack_output(r.stderr), r.cpu)
                for a in op.records for r in (a.report,))
            continue
        if rows:
            _attempts(conn, rows)
            rows = []
        _apply(conn, op)
    if rows:
        _attempts(conn, rows)


def _attempts(conn: psycopg.Connection[Any], rows: list[tuple[object, ...]]) -> None:
    # One row per attempt, the last written (one statement may not update a row twice): what writing
    # them one after the other would have left.
    last = {(r[0], r[1], r[2], r[5]): r for r in rows}
    conn.execute(_UPSERT_ATTEMPTS, [list(column) for column in zip(*last.values(), strict=True)])


def _apply(conn: psycopg.Connection[Any], op: WriteOp) -> None:
    if isinstance(op, AddJob):
        conn.execute("INSERT INTO jobs (id, owner, spec, submitted, total) VALUES (%s,%s,%s,%s,%s)",
                     (op.job, op.owner, Jsonb(spec_to_row(op.spec)), op.submitted, op.spec.size))
        if op.spec.entries is not None:
            conn.execute("INSERT INTO job_entries VALUES (%s,%s)", (op.job, pack_entries(op.spec.entries)))
    elif isinstance(op, EndJob):
        c = op.counts
        conn.execute(
            "UPDATE jobs SET state = %s, ended = %s, done = %s, failed = %s, cancelled = %s, reason = %s, cpu = %s "
            "WHERE id = %s",
            (op.state.value, op.ended, c.done, c.failed, c.cancelled, op.reason, op.cpu, op.job))
    elif isinstance(op, SaveToken):
        conn.execute("INSERT INTO tokens (digest, username, role, label, created) VALUES (%s,%s,%s,%s,%s)",
                     (op.digest, op.user, op.role, op.label, op.created))
    elif isinstance(op, DeleteToken):
        conn.execute("DELETE FROM tokens WHERE digest = %s", (op.digest,))
    elif isinstance(op, TouchToken):
        conn.execute("UPDATE tokens SET last_used = %s WHERE digest = %s", (op.used, op.digest))
    elif isinstance(op, SeenWorker):
        conn.execute("INSERT INTO workers VALUES (%s,%s,%s,%s) ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, "
                     "host = EXCLUDED.host, seen = EXCLUDED.seen", (op.worker, op.name, op.host, op.seen))
    elif isinstance(op, ForgetWorker):
        conn.execute("DELETE FROM workers WHERE id = %s", (op.worker,))
    elif isinstance(op, SaveReservation):
        r = op.reservation
        conn.execute("INSERT INTO reservations (name, site, slots, start_, end_, users, owner, created, mirror) "
                     "VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                     (r.name, r.site, r.slots, r.start, r.end, Jsonb(sorted(r.users)), r.owner, op.created,
                      r.mirror))
    elif isinstance(op, DeleteReservation):
        conn.execute("DELETE FROM reservations WHERE name = %s", (op.name,))
    elif isinstance(op, SaveSiteJob):
        conn.execute("INSERT INTO site_jobs VALUES (%s,%s,%s,%s) ON CONFLICT (site, native_id) DO UPDATE SET "
                     "payload = EXCLUDED.payload, submitted = EXCLUDED.submitted",
                     (op.site, op.native_id, op.payload, op.submitted))
    elif isinstance(op, DeleteSiteJob):
        conn.execute("DELETE FROM site_jobs WHERE site = %s AND native_id = %s", (op.site, op.native_id))
    elif isinstance(op, UpdateJob):
        conn.execute("UPDATE jobs SET spec = %s WHERE id = %s", (Jsonb(spec_to_row(op.spec)), op.job))
    elif isinstance(op, ReopenTasks):
        conn.execute("UPDATE jobs SET state = NULL, ended = NULL, done = NULL, failed = NULL, cancelled = NULL, "
                     "reason = NULL WHERE id = %s", (op.job,))
        for start in range(0, len(op.indexes), 1000):
            chunk = list(op.indexes[start:start + 1000])
            conn.execute("UPDATE attempts SET final = FALSE WHERE job = %s AND final = TRUE AND idx IN ("
                         + ",".join(["%s"] * len(chunk)) + ")", [op.job, *chunk])
    elif isinstance(op, AddPlaces):
        conn.execute("UPDATE jobs SET places = (SELECT jsonb_agg(p ORDER BY p) FROM (SELECT jsonb_array_elements_text("
                     "COALESCE(jobs.places, '[]')) AS p UNION SELECT unnest(%s::text[])) AS u) WHERE id = %s",
                     (list(op.places), op.job))
    elif isinstance(op, ForgetOutputs):
        conn.execute("UPDATE attempts SET stdout = NULL, stderr = NULL WHERE job = %s AND idx >= %s AND idx < %s "
                     "AND (stdout IS NOT NULL OR stderr IS NOT NULL)", (op.job, op.start, op.stop))
        conn.execute("UPDATE jobs SET forgotten = %s WHERE id = %s", (op.at, op.job))
    elif isinstance(op, SaveWorkflow):
        conn.execute("INSERT INTO workflows VALUES (%s,%s,%s,%s,%s)",
                     (op.id, op.owner, op.name, op.submitted, Jsonb([list(j) for j in op.jobs])))
    elif isinstance(op, SetSealKey):
        conn.execute("UPDATE meta SET value = %s WHERE key = 'seal_key'", (op.key.hex(),))
