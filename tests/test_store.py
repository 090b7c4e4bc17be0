"""The SQLite store: group commit, isolation of a bad op, restore after a restart."""

from pathlib import Path

import pytest

from tiercel.core.model import AttemptRecord, JobId, JobSpec, Outcome, Report, UserName, WorkerId
from tiercel.core.ranges import IndexRanges
from tiercel.store import AddJob, Record, SqliteStore

W = WorkerId("w")


def record(index: int, attempt: int, outcome: Outcome, final: bool, code: int | None = 0,
           out: bytes = b"") -> Record:
    report = Report(JobId(1), index, attempt, outcome, code, 1.0, 2.0, out, b"")
    return Record([AttemptRecord(report, final, W)])


@pytest.fixture
def store(tmp_path: Path) -> SqliteStore:
    s = SqliteStore(tmp_path / "t.db", synchronous="NORMAL")
    s.open()
    spec = JobSpec(command=("true",), indexes=IndexRanges.of_size(10), retries=2)
    s.write([AddJob(JobId(1), UserName("alice"), spec, 0.0)]).result(10)
    yield s
    s.close()


def test_one_bad_op_fails_alone(store: SqliteStore) -> None:
    good = store.write([record(0, 1, Outcome.DONE, True)])
    bad = store.write([record(1, 1, Outcome.DONE, True, code=2**63)])  # too large for SQLite
    assert good.result(10) is None
    with pytest.raises(OverflowError):
        bad.result(10)
    assert [r.index for r in store.attempts(JobId(1), None, True)] == [0]


def test_outputs_round_trip_compressed(store: SqliteStore) -> None:
    big = b"line of output\n" * 10_000
    store.write([record(3, 1, Outcome.DONE, True, out=big)]).result(10)
    [row] = store.attempts(JobId(1), 3, True)
    assert row.stdout == big


def test_restore_after_reopen(tmp_path: Path, store: SqliteStore) -> None:
    store.write([
        record(0, 1, Outcome.DONE, True), record(1, 1, Outcome.DONE, True),
        record(2, 1, Outcome.FAILED, False, code=1), record(2, 2, Outcome.LOST, False, code=None),
        record(5, 1, Outcome.FAILED, False, code=1), record(5, 2, Outcome.FAILED, True, code=1),
    ]).result(10)
    store.close()
    again = SqliteStore(tmp_path / "t.db")
    loaded = again.open()
    try:
        assert loaded.next_job_id == 2
        [(row, restored)] = loaded.unfinished
        assert row.id == 1 and row.spec.retries == 2
        assert restored.settled == [(0, 2), (5, 6)]
        assert (restored.done, restored.failed) == (2, 1)
        task = restored.unsettled[2]
        assert (task.attempts, task.failures) == (2, 1)
    finally:
        again.close()


def test_reservations_keep_their_mirror_and_an_older_store_gains_the_column(tmp_path: Path) -> None:
    import sqlite3

    from tiercel.core.reservations import Reservation
    from tiercel.store import SaveReservation

    path = tmp_path / "old.db"
    old = sqlite3.connect(path)  # the table as stores made before mirrors have it, with one row
    old.execute("CREATE TABLE reservations (name TEXT PRIMARY KEY, site TEXT NOT NULL, slots INTEGER NOT NULL, "
                "start REAL NOT NULL, end_ REAL NOT NULL, users TEXT NOT NULL, owner TEXT NOT NULL, "
                "created REAL NOT NULL)")
    old.execute("INSERT INTO reservations VALUES ('a', 'pool', 2, 10, 20, '[\"bob\"]', 'admin', 5)")
    old.commit()
    old.close()
    s = SqliteStore(path, synchronous="NORMAL")
    loaded = s.open()
    assert loaded.reservations == [Reservation("a", "pool", 2, 10, 20, frozenset({"bob"}), "admin", None)]
    mirrored = Reservation("b", "hpc", 4, 30, 40, frozenset({"bob"}), "admin", "tiercel-b")
    s.write([SaveReservation(mirrored, 1.0)]).result(10)
    s.close()
    s = SqliteStore(path, synchronous="NORMAL")
    assert s.open().reservations[1] == mirrored
    s.close()
