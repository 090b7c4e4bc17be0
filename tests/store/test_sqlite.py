"""The SQLite store's own behaviour: stores made by older versions, and its file on disk.

What every store does is tests/store/test_conformance.py.
"""

import sqlite3
from pathlib import Path

from tiercel.core.model import AttemptRecord, JobId, JobSpec, Outcome, Report, UserName, WorkerId
from tiercel.core.ranges import IndexRanges
from tiercel.core.reservations import Reservation
from tiercel.store import AddJob, Record, SaveReservation, SqliteStore


def test_reservations_keep_their_mirror_and_an_older_store_gains_the_column(tmp_path: Path) -> None:
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


def test_large_outputs_are_stored_compressed(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    big = b"line of output\n" * 10_000
    s = SqliteStore(path, synchronous="NORMAL")
    s.open()
    try:
        spec = JobSpec(command=("true",), indexes=IndexRanges.of_size(10))
        s.write([AddJob(JobId(1), UserName("alice"), spec, 0.0)]).result(10)
        report = Report(JobId(1), 3, 1, Outcome.DONE, 0, 1.0, 2.0, big, b"")
        s.write([Record([AttemptRecord(report, True, WorkerId("w"))])]).result(10)
        [row] = s.attempts(JobId(1), 3, True)
        assert row.stdout == big
    finally:
        s.close()
    conn = sqlite3.connect(path)
    try:
        [(stored,)] = conn.execute("SELECT length(stdout) FROM attempts WHERE job = 1 AND idx = 3").fetchall()
    finally:
        conn.close()
    assert stored < len(big) // 10


def test_records_of_any_size_are_stored_whole_and_a_later_one_replaces_an_earlier(tmp_path: Path) -> None:
    """Attempts go in many rows to a statement (a power of two at a time): every row of a write of
    1, 511, 512, 513 or 1,300 records is stored, each with its own fields, and a record written twice
    in one write keeps the later one."""
    s = SqliteStore(tmp_path / "t.db", synchronous="NORMAL")
    s.open()
    try:
        spec = JobSpec(command=("true",), indexes=IndexRanges.of_size(5_000))
        s.write([AddJob(JobId(1), UserName("alice"), spec, 0.0)]).result(10)
        start = 0
        for n in (1, 511, 512, 513, 1_300):
            records = [AttemptRecord(Report(JobId(1), i, 1, Outcome.DONE if i % 3 else Outcome.FAILED, i % 7,
                                            float(i), i + 0.5, f"out {i}".encode(), b""), True, WorkerId(f"w{i % 4}"))
                       for i in range(start, start + n)]
            s.write([Record(records)]).result(10)
            start += n
        again = Report(JobId(1), 0, 1, Outcome.FAILED, 9, 0.0, 1.0, b"later", b"")
        s.write([Record([AttemptRecord(Report(JobId(1), 0, 1, Outcome.DONE, 0, 0.0, 1.0, b"first", b""), True,
                                       WorkerId("w0")), AttemptRecord(again, True, WorkerId("w0"))])]).result(10)
        rows = s.attempts(JobId(1), None, True)
        assert len(rows) == start == 2_837
        by_index = {r.index: r for r in rows}
        assert sorted(by_index) == list(range(start))
        r = by_index[1_234]
        assert (r.outcome, r.exit_code, r.started, r.ended, r.stdout, r.worker) == (
            "done", 1_234 % 7, 1_234.0, 1_234.5, b"out 1234", "w2")
        assert (by_index[0].outcome, by_index[0].exit_code, by_index[0].stdout) == ("failed", 9, b"later")
    finally:
        s.close()
