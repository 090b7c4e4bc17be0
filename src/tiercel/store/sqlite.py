"""SQLite store in WAL mode with group commit.

One writer thread owns the write connection. It takes every op queued since
its last commit, applies them in one transaction, commits once and resolves
their futures (only when one of them fails is the batch made again with a
savepoint each, so that one bad op cannot sink its neighbours). Under
load a single fsync covers hundreds of results, so persistence does not cap
throughput; when idle, a lone write commits at once.

Job arrays are stored as one row holding their index ranges; a task gets a row
only when an attempt of it ends. Outputs live in the same rows (compressed
when large), never one file per task. A sweep's entries are one compressed
blob per job (``job_entries``), never a row per task.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import queue
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tiercel.core.model import AttemptRecord, Counts, Entries, JobId, JobState, Restored, UserName, WorkerId
from tiercel.core.reservations import Reservation
from tiercel.store import sqlite_writes
from tiercel.store.base import (
    STREAMS,
    AttemptRow,
    JobRow,
    Loaded,
    Record,
    SaveSiteJob,
    TokenRow,
    WorkflowRow,
    WriteOp,
)
from tiercel.store.history import Page, history_where, page_bounds, page_where
from tiercel.store.rows import exported, restore, unpack_entries, unpack_output
from tiercel.store.specs import spec_from_row

SCHEMA_VERSION = "1"

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tokens (
    digest TEXT PRIMARY KEY, user TEXT NOT NULL, role TEXT NOT NULL,
    label TEXT NOT NULL DEFAULT '', created REAL NOT NULL, last_used REAL);
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY, owner TEXT NOT NULL, spec TEXT NOT NULL, submitted REAL NOT NULL,
    state TEXT, ended REAL, total INTEGER NOT NULL,
    done INTEGER, failed INTEGER, cancelled INTEGER, reason TEXT, places TEXT, forgotten REAL);
CREATE INDEX IF NOT EXISTS jobs_unfinished ON jobs (state) WHERE state IS NULL;
CREATE INDEX IF NOT EXISTS jobs_owner ON jobs (owner, id);
CREATE INDEX IF NOT EXISTS jobs_ended ON jobs (ended, id);
CREATE INDEX IF NOT EXISTS jobs_owner_ended ON jobs (owner, ended, id);
CREATE INDEX IF NOT EXISTS jobs_state_ended ON jobs (state, ended, id);
CREATE TABLE IF NOT EXISTS attempts (
    job INTEGER NOT NULL, idx INTEGER NOT NULL, attempt INTEGER NOT NULL,
    outcome TEXT NOT NULL, final INTEGER NOT NULL, worker TEXT NOT NULL,
    exit_code INTEGER, started REAL NOT NULL, ended REAL NOT NULL,
    stdout BLOB, stderr BLOB,
    PRIMARY KEY (job, idx, attempt, worker));
CREATE TABLE IF NOT EXISTS workers (id TEXT PRIMARY KEY, name TEXT, host TEXT, seen REAL);
CREATE TABLE IF NOT EXISTS reservations (
    name TEXT PRIMARY KEY, site TEXT NOT NULL, slots INTEGER NOT NULL, start REAL NOT NULL, end_ REAL NOT NULL,
    users TEXT NOT NULL, owner TEXT NOT NULL, created REAL NOT NULL, mirror TEXT);
CREATE TABLE IF NOT EXISTS site_jobs (
    site TEXT NOT NULL, native_id TEXT NOT NULL, payload TEXT NOT NULL, submitted REAL NOT NULL,
    PRIMARY KEY (site, native_id));
CREATE TABLE IF NOT EXISTS job_entries (job INTEGER PRIMARY KEY, blob BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS workflows (
    id INTEGER PRIMARY KEY, owner TEXT NOT NULL, name TEXT NOT NULL, submitted REAL NOT NULL, jobs TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS workflows_owner ON workflows (owner, id);
"""

_Item = tuple[list[WriteOp], concurrent.futures.Future[None]]


