"""The SQLite store's writes: each write op as the statements that apply it.

The writer thread of sqlite.py applies a batch in one transaction: a commit's attempts together
(``insert_records``), every other op by ``apply`` (and each op by ``apply`` inside its own savepoint
when a batch failed as a whole).
"""

from __future__ import annotations

import functools
import json
import sqlite3

from tiercel.core.model import AttemptRecord
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

# Attempts are inserted many rows to a statement, in statements of a power of two rows (at most
# _ROWS_MAX, so a few statements are ever compiled), and a commit's attempts together. The writer
# lets go of the GIL at every statement it runs, and waits to get it back while the event loop's
# thread holds it (up to its switch interval): ``executemany`` ran one statement per row, and under
# full dispatch the writer spent most of its time waiting.
_ATTEMPT_COLUMNS = 12
_ROWS_MAX = 2048  # 24,576 variables; fewer where SQLite was built to allow fewer (_rows_max)
_INSERT_ATTEMPTS = ("INSERT OR REPLACE INTO attempts (job, idx, attempt, outcome, final, worker, exit_code, started, "
                    "ended, stdout, stderr, cpu) VALUES ")


@functools.cache
def _insert_attempts(rows: int) -> str:
    one = "(" + ",".join("?" * _ATTEMPT_COLUMNS) + ")"
    return _INSERT_ATTEMPTS + ",".join([one] * rows)


@functools.cache
def _rows_max(variables: int) -> int:
    return max(1, min(_ROWS_MAX, variables // _ATTEMPT_COLUMNS))


def insert_records(conn: sqlite3.Connection, records: list[AttemptRecord]) -> None:
    values = [
        v
        for a in records
        for r in (a.report,)
        for v in (r.job, r.index, r.attempt, r.outcome.value, int(a.final), a.worker, r.exit_code,
                  r.started, r.ended, pack_output(r.stdout), pack_output(r.stderr), r.cpu)
    ]
    most = _rows_max(conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER))
    left, at = len(records), 0
    while left:
        rows = min(most, 1 << (left.bit_length() - 1))
        end = at + rows * _ATTEMPT_COLUMNS
        conn.execute(_insert_attempts(rows), values[at:end])
        at, left = end, left - rows


def apply(conn: sqlite3.Connection, op: WriteOp) -> None:
    if isinstance(op, Record):
        insert_records(conn, op.records)
    elif isinstance(op, AddJob):
        conn.execute(
            "INSERT INTO jobs (id, owner, spec, submitted, total) VALUES (?,?,?,?,?)",
            (op.job, op.owner, json.dumps(spec_to_row(op.spec)), op.submitted, op.spec.size),
        )
        if op.spec.entries is not None:
            conn.execute("INSERT INTO job_entries VALUES (?,?)", (op.job, pack_entries(op.spec.entries)))
    elif isinstance(op, EndJob):
        c = op.counts
        conn.execute(
            "UPDATE jobs SET state = ?, ended = ?, done = ?, failed = ?, cancelled = ?, reason = ?, cpu = ? "
            "WHERE id = ?",
            (op.state.value, op.ended, c.done, c.failed, c.cancelled, op.reason, op.cpu, op.job),
        )
    elif isinstance(op, SaveToken):
        conn.execute("INSERT INTO tokens (digest, user, role, label, created) VALUES (?,?,?,?,?)",
                     (op.digest, op.user, op.role, op.label, op.created))
    elif isinstance(op, DeleteToken):
        conn.execute("DELETE FROM tokens WHERE digest = ?", (op.digest,))
    elif isinstance(op, TouchToken):
        conn.execute("UPDATE tokens SET last_used = ? WHERE digest = ?", (op.used, op.digest))
    elif isinstance(op, SeenWorker):
        conn.execute("INSERT OR REPLACE INTO workers VALUES (?,?,?,?)", (op.worker, op.name, op.host, op.seen))
    elif isinstance(op, ForgetWorker):
        conn.execute("DELETE FROM workers WHERE id = ?", (op.worker,))
    elif isinstance(op, SaveReservation):
        r = op.reservation
        conn.execute("INSERT INTO reservations (name, site, slots, start, end_, users, owner, created, mirror) "
                     "VALUES (?,?,?,?,?,?,?,?,?)",
                     (r.name, r.site, r.slots, r.start, r.end, json.dumps(sorted(r.users)), r.owner, op.created,
                      r.mirror))
    elif isinstance(op, DeleteReservation):
        conn.execute("DELETE FROM reservations WHERE name = ?", (op.name,))
    elif isinstance(op, SaveSiteJob):
        conn.execute("INSERT OR REPLACE INTO site_jobs VALUES (?,?,?,?)",
                     (op.site, op.native_id, op.payload, op.submitted))
    elif isinstance(op, DeleteSiteJob):
        conn.execute("DELETE FROM site_jobs WHERE site = ? AND native_id = ?", (op.site, op.native_id))
    elif isinstance(op, UpdateJob):
        conn.execute("UPDATE jobs SET spec = ? WHERE id = ?", (json.dumps(spec_to_row(op.spec)), op.job))
    elif isinstance(op, ReopenTasks):
        conn.execute("UPDATE jobs SET state = NULL, ended = NULL, done = NULL, failed = NULL, cancelled = NULL, "
                     "reason = NULL WHERE id = ?", (op.job,))
        for start in range(0, len(op.indexes), 1000):
            chunk = list(op.indexes[start:start + 1000])
            conn.execute("UPDATE attempts SET final = 0 WHERE job = ? AND final = 1 AND idx IN ("
                         + ",".join(["?"] * len(chunk)) + ")", [op.job, *chunk])
    elif isinstance(op, AddPlaces):
        conn.execute("UPDATE jobs SET places = (SELECT json_group_array(p) FROM (SELECT value AS p FROM "
                     "json_each(COALESCE(jobs.places, '[]')) UNION SELECT value FROM json_each(?) ORDER BY 1)) "
                     "WHERE id = ?", (json.dumps(list(op.places)), op.job))
    elif isinstance(op, ForgetOutputs):
        conn.execute("UPDATE attempts SET stdout = NULL, stderr = NULL WHERE job = ? AND idx >= ? AND idx < ? "
                     "AND (stdout IS NOT NULL OR stderr IS NOT NULL)", (op.job, op.start, op.stop))
        conn.execute("UPDATE jobs SET forgotten = ? WHERE id = ?", (op.at, op.job))
    elif isinstance(op, SaveWorkflow):
        conn.execute("INSERT INTO workflows VALUES (?,?,?,?,?)",
                     (op.id, op.owner, op.name, op.submitted, json.dumps([list(j) for j in op.jobs])))
    elif isinstance(op, SetSealKey):
        conn.execute("UPDATE meta SET value = ? WHERE key = 'seal_key'", (op.key.hex(),))
