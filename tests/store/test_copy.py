"""`tiercel store copy`: SQLite to PostgreSQL and back, everything kept, never into a non-empty store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tiercel.cli.main import cli
from tiercel.core.model import AttemptRecord, Counts, JobId, JobSpec, JobState, Outcome, Report, UserName, WorkerId
from tiercel.core.ranges import IndexRanges
from tiercel.core.reservations import Reservation
from tiercel.store import (
    AddJob,
    AddPlaces,
    EndJob,
    ForgetOutputs,
    Loaded,
    Record,
    SaveReservation,
    SaveSiteJob,
    SaveToken,
    SeenWorker,
    SqliteStore,
    Store,
    TouchToken,
)
from tiercel.store.copy import CopyError, copy
from tiercel.store.postgres import PostgresStore

BIG = b"a line of output that repeats\n" * 5_000


def attempt(job: int, index: int, n: int, outcome: Outcome, final: bool, out: bytes = b"") -> AttemptRecord:
    report = Report(JobId(job), index, n, outcome, 0 if outcome is Outcome.DONE else 1, 10.0 + index, 11.5 + index,
                    out, b"err\x00\xff")
    return AttemptRecord(report, final, WorkerId("w1"))


def fill(store: Store) -> None:
    spec = JobSpec(command=("echo", "hi"), indexes=IndexRanges.of_size(4), retries=1, name="sweep", cpus=2)
    store.write([
        AddJob(JobId(1), UserName("alice"), spec, 1.0),
        AddJob(JobId(2), UserName("bob"), spec, 2.0),
        Record([attempt(1, i, 1, Outcome.DONE, True, BIG if i == 0 else b"ok\n") for i in range(4)]),
        EndJob(JobId(1), JobState.DONE, Counts(total=4, done=4), 5.0),
        Record([attempt(2, 0, 1, Outcome.DONE, True), attempt(2, 1, 1, Outcome.FAILED, False),
                attempt(2, 2, 1, Outcome.FAILED, False), attempt(2, 2, 2, Outcome.FAILED, True)]),
        SaveToken("d1", UserName("alice"), "user", "laptop", 3.0), TouchToken("d1", 4.0),
        SaveToken("d2", UserName("worker"), "worker", "", 3.5),
        SeenWorker(WorkerId("w1"), "node1", "host1", 6.0),
        SaveReservation(Reservation("night", "pool", 2, 100.0, 200.0, frozenset({"alice"}), "root", "slurm:7"), 7.0),
        SaveSiteJob("hpc", "1234", '{"job": 2}', 8.0),
    ]).result(30)


def contents(store: Store, loaded: Loaded) -> dict[str, object]:
    unfinished = [(row.id, r.settled, r.done, r.failed,
                   sorted((i, t.attempts, t.failures) for i, t in r.unsettled.items()))
                  for row, r in loaded.unfinished]
    return {
        "next": loaded.next_job_id, "seal": loaded.seal_key, "unfinished": unfinished,
        "tokens": [(t.digest, t.user, t.role, t.label, t.created, t.last_used) for t in store.tokens()],
        "workers": loaded.workers, "reservations": loaded.reservations, "site_jobs": loaded.site_jobs,
        "jobs": [(j.id, j.owner, j.spec, j.submitted, j.state, j.ended, j.counts, j.reason)
                 for j in store.jobs(None, 10)],
        "attempts": [store.attempts(JobId(j), None, False) for j in (1, 2)],
    }


def test_sqlite_to_postgresql_and_back_keeps_everything(tmp_path: Path, pg_url: str) -> None:
    first = SqliteStore(tmp_path / "a" / "tiercel.db", synchronous="NORMAL")
    first.open()
    fill(first)
    first.close()

    copied = copy(SqliteStore(tmp_path / "a" / "tiercel.db"), PostgresStore(pg_url), "pg")
    assert (copied.jobs, copied.attempts, copied.tokens, copied.reservations) == (2, 8, 2, 1)
    copy(PostgresStore(pg_url), SqliteStore(tmp_path / "b" / "tiercel.db"), "b")

    seen = []
    for store in (SqliteStore(tmp_path / "a" / "tiercel.db"), PostgresStore(pg_url),
                  SqliteStore(tmp_path / "b" / "tiercel.db")):
        loaded = store.open()
        try:
            seen.append(contents(store, loaded))
        finally:
            store.close()
    assert seen[0] == seen[1] == seen[2]
    assert seen[0]["attempts"][0][0].stdout == BIG  # type: ignore[index]
    assert seen[0]["unfinished"] == [(2, [(0, 1), (2, 3)], 1, 1, [(1, 1, 1)])]


def test_a_copy_into_a_store_that_holds_anything_is_refused_and_changes_nothing(tmp_path: Path, pg_url: str) -> None:
    src = SqliteStore(tmp_path / "src.db")
    src.open()
    fill(src)
    src.close()
    dst = PostgresStore(pg_url)
    dst.open()
    dst.write([SaveToken("x", UserName("carol"), "admin", "", 1.0)]).result(10)
    dst.close()
    with pytest.raises(CopyError, match=r"is not empty \(0 jobs, 1 tokens\): copy only into a new store"):
        copy(SqliteStore(tmp_path / "src.db"), PostgresStore(pg_url), "the database")
    check = PostgresStore(pg_url)
    check.open()
    try:
        assert [t.digest for t in check.tokens()] == ["x"] and check.jobs(None, 10) == []
    finally:
        check.close()


def test_the_command_copies_a_state_directory_into_postgresql_and_says_what_it_copied(
        tmp_path: Path, pg_url: str) -> None:
    state = tmp_path / "state"
    store = SqliteStore(state / "tiercel.db")
    store.open()
    fill(store)
    store.close()
    runner = CliRunner()
    result = runner.invoke(cli, ["store", "copy", str(state), pg_url, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert (report["jobs"], report["attempts"], report["tokens"]) == (2, 8, 2)
    again = runner.invoke(cli, ["store", "copy", str(state), pg_url])
    assert again.exit_code == 2 and "is not empty" in again.output and "Traceback" not in again.output
    missing = runner.invoke(cli, ["store", "copy", str(tmp_path / "nowhere"), str(tmp_path / "new")])
    assert missing.exit_code == 2 and "no store there" in missing.output


def test_a_copy_keeps_where_jobs_ran_and_when_their_outputs_were_dropped(tmp_path: Path, pg_url: str) -> None:
    first = SqliteStore(tmp_path / "a" / "tiercel.db", synchronous="NORMAL")
    first.open()
    fill(first)
    first.write([AddPlaces(JobId(1), ("node1", "hpc")), AddPlaces(JobId(2), ("hpc/pilot-3",)),
                 ForgetOutputs(JobId(1), 0, 4, 9.5)]).result(30)
    first.close()
    copy(SqliteStore(tmp_path / "a" / "tiercel.db"), PostgresStore(pg_url), "pg")
    copy(PostgresStore(pg_url), SqliteStore(tmp_path / "b" / "tiercel.db"), "b")
    for store in (PostgresStore(pg_url), SqliteStore(tmp_path / "b" / "tiercel.db")):
        store.open()
        try:
            one, two = store.job(JobId(1)), store.job(JobId(2))
            assert one is not None and two is not None
            assert (one.places, one.forgotten) == (("hpc", "node1"), 9.5)
            assert (two.places, two.forgotten) == (("hpc/pilot-3",), None)
            assert [r.stdout for r in store.attempts(JobId(1), None, False)] == [b""] * 4
            assert store.outputs_size(JobId(1)) == (0, 0)
            assert [r.id for r in store.history(None, None, (), 10)] == [1]
        finally:
            store.close()