class SqliteStore:
    def __init__(self, path: Path, *, synchronous: str = "FULL") -> None:
        self.path = path
        self.synchronous = synchronous
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._read: sqlite3.Connection | None = None
        self._read_lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self.synchronous}")
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    # ---- life cycle ------------------------------------------------------

    def open(self) -> Loaded:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = self._connect()
        conn.executescript(SCHEMA)
        if "mirror" not in {row[1] for row in conn.execute("PRAGMA table_info(reservations)")}:
            conn.execute("ALTER TABLE reservations ADD COLUMN mirror TEXT")  # stores made before mirrors
        if "reason" not in {row[1] for row in conn.execute("PRAGMA table_info(jobs)")}:
            conn.execute("ALTER TABLE jobs ADD COLUMN reason TEXT")  # stores made before jobs said why they ended
        if "places" not in {row[1] for row in conn.execute("PRAGMA table_info(jobs)")}:
            conn.execute("ALTER TABLE jobs ADD COLUMN places TEXT")  # stores made before history
            conn.execute("ALTER TABLE jobs ADD COLUMN forgotten REAL")
        if "cpu" not in {row[1] for row in conn.execute("PRAGMA table_info(attempts)")}:
            conn.execute("ALTER TABLE attempts ADD COLUMN cpu REAL")  # stores made before CPU time was kept
            conn.execute("ALTER TABLE jobs ADD COLUMN cpu REAL")
        if "last_used" not in {row[1] for row in conn.execute("PRAGMA table_info(tokens)")}:
            conn.execute("ALTER TABLE tokens ADD COLUMN last_used REAL")  # stores made before token listing
        conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
        conn.execute("INSERT OR IGNORE INTO meta VALUES ('seal_key', ?)", (secrets.token_hex(32),))
        loaded = self._load(conn)
        self._read = conn
        self._writer = threading.Thread(target=self._write_loop, args=(self._connect(),), daemon=True,
                                        name="tiercel-store-writer")
        self._writer.start()
        return loaded

    def close(self) -> None:
        if self._writer is not None:
            self._queue.put(None)
            self._writer.join()
            self._writer = None
        if self._read is not None:
            self._read.close()
            self._read = None

    def _load(self, conn: sqlite3.Connection) -> Loaded:
        row = conn.execute("SELECT COALESCE(MAX(id), 0) FROM jobs").fetchone()
        key = conn.execute("SELECT value FROM meta WHERE key = 'seal_key'").fetchone()
        loaded = Loaded(next_job_id=int(row[0]) + 1, seal_key=bytes.fromhex(key[0]))
        loaded.next_workflow_id = int(conn.execute("SELECT COALESCE(MAX(id), 0) FROM workflows").fetchone()[0]) + 1
        for digest, user, role in conn.execute("SELECT digest, user, role FROM tokens"):
            loaded.tokens[digest] = (UserName(user), role)
        loaded.workers = [WorkerId(w) for (w,) in conn.execute("SELECT id FROM workers")]
        for name, site, slots, start, end, users, owner, mirror in conn.execute(
                "SELECT name, site, slots, start, end_, users, owner, mirror FROM reservations ORDER BY start"):
            loaded.reservations.append(Reservation(name, site, slots, start, end, frozenset(json.loads(users)), owner,
                                                   mirror))
        for site, native, payload, submitted in conn.execute(
                "SELECT site, native_id, payload, submitted FROM site_jobs ORDER BY submitted"):
            loaded.site_jobs.append(SaveSiteJob(site, native, payload, submitted))
        for job_row in self._job_rows(conn, "WHERE state IS NULL ORDER BY id", ()):
            entries = self._entries(conn, job_row.id)
            if entries is not None:
                job_row = dataclasses.replace(job_row, spec=dataclasses.replace(job_row.spec, entries=entries))
            loaded.unfinished.append((job_row, self._restore(conn, job_row.id)))
        return loaded

    @staticmethod
    def _entries(conn: sqlite3.Connection, job_id: JobId) -> Entries | None:
        row = conn.execute("SELECT blob FROM job_entries WHERE job = ?", (job_id,)).fetchone()
        return None if row is None else unpack_entries(row[0])

    @staticmethod
    def _restore(conn: sqlite3.Connection, job_id: JobId) -> Restored:
        finals = conn.execute("SELECT idx, outcome FROM attempts WHERE job = ? AND final = 1 ORDER BY idx", (job_id,))
        unsettled = conn.execute(
            """SELECT idx, MAX(attempt), SUM(outcome IN ('failed', 'timeout')) FROM attempts
               WHERE job = ? GROUP BY idx HAVING MAX(final) = 0""",
            (job_id,),
        )
        cpu = conn.execute("SELECT SUM(cpu) FROM attempts WHERE job = ?", (job_id,)).fetchone()
        return restore(finals, unsettled.fetchall(), None if cpu is None else cpu[0])

    # ---- writes ----------------------------------------------------------

    def write(self, ops: list[WriteOp]) -> concurrent.futures.Future[None]:
        fut: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._queue.put((ops, fut))
        return fut

    def _write_loop(self, conn: sqlite3.Connection) -> None:
        stop = False
        while not stop:
            first = self._queue.get()
            if first is None:
                break
            batch = [first]
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            self._commit(conn, batch)
        conn.close()

    def _commit(self, conn: sqlite3.Connection, batch: list[_Item]) -> None:
        # Every write of the batch in one transaction; only if one of them fails is the batch made
        # again with a savepoint around each write, so that the bad one fails alone (a savepoint per
        # write costs two statements each, which at one write per worker frame is most of a commit).
        try:
            conn.execute("BEGIN IMMEDIATE")
            records: list[AttemptRecord] = []  # the batch's attempts, inserted together
            for ops, _ in batch:
                for op in ops:
                    if isinstance(op, Record):
                        records += op.records
                        continue
                    if records:  # before any other write: it may be about them (a job reopened)
                        sqlite_writes.insert_records(conn, records)
                        records = []
                    sqlite_writes.apply(conn, op)
            if records:
                sqlite_writes.insert_records(conn, records)
            conn.execute("COMMIT")
        except Exception:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self._commit_each(conn, batch)
            return
        for _, fut in batch:
            fut.set_result(None)

    def _commit_each(self, conn: sqlite3.Connection, batch: list[_Item]) -> None:
        errors: dict[int, BaseException] = {}
        try:
            conn.execute("BEGIN IMMEDIATE")
            for n, (ops, _) in enumerate(batch):
                conn.execute("SAVEPOINT op")
                try:
                    for op in ops:
                        sqlite_writes.apply(conn, op)
                    conn.execute("RELEASE op")
                except Exception as exc:  # one bad op (a bad value, a constraint) fails alone
                    conn.execute("ROLLBACK TO op")
                    conn.execute("RELEASE op")
                    errors[n] = exc
            conn.execute("COMMIT")
        except BaseException as exc:  # the commit itself failed (disk full, I/O error)
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            for _, fut in batch:
                fut.set_exception(exc)
            return
        for n, (_, fut) in enumerate(batch):
            if n in errors:
                fut.set_exception(errors[n])
            else:
                fut.set_result(None)

    # ---- reads -----------------------------------------------------------

    def _reader(self) -> sqlite3.Connection:
        if self._read is None:
            raise RuntimeError("store is not open")
        return self._read

    @staticmethod
    def _job_rows(conn: sqlite3.Connection, where: str, args: tuple[object, ...]) -> list[JobRow]:
        rows = conn.execute(
            "SELECT id, owner, spec, submitted, state, ended, total, done, failed, cancelled, reason, places, "
            "forgotten, cpu FROM jobs " + where,
            args,
        ).fetchall()
        out = []
        for (jid, owner, spec, submitted, state, ended, total, done, failed, cancelled, reason, places,
             forgotten, cpu) in rows:
            counts = None
            if state is not None:
                counts = Counts(total=total, done=done, failed=failed, cancelled=cancelled)
            out.append(
                JobRow(JobId(jid), UserName(owner), spec_from_row(json.loads(spec)), submitted,
                       None if state is None else JobState(state), ended, counts, reason,
                       tuple(json.loads(places)) if places else (), forgotten, cpu)
            )
        return out

    def job(self, job_id: JobId) -> JobRow | None:
        with self._read_lock:
            rows = self._job_rows(self._reader(), "WHERE id = ?", (job_id,))
        return rows[0] if rows else None

    def jobs(self, owner: UserName | None, limit: int) -> list[JobRow]:
        with self._read_lock:
            if owner is None:
                return self._job_rows(self._reader(), "ORDER BY id DESC LIMIT ?", (limit,))
            return self._job_rows(self._reader(), "WHERE owner = ? ORDER BY id DESC LIMIT ?", (owner, limit))

    def attempts(self, job_id: JobId, index: int | None, final_only: bool) -> list[AttemptRow]:
        sql = ("SELECT job, idx, attempt, outcome, final, worker, exit_code, started, ended, stdout, stderr "
               "FROM attempts WHERE job = ?")
        args: list[object] = [job_id]
        if index is not None:
            sql += " AND idx = ?"
            args.append(index)
        if final_only:
            sql += " AND final = 1"
        sql += " ORDER BY idx, attempt, ended"
        # Outputs can be large: read them on a connection of this call's own, so that the
        # manager's quick reads on the shared one never wait behind them.
        conn = self._connect()
        try:
            rows = conn.execute(sql, args).fetchall()
        finally:
            conn.close()
        return [
            AttemptRow(JobId(j), i, a, o, bool(f), w, x, s, e, unpack_output(out), unpack_output(err))
            for j, i, a, o, f, w, x, s, e, out, err in rows
        ]

    def attempts_page(self, job_id: JobId, after: int, limit: int, final_only: bool = False,
                      streams: tuple[str, ...] = STREAMS, within: tuple[tuple[int, int], ...] = (),
                      max_bytes: int | None = None) -> list[AttemptRow]:
        page = Page(limit, max_bytes)
        conn = self._connect()  # outputs can be large: not on the shared connection, as in attempts()
        try:
            for above, below in page_bounds(after, within):
                if page.full:
                    break
                where, args = page_where(job_id, above, below, final_only, "?")
                # The read's last task: the n-th index in its bounds (read from the primary key alone);
                # its rows are read one by one, as the page takes them.
                page.take(conn.execute(
                    f"SELECT job, idx, attempt, outcome, final, worker, exit_code, started, ended, {_outputs(streams)} "
                    f"FROM attempts WHERE {where} AND idx <= (SELECT MAX(idx) FROM (SELECT DISTINCT idx FROM attempts "
                    f"WHERE {where} ORDER BY idx LIMIT ?)) ORDER BY idx, attempt, ended, worker",
                    (*args, *args, limit - page.tasks)))
        finally:
            conn.close()
        return page.rows

    def history(self, owner: UserName | None, since: float | None, states: tuple[JobState, ...],
                limit: int) -> list[JobRow]:
        where, args = history_where(owner, since, states, "?")
        with self._read_lock:
            return self._job_rows(self._reader(), f"WHERE {where} ORDER BY ended DESC, id DESC LIMIT ?",
                                  (*args, limit))

    def outputs_size(self, job_id: JobId) -> tuple[int, int]:
        with self._read_lock:
            rows, size = self._reader().execute(
                "SELECT COUNT(*), COALESCE(SUM(COALESCE(LENGTH(stdout), 0) + COALESCE(LENGTH(stderr), 0)), 0) "
                "FROM attempts WHERE job = ? AND (stdout IS NOT NULL OR stderr IS NOT NULL)", (job_id,)).fetchone()
        return int(rows), int(size)

    def entries(self, job_id: JobId) -> Entries | None:
        with self._read_lock:
            return self._entries(self._reader(), job_id)

    def workflow(self, workflow_id: int) -> WorkflowRow | None:
        rows = self.workflows_where("WHERE id = ?", (workflow_id,))
        return rows[0] if rows else None

    def workflows(self, owner: UserName | None, limit: int) -> list[WorkflowRow]:
        if owner is None:
            return self.workflows_where("ORDER BY id DESC LIMIT ?", (limit,))
        return self.workflows_where("WHERE owner = ? ORDER BY id DESC LIMIT ?", (owner, limit))

    def workflows_where(self, where: str, args: tuple[object, ...]) -> list[WorkflowRow]:
        with self._read_lock:
            rows = self._reader().execute("SELECT id, owner, name, submitted, jobs FROM workflows " + where,
                                          args).fetchall()
        return [WorkflowRow(int(i), UserName(o), n, s, tuple((str(a), JobId(int(b))) for a, b in json.loads(j)))
                for i, o, n, s, j in rows]

    def tokens(self) -> list[TokenRow]:
        with self._read_lock:
            rows = self._reader().execute(
                "SELECT digest, user, role, label, created, last_used FROM tokens ORDER BY created").fetchall()
        return [TokenRow(d, UserName(u), r, lab, c, used) for d, u, r, lab, c, used in rows]

    def export(self, chunk: int) -> Iterator[list[WriteOp]]:
        conn = self._connect()
        try:
            conn.execute("BEGIN")  # one snapshot for every table (WAL): a manager may be running

            def rows(table: str) -> Iterator[tuple[Any, ...]]:
                for row in conn.execute(_EXPORT[table]):
                    if table == "jobs":
                        row = (*row[:2], json.loads(row[2]), *row[3:])
                    elif table == "reservations":
                        row = (*row[:5], json.loads(row[5]), *row[6:])
                    yield row

            key = conn.execute("SELECT value FROM meta WHERE key = 'seal_key'").fetchone()
            yield from exported(rows, bytes.fromhex(key[0]), chunk)
            conn.execute("COMMIT")
        finally:
            conn.close()

    def task_outcomes(self, job_id: JobId) -> dict[int, tuple[str | None, int]]:
        """Each task that has attempts: how it settled (None: not settled) and its latest attempt."""
        conn = self._connect()
        try:
            rows = conn.execute("SELECT idx, MAX(CASE WHEN final = 1 THEN outcome END), MAX(attempt) FROM attempts "
                                "WHERE job = ? GROUP BY idx", (job_id,)).fetchall()
        finally:
            conn.close()
        return {int(i): (o, int(a)) for i, o, a in rows}

    def restored(self, job_id: JobId) -> Restored:
        conn = self._connect()
        try:
            return self._restore(conn, job_id)
        finally:
            conn.close()

    def meta(self, key: str) -> str | None:
        with self._read_lock:
            row = self._reader().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def settled_per_step(self, job_id: JobId, start: float, step: float) -> list[tuple[int, int]]:
        conn = self._connect()  # it reads every attempt of the job: not on the shared connection, as attempts()
        try:
            rows = conn.execute(
                "SELECT MAX(0, CAST((ended - ?) / ? AS INTEGER)) AS span, COUNT(*) FROM attempts "
                "WHERE job = ? AND final = 1 GROUP BY span ORDER BY span", (start, step, job_id)).fetchall()
        finally:
            conn.close()
        return [(int(span), int(n)) for span, n in rows]


_EXPORT = {
    "jobs": "SELECT j.id, j.owner, j.spec, j.submitted, j.state, j.ended, j.done, j.failed, j.cancelled, j.reason, "
            "e.blob, j.places, j.forgotten, j.cpu FROM jobs j LEFT JOIN job_entries e ON e.job = j.id ORDER BY j.id",
    "attempts": "SELECT job, idx, attempt, outcome, final, worker, exit_code, started, ended, stdout, stderr, "
                "cpu FROM attempts ORDER BY job, idx, attempt, ended",
    "tokens": "SELECT digest, user, role, label, created, last_used FROM tokens ORDER BY created",
    "workers": "SELECT id, name, host, seen FROM workers ORDER BY id",
    "reservations": "SELECT name, site, slots, start, end_, users, owner, created, mirror FROM reservations "
                    "ORDER BY start",
    "site_jobs": "SELECT site, native_id, payload, submitted FROM site_jobs ORDER BY submitted",
    "workflows": "SELECT id, owner, name, submitted, jobs FROM workflows ORDER BY id",
}


def _outputs(streams: tuple[str, ...]) -> str:
    """The output columns to read: those named, the others as NULL."""
    return ", ".join(name if name in streams else "NULL" for name in STREAMS)
