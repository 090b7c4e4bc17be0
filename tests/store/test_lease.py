"""The lease on a real PostgreSQL: one writer at a time, fenced by the database itself."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from tiercel.core.model import JobId, JobSpec, UserName
from tiercel.core.ranges import IndexRanges
from tiercel.store import AddJob
from tiercel.store.lease import LeaseLost, StoreUnreachable, roster
from tiercel.store.postgres import PostgresStore, SchemaTooNew

SPEC = JobSpec(command=("true",), indexes=IndexRanges.of_size(3))


def add(job: int) -> AddJob:
    return AddJob(JobId(job), UserName("alice"), SPEC, 0.0)


def expire(url: str) -> None:
    """The lease runs out now, as if its holder had been paused past it."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE lease SET expires = clock_timestamp() - interval '1 second'")


def test_a_second_store_cannot_open_while_the_first_holds_the_lease_and_says_who(pg_url: str) -> None:
    first = PostgresStore(pg_url, name="m1", advertise="http://m1:8750")
    first.open()
    try:
        second = PostgresStore(pg_url, name="m2")
        with pytest.raises(LeaseLost, match=r"another manager holds it \(m1 at http://m1:8750, epoch 1\)"):
            second.open()
        assert not second.lease.acquire()
    finally:
        first.close()


def test_a_write_of_an_epoch_that_is_over_is_refused_by_the_database_and_nothing_of_it_kept(pg_url: str) -> None:
    lost: list[BaseException] = []
    old = PostgresStore(pg_url, name="old", ttl=60, on_lost=lost.append)
    old.open()
    old.write([add(1)]).result(10)
    expire(pg_url)
    new = PostgresStore(pg_url, name="new")
    new.open()  # takes over: epoch 2
    try:
        assert (old.lease.epoch, new.lease.epoch) == (1, 2)
        refused = old.write([add(2)])
        with pytest.raises(LeaseLost, match="lease is over"):
            refused.result(10)
        assert lost and isinstance(lost[0], LeaseLost)
        with pytest.raises(LeaseLost):  # and every later write fails at once
            old.write([add(3)]).result(10)
        new.write([add(4)]).result(10)
        assert [j.id for j in new.jobs(None, 10)] == [4, 1]
    finally:
        old.close()
        new.close()


def test_a_take_over_waits_for_a_write_in_flight_and_then_fences_it_out(pg_url: str) -> None:
    """The old leader's transaction holds the lease row shared until it commits: the take-over
    waits for it, so a write is either wholly before the new epoch or refused."""
    old = PostgresStore(pg_url, name="old", ttl=60)
    old.open()
    expire(pg_url)
    with psycopg.connect(pg_url) as tx:  # a write of epoch 1 under way, as the writer makes it
        tx.execute("SELECT tiercel_fence(1)")
        tx.execute("INSERT INTO meta VALUES ('in-flight', 'yes')")
        new = PostgresStore(pg_url, name="new")
        took: list[bool] = []
        t = threading.Thread(target=lambda: took.append(new.lease.acquire()))
        t.start()
        time.sleep(0.5)
        assert not took, "the take-over did not wait for the write in flight"
        tx.commit()
    t.join(10)
    try:
        assert took == [True] and new.lease.epoch == 2
        with psycopg.connect(pg_url) as late, pytest.raises(psycopg.Error, match="epoch 1 is over"):
            late.execute("SELECT tiercel_fence(1)")
    finally:
        old.close()
        new.lease.release()


def test_closing_gives_the_lease_up_so_a_standby_takes_it_at_once(pg_url: str) -> None:
    first = PostgresStore(pg_url, name="m1", ttl=600)
    first.open()
    first.close()
    second = PostgresStore(pg_url, name="m2", ttl=600)
    assert second.lease.acquire() and second.lease.epoch == 2
    second.lease.release()


def test_the_roster_shows_the_active_manager_its_epoch_and_the_standby(pg_url: str) -> None:
    active = PostgresStore(pg_url, name="m1", advertise="http://m1:1")
    active.open()
    standby = PostgresStore(pg_url, name="m2", advertise="http://m2:1")
    standby.prepare()
    assert not standby.lease.acquire()  # says it runs, as a standby
    try:
        rows = {m.name: m for m in roster(standby.lease)}
        assert rows["m1"].role == "active" and rows["m1"].epoch == 1 and rows["m1"].since is not None
        assert rows["m2"].role == "standby" and rows["m2"].this and not rows["m1"].this
    finally:
        active.close()
        standby.lease.leave()


def test_a_renewal_that_finds_another_epoch_loses_the_lease(pg_url: str) -> None:
    lost: list[BaseException] = []
    store = PostgresStore(pg_url, name="m1", ttl=1, on_lost=lost.append)
    store.open()
    try:
        with psycopg.connect(pg_url, autocommit=True) as conn:  # another manager took over
            conn.execute("UPDATE lease SET epoch = epoch + 1, holder = 'someone else'")
        deadline = time.monotonic() + 5
        while not lost and time.monotonic() < deadline:
            time.sleep(0.05)
        assert lost and "took over" in str(lost[0])
        with pytest.raises(LeaseLost):
            store.write([add(1)]).result(5)
    finally:
        store.close()


def test_a_schema_newer_than_this_code_is_refused_by_name(pg_url: str) -> None:
    PostgresStore(pg_url).prepare()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema'")
    with pytest.raises(SchemaTooNew, match="schema is version 99, newer than this Tiercel knows"):
        PostgresStore(pg_url).prepare()


def test_an_unreachable_database_is_one_line_with_the_password_hidden() -> None:
    store = PostgresStore("postgresql://tiercel:hunter2@127.0.0.1:1/tiercel")
    with pytest.raises(StoreUnreachable) as caught:
        store.prepare()
    message = str(caught.value)
    assert "hunter2" not in message and "tiercel:***@127.0.0.1:1/tiercel" in message
    assert "check that PostgreSQL runs there" in message and "\n" not in message


def test_writes_in_flight_never_hold_up_the_renewal_of_the_lease(pg_url: str) -> None:
    """Under full load a write transaction is always open; the lease must be renewed all the same."""
    lost: list[BaseException] = []
    store = PostgresStore(pg_url, name="busy", ttl=1, on_lost=lost.append)
    store.open()
    try:
        with psycopg.connect(pg_url) as tx:  # a write of this epoch that stays open past the lease
            tx.execute("SELECT tiercel_fence(%s)", (store.lease.epoch,))
            time.sleep(2.5)
            with psycopg.connect(pg_url, autocommit=True) as look:
                live = look.execute("SELECT expires > clock_timestamp() FROM lease").fetchone()
            tx.rollback()
        assert live == (True,) and not lost
    finally:
        store.close()
