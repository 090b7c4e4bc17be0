"""The lease: which of several managers on one PostgreSQL database is the active one.

One row holds the lease: the epoch, who holds it and until when, by the database's clock (so
managers on hosts whose clocks differ agree); another, the fence, holds the epoch that writes
must carry, set in the same statement that takes the lease. The active manager renews it every ttl/5; a
standby takes it only once it has run out, and taking it increments the epoch. Every write
transaction of the store is fenced by that epoch (postgres.py), so an old leader that was
paused or cut off past its lease writes nothing once another has taken over.

The managers table is a directory for people and clients: who runs, at which URL, seen when.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg

from tiercel.store.base import ManagerEntry

log = logging.getLogger("tiercel.store")

FENCED = "TC001"  # the SQLSTATE tiercel_fence() raises for a write of an epoch that is over


class LeaseLost(Exception):
    """This manager does not (or no longer) hold the store's lease: it must not write."""


class StoreUnreachable(Exception):
    def __init__(self, shown: str, exc: BaseException) -> None:
        why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        super().__init__(f"store {shown}: cannot reach the database ({why}); check that PostgreSQL runs there "
                         "and that the host, port, database, user and password are right (and pg_hba.conf lets "
                         "this host in)")


def hide_password(url: str) -> str:
    """The URL as it may be shown: any password replaced by ***."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<a URL that does not parse>"
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


@dataclass(frozen=True)
class Holder:
    epoch: int
    name: str | None
    url: str | None
    since: datetime | None
    expires: datetime
    live: bool  # whether the lease has not run out


@dataclass(frozen=True)
class ManagerSeen:
    name: str
    url: str
    started: datetime
    seen: datetime
    age: float  # seconds since it was last seen, by the database's clock


class Lease:
    def __init__(self, url: str, *, name: str, advertise: str, ttl: float,
                 on_lost: Callable[[BaseException], None]) -> None:
        self.url = url
        self.name = name
        self.advertise = advertise
        self.ttl = ttl
        self.instance = secrets.token_hex(8)  # this process: a restarted manager never takes over its old lease
        self.epoch: int | None = None
        self.since: datetime | None = None
        self._on_lost = on_lost
        self._gone: BaseException | None = None
        self._conn: psycopg.Connection[Any] | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self._started: datetime | None = None

    # ---- one connection of its own, made again when it breaks --------------

    def execute(self, sql: str, args: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        """Run one statement on the lease's own connection (made again when it broke)."""
        with self._lock:
            if self._conn is None or self._conn.closed or self._conn.broken:
                self._conn = psycopg.connect(self.url, autocommit=True, connect_timeout=max(1, int(self.ttl)))
            try:
                cur = self._conn.execute(sql, args)
                return cur.fetchall() if cur.description else []
            except psycopg.OperationalError:
                self._conn.close()
                self._conn = None
                raise

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # ---- taking, keeping and giving up the lease ------------------------------

    def acquire(self) -> bool:
        """Take the lease if it has run out (or was given up); True if this manager now holds it."""
        self.register()
        # One statement, so one transaction: the lease and the fence's epoch move together. Setting
        # the fence waits for every write of the old epoch in flight (each holds it shared).
        rows = self.execute(
            "WITH taken AS (UPDATE lease SET epoch = epoch + 1, holder = %s, name = %s, url = %s, "
            "since = clock_timestamp(), expires = clock_timestamp() + make_interval(secs => %s) "
            "WHERE id = 1 AND expires < clock_timestamp() RETURNING epoch, since) "
            "UPDATE fence SET epoch = taken.epoch FROM taken WHERE fence.id = 1 RETURNING taken.epoch, taken.since",
            (self.instance, self.name, self.advertise, self.ttl))
        if not rows:
            return False
        self.epoch, self.since = int(rows[0][0]), rows[0][1]
        self._gone = None
        log.info("holding the store's lease: epoch %d", self.epoch)
        return True

    def register(self) -> None:
        """Say this manager runs (for `tiercel managers`), whether active or standby."""
        if self._started is None:
            rows = self.execute("SELECT clock_timestamp()")
            self._started = rows[0][0]
        self.execute(
            "INSERT INTO managers VALUES (%s, %s, %s, %s, clock_timestamp()) ON CONFLICT (name) DO UPDATE SET "
            "url = EXCLUDED.url, instance = EXCLUDED.instance, started = EXCLUDED.started, seen = EXCLUDED.seen",
            (self.name, self.advertise, self.instance, self._started))

    def start_renewing(self) -> None:
        if self._renewer is not None:
            return
        self._stop.clear()
        self._renewer = threading.Thread(target=self._renew_loop, daemon=True, name="tiercel-lease")
        self._renewer.start()

    def _renew_loop(self) -> None:
        last_ok = time.monotonic()
        while not self._stop.wait(self.ttl / 5):
            try:
                rows = self.execute(
                    "UPDATE lease SET expires = clock_timestamp() + make_interval(secs => %s) "
                    "WHERE id = 1 AND epoch = %s AND holder = %s RETURNING epoch",
                    (self.ttl, self.epoch, self.instance))
                if not rows:
                    self.lost(LeaseLost(f"another manager took over the store (after epoch {self.epoch})"))
                    return
                last_ok = time.monotonic()
                self.register()
            except psycopg.Error as exc:
                if time.monotonic() - last_ok > self.ttl:
                    self.lost(LeaseLost(f"the database was out of reach for more than the lease ({self.ttl:g} s): "
                                        f"{str(exc).strip().splitlines()[0] if str(exc).strip() else exc}"))
                    return
                log.warning("could not renew the lease (%s); trying again", exc)

    def lost(self, exc: BaseException) -> None:
        """The lease is gone: said once, and the store stops writing."""
        with self._lock:
            if self._gone is not None:
                return
            self._gone = exc
        self._stop.set()
        log.critical("lost the store's lease: %s", exc)
        self._on_lost(exc)

    def release(self) -> None:
        """Give the lease up at once (a clean stop), so a standby need not wait for it to run out."""
        self._stop.set()
        if self._renewer is not None and self._renewer is not threading.current_thread():
            self._renewer.join(timeout=self.ttl)
        self._renewer = None
        if self.epoch is not None and self._gone is None:
            try:
                self.execute("UPDATE lease SET expires = '-infinity' WHERE id = 1 AND epoch = %s AND holder = %s",
                              (self.epoch, self.instance))
            except psycopg.Error as exc:
                log.warning("could not give the lease up (%s): a standby takes over once it runs out", exc)
        self.epoch = None
        self.leave()

    def leave(self) -> None:
        """This manager stops: off the list of managers."""
        try:
            self.execute("DELETE FROM managers WHERE instance = %s", (self.instance,))
        except psycopg.Error:
            pass  # it shows as not seen for a while instead
        self.close()

    # ---- what people see -------------------------------------------------------

    def holder(self) -> Holder:
        rows = self.execute("SELECT epoch, name, url, since, expires, expires > clock_timestamp() FROM lease")
        epoch, name, url, since, expires, live = rows[0]
        return Holder(int(epoch), name, url, since, expires, bool(live))

    def holder_said(self) -> str:
        h = self.holder()
        return f"{h.name} at {h.url}, epoch {h.epoch}"

    def managers(self) -> list[ManagerSeen]:
        rows = self.execute("SELECT name, url, started, seen, EXTRACT(EPOCH FROM clock_timestamp() - seen) "
                             "FROM managers ORDER BY name")
        return [ManagerSeen(n, u, s, seen, float(age)) for n, u, s, seen, age in rows]


def roster(lease: Lease) -> list[ManagerEntry]:
    """Every manager on this store: the lease's holder active (while the lease lives), the others standby."""
    holder = lease.holder()
    out = []
    for m in lease.managers():
        active = holder.live and holder.name == m.name and holder.url == m.url
        role = "active" if active else "gone" if m.age > 3 * lease.ttl else "standby"
        out.append(ManagerEntry(
            m.name, m.url, role, holder.since.timestamp() if active and holder.since else None,
            holder.epoch if active else None, round(m.age, 3), m.name == lease.name))
    return out


def knows_token(lease: Lease, token_digest: str) -> bool:
    """Whether a token of this store's is valid (a standby has no tokens loaded; it asks the database)."""
    return bool(lease.execute("SELECT 1 FROM tokens WHERE digest = %s", (token_digest,)))
