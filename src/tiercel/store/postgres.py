"""PostgreSQL store: the same interface and properties as SQLite, for several managers on one database.

The rows mean what they mean in SQLite (a job array is one row of ranges, a task gets a row only
when an attempt of it ends, outputs are compressed when large, a sweep's entries are one blob per
job), and writes are group-committed
the same way: one writer thread takes every op queued since its last commit and applies them in
one transaction, a result's future resolving only once that transaction is durable.

What PostgreSQL adds is the lease (store/lease.py): only the manager holding it writes. Every
write transaction begins by calling ``tiercel_fence(epoch)``, a function in the database that
raises unless the fence row still carries the writer's epoch, with a share lock on that row held
to the commit; a take-over sets the fence's epoch under that row's lock, so it waits for a write
in flight, and every later write of the old epoch is refused by the database itself. The lease's
renewal touches only the lease row, so writes never hold it up.

The schema and its migrations are postgres_schema.py; what each write op does in SQL is
postgres_writes.py; this module is the store itself: its life cycle, the writer thread, the reads.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from tiercel.core.model import Counts, Entries, JobId, JobState, Restored, UserName, WorkerId
from tiercel.core.reservations import Reservation
from tiercel.store.base import STREAMS, AttemptRow, JobRow, Loaded, SaveSiteJob, TokenRow, WorkflowRow, WriteOp
from tiercel.store.history import Page, history_where, page_bounds, page_where
from tiercel.store.lease import FENCED, Lease, LeaseLost, StoreUnreachable, hide_password
from tiercel.store.postgres_schema import SchemaTooNew, migrate
from tiercel.store.postgres_writes import apply_all
from tiercel.store.rows import exported, restore, unpack_entries, unpack_output
from tiercel.store.specs import spec_from_row

log = logging.getLogger("tiercel.store")

__all__ = ["PostgresStore", "SchemaTooNew", "migrate"]  # the schema's two live in postgres_schema.py

_Item = tuple[list[WriteOp], concurrent.futures.Future[None]]


class PostgresStore:
    def __init__(self, url: str, *, name: str = "", advertise: str = "", ttl: float = 5.0,
                 on_lost: Callable[[BaseException], None] | None = None) -> None:
        self.url = url
        self.shown = hide_password(url)
        self.lease = Lease(url, name=name or "manager", advertise=advertise, ttl=ttl, on_lost=self._lost)
        self.on_lost = on_lost
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._pool: ConnectionPool | None = None
        self._failed: BaseException | None = None  # once the lease is lost, every write fails with this

    # ---- life cycle ------------------------------------------------------

    def prepare(self) -> None:
        """Reach the database and bring its schema to this version (StoreUnreachable, SchemaTooNew)."""
        try:
            with psycopg.connect(self.url, autocommit=True, connect_timeout=5) as conn:
                migrate(conn, self.shown)
        except psycopg.OperationalError as exc:
            raise StoreUnreachable(self.shown, exc) from None

    def open(self) -> Loaded:
        """Load the state to resume from; takes the lease first if this store does not hold it yet."""
        if self.lease.epoch is None:
            self.prepare()
            if not self.lease.acquire():
                who = self.lease.holder_said()
                raise LeaseLost(f"store {self.shown}: another manager holds it ({who}); "
                                "start this one as a standby, or stop that one")
        self._failed = None
        self._pool = ConnectionPool(self.url, min_size=1, max_size=4, open=True, timeout=10,
                                    kwargs={"autocommit": True}, name="tiercel-read")
        with self._read() as conn:
            loaded = self._load(conn)
        self.lease.start_renewing()
        write_conn = psycopg.connect(self.url, connect_timeout=5)
        self._writer = threading.Thread(target=self._write_loop, args=(write_conn,), daemon=True,
                                        name="tiercel-store-writer")
        self._writer.start()
        return loaded

    def close(self) -> None:
        if self._writer is not None:
            self._queue.put(None)
            self._writer.join()
            self._writer = None
        self.lease.release()
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def _lost(self, exc: BaseException) -> None:
        """The lease is gone (a take-over, or the database out of reach past it): writes stop here."""
        self._failed = exc
        if self.on_lost is not None:
            self.on_lost(exc)

    def _load(self, conn: psycopg.Connection[Any]) -> Loaded:
        top = conn.execute("SELECT COALESCE(MAX(id), 0) FROM jobs").fetchone()
        key = conn.execute("SELECT value FROM meta WHERE key = 'seal_key'").fetchone()
        assert top is not None and key is not None
        loaded = Loaded(next_job_id=int(top[0]) + 1, seal_key=bytes.fromhex(key[0]))
        flows = conn.execute("SELECT COALESCE(MAX(id), 0) FROM workflows").fetchone()
        loaded.next_workflow_id = int(flows[0]) + 1 if flows else 1
        for digest, user, role in conn.execute("SELECT digest, username, role FROM tokens"):
            loaded.tokens[digest] = (UserName(user), role)
        loaded.workers = [WorkerId(w) for (w,) in conn.execute("SELECT id FROM workers")]
        for name, site, slots, start, end, users, owner, mirror in conn.execute(
                "SELECT name, site, slots, start_, end_, users, owner, mirror FROM reservations ORDER BY start_"):
            loaded.reservations.append(Reservation(name, site, slots, start, end, frozenset(users), owner, mirror))
        for site, native, payload, submitted in conn.execute(
                "SELECT site, native_id, payload, submitted FROM site_jobs ORDER BY submitted"):
            loaded.site_jobs.append(SaveSiteJob(site, native, payload, submitted))
        for job_row in _job_rows(conn, "WHERE state IS NULL ORDER BY id", ()):
            entries = _entries(conn, job_row.id)
            if entries is not None:
                job_row = dataclasses.replace(job_row, spec=dataclasses.replace(job_row.spec, entries=entries))
            loaded.unfinished.append((job_row, _restore(conn, job_row.id)))
        return loaded

    # ---- writes ----------------------------------------------------------

    def write(self, ops: list[WriteOp]) -> concurrent.futures.Future[None]:
        fut: concurrent.futures.Future[None] = concurrent.futures.Future()
        if self._failed is not None:
            fut.set_exception(self._failed)
        else:
            self._queue.put((ops, fut))
        return fut

    def _write_loop(self, conn: psycopg.Connection[Any]) -> None:
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
            conn = self._commit(conn, batch)
        conn.close()

    def _commit(self, conn: psycopg.Connection[Any], batch: list[_Item]) -> psycopg.Connection[Any]:
        """Commit a batch; returns the connection to use next (a new one after the old broke)."""
        if self._failed is not None:
            for _, fut in batch:
                fut.set_exception(self._failed)
            return conn
        epoch = self.lease.epoch
        try:
            # The quick way: every op of the batch in one pipelined transaction.
            with conn.pipeline(), conn.transaction():
                conn.execute("SELECT tiercel_fence(%s)", (epoch,))
                apply_all(conn, [op for ops, _ in batch for op in ops])
        except psycopg.Error as exc:
            if conn.broken or isinstance(exc, psycopg.OperationalError) or exc.sqlstate == FENCED:
                return self._fail(conn, batch, exc)
            return self._one_by_one(conn, batch, epoch)
        for _, fut in batch:
            fut.set_result(None)
        return conn

    def _one_by_one(self, conn: psycopg.Connection[Any], batch: list[_Item], epoch: int | None
                    ) -> psycopg.Connection[Any]:
        """A batch that failed as a whole: again, each write in a savepoint of its own, so that one
        bad op (a value out of range, a constraint) fails alone and its neighbours are kept."""
        errors: dict[int, BaseException] = {}
        try:
            with conn.transaction():
                conn.execute("SELECT tiercel_fence(%s)", (epoch,))
                for n, (ops, _) in enumerate(batch):
                    try:
                        with conn.transaction():
                            apply_all(conn, ops)
                    except psycopg.Error as exc:
                        if conn.broken or isinstance(exc, psycopg.OperationalError):
                            raise
                        errors[n] = exc
        except psycopg.Error as exc:
            return self._fail(conn, batch, exc)
        for n, (_, fut) in enumerate(batch):
            if n in errors:
                fut.set_exception(errors[n])
            else:
                fut.set_result(None)
        return conn

    def _fail(self, conn: psycopg.Connection[Any], batch: list[_Item], exc: psycopg.Error
              ) -> psycopg.Connection[Any]:
        """Nothing of the batch was kept: a fenced epoch or a lost connection fails every write in it."""
        error: BaseException = exc
        if exc.sqlstate == FENCED:
            error = LeaseLost(f"store {self.shown}: this manager's lease is over ({exc.diag.message_primary})")
            self.lease.lost(error)
        elif conn.broken or isinstance(exc, psycopg.OperationalError):
            error = StoreUnreachable(self.shown, exc)
        for _, fut in batch:
            fut.set_exception(error)
        if not conn.broken:
            return conn
        conn.close()
        try:
            return psycopg.connect(self.url, connect_timeout=5)
        except psycopg.OperationalError:
            return conn  # still closed: the next batch fails the same way, quickly

    # ---- reads -----------------------------------------------------------

    @contextmanager
    def _read(self) -> Iterator[psycopg.Connection[Any]]:
        if self._pool is None:
            raise RuntimeError("store is not open")
        with self._pool.connection() as conn:
            yield conn

    def job(self, job_id: JobId) -> JobRow | None:
        with self._read() as conn:
            rows = _job_rows(conn, "WHERE id = %s", (job_id,))
        return rows[0] if rows else None

    def jobs(self, owner: UserName | None, limit: int) -> list[JobRow]:
        with self._read() as conn:
            if owner is None:
                return _job_rows(conn, "ORDER BY id DESC LIMIT %s", (limit,))
            return _job_rows(conn, "WHERE owner = %s ORDER BY id DESC LIMIT %s", (owner, limit))

    def attempts(self, job_id: JobId, index: int | None, final_only: bool) -> list[AttemptRow]:
        sql = ("SELECT job, idx, attempt, outcome, final, worker, exit_code, started, ended, stdout, stderr "
               "FROM attempts WHERE job = %s")
        args: list[object] = [job_id]
        if index is not None:
            sql += " AND idx = %s"
            args.append(index)
        if final_only:
            sql += " AND final"
        sql += " ORDER BY idx, attempt, ended"
        with self._read() as conn:
            rows = conn.execute(sql, args).fetchall()
        return [
            AttemptRow(JobId(j), i, a, o, bool(f), w, x, s, e, unpack_output(out), unpack_output(err))
            for j, i, a, o, f, w, x, s, e, out, err in rows
        ]

    def attempts_page(self, job_id: JobId, after: int, limit: int, final_only: bool = False,
                      streams: tuple[str, ...] = STREAMS, within: tuple[tuple[int, int], ...] = (),
                      max_bytes: int | None = None) -> list[AttemptRow]:
        page = Page(limit, max_bytes)
        with self._read() as conn, conn.transaction():
            for above, below in page_bounds(after, within):
                if page.full:
                    break
                where, args = page_where(job_id, above, below, final_only, "%s")
                # The read's last task: the n-th index in its bounds (read from the primary key); its rows
                # come from a server-side cursor, a few at a time, as the page takes them.
                with conn.cursor(name="tiercel_page") as cur:
                    cur.itersize = 16
                    cur.execute(
                        f"SELECT job, idx, attempt, outcome, final, worker, exit_code, started, ended, "
                        f"{_outputs(streams)} FROM attempts WHERE {where} AND idx <= (SELECT MAX(idx) FROM (SELECT "
                        f"DISTINCT idx FROM attempts WHERE {where} ORDER BY idx LIMIT %s) AS page) "
                        "ORDER BY idx, attempt, ended, worker", (*args, *args, limit - page.tasks))
                    page.take(cur)
        return page.rows

    def history(self, owner: UserName | None, since: float | None, states: tuple[JobState, ...],
                limit: int) -> list[JobRow]:
        where, args = history_where(owner, since, states, "%s")
        with self._read() as conn:
            return _job_rows(conn, f"WHERE {where} ORDER BY ended DESC, id DESC LIMIT %s", (*args, limit))

    def outputs_size(self, job_id: JobId) -> tuple[int, int]:
        with self._read() as conn:
            row = conn.execute(
                "SELECT COUNT(*), COALESCE(SUM(COALESCE(octet_length(stdout), 0) + COALESCE(octet_length(stderr), 0)), "
                "0) FROM attempts WHERE job = %s AND (stdout IS NOT NULL OR stderr IS NOT NULL)", (job_id,)).fetchone()
        assert row is not None
        return int(row[0]), int(row[1])

    def entries(self, job_id: JobId) -> Entries | None:
        with self._read() as conn:
            return _entries(conn, job_id)

    def workflow(self, workflow_id: int) -> WorkflowRow | None:
        rows = self.workflows_where("WHERE id = %s", (workflow_id,))
        return rows[0] if rows else None

    def workflows(self, owner: UserName | None, limit: int) -> list[WorkflowRow]:
        if owner is None:
            return self.workflows_where("ORDER BY id DESC LIMIT %s", (limit,))
        return self.workflows_where("WHERE owner = %s ORDER BY id DESC LIMIT %s", (owner, limit))

    def workflows_where(self, where: str, args: tuple[object, ...]) -> list[WorkflowRow]:
        with self._read() as conn:
            rows = conn.execute("SELECT id, owner, name, submitted, jobs FROM workflows " + where, args).fetchall()
        return [WorkflowRow(int(i), UserName(o), n, s, tuple((str(a), JobId(int(b))) for a, b in j))
                for i, o, n, s, j in rows]

    def tokens(self) -> list[TokenRow]:
        with self._read() as conn:
            rows = conn.execute(
                "SELECT digest, username, role, label, created, last_used FROM tokens ORDER BY created").fetchall()
        return [TokenRow(d, UserName(u), r, lab, c, used) for d, u, r, lab, c, used in rows]

    def export(self, chunk: int) -> Iterator[list[WriteOp]]:
        with psycopg.connect(self.url, connect_timeout=5) as conn:
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ  # one snapshot: a manager may run
            conn.read_only = True

            def rows(table: str) -> Iterator[tuple[Any, ...]]:
                with conn.cursor(name=f"export_{table}") as cur:  # server-side: streamed, not all in memory
                    cur.itersize = max(chunk, 100)
                    yield from cur.execute(_EXPORT[table])

            key = conn.execute("SELECT value FROM meta WHERE key = 'seal_key'").fetchone()
            assert key is not None
            yield from exported(rows, bytes.fromhex(key[0]), chunk)
            conn.rollback()

    def task_outcomes(self, job_id: JobId) -> dict[int, tuple[str | None, int]]:
        """Each task that has attempts: how it settled (None: not settled) and its latest attempt."""
        with self._read() as conn:
            rows = conn.execute("SELECT idx, MAX(outcome) FILTER (WHERE final), MAX(attempt) FROM attempts "
                                "WHERE job = %s GROUP BY idx", (job_id,)).fetchall()
        return {int(i): (o, int(a)) for i, o, a in rows}

    def restored(self, job_id: JobId) -> Restored:
        with self._read() as conn:
            return _restore(conn, job_id)

    def meta(self, key: str) -> str | None:
        with self._read() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = %s", (key,)).fetchone()
        return None if row is None else str(row[0])

    def settled_per_step(self, job_id: JobId, start: float, step: float) -> list[tuple[int, int]]:
        with self._read() as conn:
            rows = conn.execute(
                "SELECT GREATEST(0, FLOOR((ended - %s) / %s))::BIGINT AS span, COUNT(*) FROM attempts "
                "WHERE job = %s AND final GROUP BY span ORDER BY span", (start, step, job_id)).fetchall()
        return [(int(span), int(n)) for span, n in rows]


def _job_rows(conn: psycopg.Connection[Any], where: str, args: tuple[object, ...]) -> list[JobRow]:
    rows = conn.execute(
        "SELECT id, owner, spec, submitted, state, ended, total, done, failed, cancelled, reason, places, forgotten, "
        "cpu FROM jobs " + where,
        args,
    ).fetchall()
    out = []
    for (jid, owner, spec, submitted, state, ended, total, done, failed, cancelled, reason, places, forgotten,
         cpu) in rows:
        counts = None
        if state is not None:
            counts = Counts(total=total, done=done, failed=failed, cancelled=cancelled)
        out.append(JobRow(JobId(jid), UserName(owner), spec_from_row(spec), submitted,
                          None if state is None else JobState(state), ended, counts, reason,
                          tuple(places or ()), forgotten, cpu))
    return out


def _entries(conn: psycopg.Connection[Any], job_id: JobId) -> Entries | None:
    row = conn.execute("SELECT blob FROM job_entries WHERE job = %s", (job_id,)).fetchone()
    return None if row is None else unpack_entries(row[0])


def _restore(conn: psycopg.Connection[Any], job_id: JobId) -> Restored:
    finals = conn.execute("SELECT idx, outcome FROM attempts WHERE job = %s AND final ORDER BY idx",
                          (job_id,)).fetchall()
    unsettled = conn.execute(
        """SELECT idx, MAX(attempt), COUNT(*) FILTER (WHERE outcome IN ('failed', 'timeout')) FROM attempts
           WHERE job = %s GROUP BY idx HAVING NOT bool_or(final)""",
        (job_id,),
    ).fetchall()
    cpu = conn.execute("SELECT SUM(cpu) FROM attempts WHERE job = %s", (job_id,)).fetchone()
    return restore(finals, unsettled, None if cpu is None else cpu[0])


_EXPORT = {
    "jobs": "SELECT j.id, j.owner, j.spec, j.submitted, j.state, j.ended, j.done, j.failed, j.cancelled, j.reason, "
            "e.blob, j.places, j.forgotten, j.cpu FROM jobs j LEFT JOIN job_entries e ON e.job = j.id ORDER BY j.id",
    "attempts": "SELECT job, idx, attempt, outcome, final, worker, exit_code, started, ended, stdout, stderr, "
                "cpu FROM attempts ORDER BY job, idx, attempt, ended",
    "tokens": "SELECT digest, username, role, label, created, last_used FROM tokens ORDER BY created",
    "workers": "SELECT id, name, host, seen FROM workers ORDER BY id",
    "reservations": "SELECT name, site, slots, start_, end_, users, owner, created, mirror FROM reservations "
                    "ORDER BY start_",
    "site_jobs": "SELECT site, native_id, payload, submitted FROM site_jobs ORDER BY submitted",
    "workflows": "SELECT id, owner, name, submitted, jobs FROM workflows ORDER BY id",
}


def _outputs(streams: tuple[str, ...]) -> str:
    """The output columns to read: those named, the others as NULL."""
    return ", ".join(name if name in streams else "NULL::bytea" for name in STREAMS)


