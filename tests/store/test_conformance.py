"""What every store must do, run against each of them: SQLite, and PostgreSQL on a real server.

The ``Store`` protocol (store/base.py) as the manager relies on it: writes committed together,
each write call standing or falling as one, a future resolved once its write is durable, writes
applied and resolved in the order they were made, and everything the manager resumes from
(``Loaded``) found again after a reopen.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tiercel.core.model import (
    AttemptRecord,
    Counts,
    JobId,
    JobSpec,
    JobState,
    Outcome,
    Report,
    UserName,
    WorkerId,
)
from tiercel.core.ranges import IndexRanges
from tiercel.core.reservations import Reservation
from tiercel.store import (
    AddJob,
    DeleteReservation,
    DeleteSiteJob,
    DeleteToken,
    EndJob,
    ForgetWorker,
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

pytestmark = pytest.mark.timeout(120)

T = 30.0  # seconds a write may take to be durable
W = WorkerId("w")
ALICE, BOB = UserName("alice"), UserName("bob")

Location = Path | str


class Backend:
    """One kind of store: where its data lives, and how to make a store there."""

    def __init__(self, kind: str, build: Callable[[Location], Store], locate: Callable[[], Location],
                 home: Location) -> None:
        self.kind = kind
        self._build = build
        self._locate = locate
        self.home = home

    def store(self, where: Location | None = None) -> Store:
        return self._build(self.home if where is None else where)

    @contextmanager
    def opened(self, where: Location | None = None) -> Iterator[tuple[Store, Loaded]]:
        store = self.store(where)
        loaded = store.open()
        try:
            yield store, loaded
        finally:
            store.close()

    def elsewhere(self) -> Location:
        """Another, empty location of the same kind."""
        return self._locate()


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "sqlite":
        numbers = itertools.count()

        def sqlite_location() -> Location:
            return tmp_path / f"other-{next(numbers)}" / "t.db"

        yield Backend("sqlite", lambda where: SqliteStore(Path(where), synchronous="NORMAL"), sqlite_location,
                      tmp_path / "t.db")
        return
    home = request.getfixturevalue("pg_url")
    postgres = request.getfixturevalue("postgres")
    from tiercel.store.postgres import PostgresStore  # imported here: the SQLite half runs without it

    made: list[str] = []

    def pg_location() -> Location:
        url = postgres.create_database()
        made.append(url)
        return url

    try:
        yield Backend("postgresql", lambda where: PostgresStore(str(where)), pg_location, home)
    finally:
        for url in made:
            postgres.drop_database(url)


SPEC = JobSpec(command=("true",), indexes=IndexRanges.of_size(10), retries=2)


@pytest.fixture
def store(backend: Backend) -> Iterator[Store]:
    """An open store holding job 1 (alice's, ten tasks, two retries)."""
    with backend.opened() as (s, _):
        s.write([AddJob(JobId(1), ALICE, SPEC, 0.0)]).result(T)
        yield s


def attempt(index: int, number: int, outcome: Outcome, final: bool, code: int | None = 0, *, job: int = 1,
            worker: WorkerId = W, out: bytes = b"", err: bytes = b"", started: float = 1.0,
            ended: float = 2.0) -> AttemptRecord:
    report = Report(JobId(job), index, number, outcome, code, started, ended, out, err)
    return AttemptRecord(report, final, worker)


def record(index: int, number: int, outcome: Outcome, final: bool, code: int | None = 0, *, job: int = 1,
           worker: WorkerId = W, out: bytes = b"", err: bytes = b"", started: float = 1.0,
           ended: float = 2.0) -> Record:
    return Record([attempt(index, number, outcome, final, code, job=job, worker=worker, out=out, err=err,
                           started=started, ended=ended)])


def finals(store: Store, job: int = 1) -> list[int]:
    return [r.index for r in store.attempts(JobId(job), None, True)]


def in_resolution_order(futures: list[concurrent.futures.Future[None]]) -> list[int]:
    """The positions of ``futures``, appended as each resolves (a callback runs when its future resolves)."""
    order: list[int] = []
    lock = threading.Lock()

    def resolved(n: int) -> Callable[[concurrent.futures.Future[None]], None]:
        def note(_: concurrent.futures.Future[None]) -> None:
            with lock:
                order.append(n)
        return note

    for n, f in enumerate(futures):
        f.add_done_callback(resolved(n))
    return order


# ---- opening ------------------------------------------------------------------


def test_an_empty_store_opens_with_nothing_to_restore(backend: Backend) -> None:
    with backend.opened() as (store, loaded):
        assert loaded.next_job_id == 1
        assert (loaded.unfinished, loaded.tokens, loaded.workers, loaded.reservations, loaded.site_jobs) == (
            [], {}, [], [], [])
        assert store.job(JobId(1)) is None
        assert store.jobs(None, 10) == []
        assert store.attempts(JobId(1), None, False) == []
        assert store.tokens() == []


def test_the_seal_key_is_kept_across_reopens_and_each_store_has_its_own(backend: Backend) -> None:
    with backend.opened() as (_, first):
        key = first.seal_key
    assert isinstance(key, bytes)
    assert 16 <= len(key) <= 64  # a BLAKE2b key (core.seal): at most 64 bytes
    with backend.opened() as (_, again):
        assert again.seal_key == key
    with backend.opened(backend.elsewhere()) as (_, other):
        assert other.seal_key and other.seal_key != key


def test_meta_says_the_schema_version(backend: Backend) -> None:
    with backend.opened() as (store, _):
        version = store.meta("schema")
        assert isinstance(version, str) and version.strip() == version and version
        assert store.meta("no such key") is None
    with backend.opened() as (store, _):
        assert store.meta("schema") == version


def test_next_job_id_follows_the_highest_job_after_reopen(backend: Backend) -> None:
    with backend.opened() as (store, _):
        store.write([AddJob(JobId(1), ALICE, SPEC, 1.0), AddJob(JobId(7), BOB, SPEC, 2.0)]).result(T)
        store.write([EndJob(JobId(7), JobState.DONE, Counts(10, done=10), 3.0)]).result(T)
    with backend.opened() as (_, loaded):
        assert loaded.next_job_id == 8  # a finished job's id is not handed out again either
        assert [row.id for row, _ in loaded.unfinished] == [1]


# ---- jobs ---------------------------------------------------------------------


FULL_SPEC = JobSpec(
    command=("sh", "-c", "echo ünïcode $1"), indexes=IndexRanges(((0, 3), (10, 12), (1_000_000, 1_000_001))),
    shell=False, name="näme", requires=frozenset({"gpu", "big"}), cleanup="rm -rf /tmp/x", retries=3,
    walltime=12.5, env=(("A", "1"), ("B", "two words")), cwd="/data", append_index=False, cpus=4,
    memory_mb=2048, priority=-5, queue="long", reservation="night", site="hpc",
)


def test_a_job_round_trips_and_ends_with_its_reason_and_counts(backend: Backend) -> None:
    submitted = 1_712_345_678.123456
    with backend.opened() as (store, _):
        store.write([AddJob(JobId(1), ALICE, FULL_SPEC, submitted), AddJob(JobId(2), BOB, SPEC, submitted + 1)]
                    ).result(T)
        row = store.job(JobId(1))
        assert row is not None
        assert (row.id, row.owner, row.spec, row.submitted) == (1, ALICE, FULL_SPEC, submitted)
        assert (row.state, row.ended, row.counts, row.reason) == (None, None, None, None)
        store.write([EndJob(JobId(1), JobState.CANCELLED, Counts(6, done=3, failed=1, cancelled=2), submitted + 60,
                            "cancelled by alice")]).result(T)
        store.write([EndJob(JobId(2), JobState.DONE, Counts(10, done=10), submitted + 61)]).result(T)
        ended = store.job(JobId(1))
        assert ended is not None
        assert (ended.state, ended.ended, ended.reason) == (JobState.CANCELLED, submitted + 60, "cancelled by alice")
        assert ended.counts == Counts(6, done=3, failed=1, cancelled=2)
        assert ended.spec == FULL_SPEC and ended.owner == ALICE
        done = store.job(JobId(2))
        assert done is not None
        assert (done.state, done.counts, done.reason) == (JobState.DONE, Counts(10, done=10), None)
        assert store.job(JobId(3)) is None
    with backend.opened() as (store, loaded):
        assert loaded.unfinished == []
        again = store.job(JobId(1))
        assert again is not None and again.reason == "cancelled by alice" and again.spec == FULL_SPEC


def test_jobs_lists_newest_first_filtered_by_owner_and_limited(backend: Backend) -> None:
    owners = {1: ALICE, 2: BOB, 3: ALICE, 4: ALICE, 5: BOB}
    with backend.opened() as (store, _):
        store.write([AddJob(JobId(j), owner, SPEC, float(j)) for j, owner in owners.items()]).result(T)
        store.write([EndJob(JobId(3), JobState.FAILED, Counts(10, done=9, failed=1), 30.0)]).result(T)
        assert [r.id for r in store.jobs(None, 100)] == [5, 4, 3, 2, 1]
        assert [r.id for r in store.jobs(None, 2)] == [5, 4]
        assert [r.id for r in store.jobs(ALICE, 100)] == [4, 3, 1]
        assert [r.id for r in store.jobs(ALICE, 2)] == [4, 3]
        assert [r.id for r in store.jobs(BOB, 1)] == [5]
        assert store.jobs(UserName("carol"), 100) == []
        listed = {r.id: r for r in store.jobs(None, 100)}
        assert listed[3].state is JobState.FAILED and listed[3].counts == Counts(10, done=9, failed=1)
        assert listed[4].state is None and listed[4].owner == ALICE and listed[4].spec == SPEC


# ---- attempts -----------------------------------------------------------------


def test_attempts_are_ordered_by_task_and_attempt_and_filtered(store: Store) -> None:
    w2 = WorkerId("w2")
    store.write([
        record(5, 2, Outcome.DONE, True, worker=w2, started=10.25, ended=11.5),
        record(0, 1, Outcome.DONE, True),
        record(5, 1, Outcome.TIMEOUT, False, None, started=3.0, ended=9.75),
        record(2, 1, Outcome.LOST, False, None),
        record(0, 1, Outcome.DONE, True, job=2),  # another job's: never among job 1's
    ]).result(T)
    rows = store.attempts(JobId(1), None, False)
    assert [(r.index, r.attempt) for r in rows] == [(0, 1), (2, 1), (5, 1), (5, 2)]
    assert all(r.job == 1 for r in rows)
    timeout, done = rows[2], rows[3]
    assert (timeout.outcome, timeout.final, timeout.exit_code, timeout.worker) == ("timeout", False, None, "w")
    assert (timeout.started, timeout.ended) == (3.0, 9.75)
    assert (done.outcome, done.final, done.exit_code, done.worker) == ("done", True, 0, "w2")
    assert (done.started, done.ended, done.stdout, done.stderr) == (10.25, 11.5, b"", b"")
    assert [(r.index, r.attempt) for r in store.attempts(JobId(1), None, True)] == [(0, 1), (5, 2)]
    assert [(r.index, r.attempt) for r in store.attempts(JobId(1), 5, False)] == [(5, 1), (5, 2)]
    assert [(r.index, r.attempt) for r in store.attempts(JobId(1), 5, True)] == [(5, 2)]
    assert store.attempts(JobId(1), 2, True) == []
    assert store.attempts(JobId(1), 7, False) == []
    assert [r.job for r in store.attempts(JobId(2), None, False)] == [2]


def test_outputs_round_trip_compressed_binary_and_empty(store: Store) -> None:
    big = b"line of output\n" * 10_000  # compressible
    noise = os.urandom(100_000)  # not compressible
    binary = b"\x00\xff\x00 not utf-8 \xc3\x28 \x00"
    store.write([
        record(3, 1, Outcome.DONE, True, out=big, err=b"e"),
        record(4, 1, Outcome.FAILED, True, 1, out=noise, err=big),
        record(6, 1, Outcome.DONE, True, out=binary, err=binary * 100),
        record(7, 1, Outcome.DONE, True),
    ]).result(T)
    [three] = store.attempts(JobId(1), 3, True)
    assert (three.stdout, three.stderr) == (big, b"e")
    [four] = store.attempts(JobId(1), 4, True)
    assert (four.stdout, four.stderr) == (noise, big)
    [six] = store.attempts(JobId(1), 6, True)
    assert (six.stdout, six.stderr) == (binary, binary * 100)
    [seven] = store.attempts(JobId(1), 7, True)
    assert (seven.stdout, seven.stderr) == (b"", b"")


def test_the_same_attempt_written_again_replaces_its_row(store: Store) -> None:
    store.write([record(3, 1, Outcome.FAILED, False, 1, out=b"first")]).result(T)
    store.write([record(3, 1, Outcome.DONE, True, 0, out=b"second")]).result(T)  # a result reported again
    [row] = store.attempts(JobId(1), 3, False)
    assert (row.outcome, row.final, row.exit_code, row.stdout) == ("done", True, 0, b"second")


# ---- group commit ---------------------------------------------------------------


def test_one_bad_op_fails_alone(store: Store) -> None:
    good = store.write([record(0, 1, Outcome.DONE, True)])
    bad = store.write([record(1, 1, Outcome.DONE, True, code=2**63)])  # no exit status is that large
    after = store.write([record(2, 1, Outcome.DONE, True)])
    assert good.result(T) is None
    error = bad.exception(T)
    assert isinstance(error, Exception)  # whichever the database raises (OverflowError, a driver's error)
    assert after.result(T) is None
    assert finals(store) == [0, 2]
    store.write([record(3, 1, Outcome.DONE, True)]).result(T)  # and the store keeps writing
    assert finals(store) == [0, 2, 3]


def test_the_ops_of_one_write_stand_or_fall_together(store: Store) -> None:
    mixed = store.write([record(4, 1, Outcome.DONE, True), AddJob(JobId(2), BOB, SPEC, 1.0),
                         record(5, 1, Outcome.DONE, True, code=2**63)])
    assert mixed.exception(T) is not None
    assert finals(store) == []
    assert store.job(JobId(2)) is None


def test_a_duplicate_key_fails_alone(store: Store) -> None:
    token = SaveToken("d1", ALICE, "user", "", 1.0)
    store.write([token]).result(T)
    again = store.write([AddJob(JobId(1), BOB, FULL_SPEC, 5.0)])  # job 1 exists already
    good = store.write([AddJob(JobId(2), BOB, SPEC, 6.0)])
    twice = store.write([SaveToken("d1", BOB, "admin", "", 2.0)])  # a token digest is made once
    assert isinstance(again.exception(T), Exception)
    assert good.result(T) is None
    assert isinstance(twice.exception(T), Exception)
    one = store.job(JobId(1))
    assert one is not None and (one.owner, one.spec, one.submitted) == (ALICE, SPEC, 0.0)
    assert [r.id for r in store.jobs(None, 10)] == [2, 1]
    assert [(t.digest, t.user, t.role) for t in store.tokens()] == [("d1", ALICE, "user")]


def test_ops_on_what_is_not_there_are_harmless(store: Store) -> None:
    fut = store.write([TouchToken("nobody", 1.0), DeleteToken("nobody"), ForgetWorker(WorkerId("nobody")),
                       DeleteReservation("nothing"), DeleteSiteJob("nowhere", "0"),
                       EndJob(JobId(99), JobState.DONE, Counts(1, done=1), 1.0)])
    assert fut.result(T) is None
    assert store.job(JobId(99)) is None and store.tokens() == []


def test_writes_apply_and_resolve_in_the_order_they_were_made(store: Store) -> None:
    futures = [
        store.write([AddJob(JobId(2), BOB, SPEC, 1.0)]),
        store.write([EndJob(JobId(2), JobState.DONE, Counts(10, done=10), 2.0)]),
        store.write([SaveToken("d", BOB, "user", "", 3.0)]),
        store.write([TouchToken("d", 4.0)]),
        store.write([SaveToken("e", BOB, "user", "", 5.0)]),
        store.write([DeleteToken("e")]),
        store.write([record(0, 1, Outcome.FAILED, False, 1)]),
        store.write([record(0, 1, Outcome.DONE, True, 0)]),
    ]
    resolved = in_resolution_order(futures)
    assert futures[-1].result(T) is None
    assert all(f.done() and f.exception() is None for f in futures)
    assert resolved == list(range(len(futures)))  # none resolves before one made earlier
    two = store.job(JobId(2))
    assert two is not None and two.state is JobState.DONE
    assert [(t.digest, t.last_used) for t in store.tokens()] == [("d", 4.0)]
    [row] = store.attempts(JobId(1), 0, False)
    assert row.outcome == "done" and row.final


def test_an_empty_write_waits_for_every_write_before_it(store: Store) -> None:
    """The manager's barrier: a result reported twice is acknowledged once its first report is durable."""
    futures = [store.write([Record([attempt(i * 100 + k, 1, Outcome.DONE, True, out=b"x" * 600)
                                    for k in range(100)])]) for i in range(10)]
    barrier = store.write([])
    resolved = in_resolution_order([*futures, barrier])
    assert barrier.result(T) is None
    assert all(f.done() and f.exception() is None for f in futures)
    assert resolved == list(range(11))
    assert len(store.attempts(JobId(1), None, True)) == 1000


def test_writes_from_many_threads_all_land(store: Store) -> None:
    errors: list[BaseException] = []
    reads: list[int] = []

    def writer(n: int) -> None:
        try:
            futures = [store.write([record(n * 1000 + k, 1, Outcome.DONE, True)]) for k in range(50)]
            for f in futures:
                f.result(T)
        except BaseException as exc:
            errors.append(exc)

    def reader() -> None:
        try:
            for _ in range(20):
                reads.append(len(store.jobs(None, 10)))
                store.job(JobId(1))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)] + [threading.Thread(target=reader)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert reads == [1] * 20
    assert finals(store) == sorted(n * 1000 + k for n in range(8) for k in range(50))


def test_a_write_of_ten_thousand_records_in_one_call(backend: Backend) -> None:
    spec = JobSpec(command=("true",), indexes=IndexRanges.of_size(10_000))
    with backend.opened() as (store, _):
        store.write([AddJob(JobId(1), ALICE, spec, 0.0)]).result(T)
        ops = [record(i, 1, Outcome.DONE if i % 10 else Outcome.FAILED, True, 0 if i % 10 else 1)
               for i in range(10_000)]
        assert store.write(list(ops)).result(90) is None
        rows = store.attempts(JobId(1), None, True)
        assert [r.index for r in rows] == list(range(10_000))
    with backend.opened() as (_, loaded):
        [(row, restored)] = loaded.unfinished
        assert row.spec == spec
        assert restored.settled == [(0, 10_000)]
        assert (restored.done, restored.failed) == (9_000, 1_000)
        assert restored.unsettled == {}


# ---- durability and restore ----------------------------------------------------------


def test_a_result_is_durable_when_its_future_resolves(backend: Backend) -> None:
    with backend.opened() as (store, _):
        store.write([AddJob(JobId(1), ALICE, SPEC, 0.0)]).result(T)
        assert store.write([record(4, 1, Outcome.DONE, True, out=b"kept")]).result(T) is None
        assert [r.stdout for r in store.attempts(JobId(1), 4, True)] == [b"kept"]  # seen at once
    with backend.opened() as (store, loaded):
        [(_, restored)] = loaded.unfinished
        assert restored.settled == [(4, 5)] and restored.done == 1
        assert [r.stdout for r in store.attempts(JobId(1), 4, True)] == [b"kept"]


def test_close_commits_the_writes_queued_before_it(backend: Backend) -> None:
    with backend.opened() as (store, _):
        store.write([AddJob(JobId(1), ALICE, SPEC, 0.0), SaveToken("d", ALICE, "user", "", 1.0)]).result(T)
        # Not waited for, as the manager writes a touch or a worker's visit: close must still commit them.
        store.write([TouchToken("d", 9.0)])
        store.write([SeenWorker(WorkerId("w1"), "w1", "host1", 9.0)])
        store.write([record(0, 1, Outcome.DONE, True)])
    with backend.opened() as (store, loaded):
        assert loaded.workers == [WorkerId("w1")]
        assert [t.last_used for t in store.tokens()] == [9.0]
        [(_, restored)] = loaded.unfinished
        assert restored.settled == [(0, 1)]


def test_restore_after_reopen(backend: Backend) -> None:
    with backend.opened() as (store, _):
        store.write([AddJob(JobId(1), ALICE, SPEC, 0.0), AddJob(JobId(2), BOB, SPEC, 1.0),
                     AddJob(JobId(3), BOB, SPEC, 2.0)]).result(T)
        store.write([
            record(0, 1, Outcome.DONE, True), record(1, 1, Outcome.DONE, True),
            record(2, 1, Outcome.FAILED, False, code=1), record(2, 2, Outcome.LOST, False, code=None),
            record(3, 1, Outcome.TIMEOUT, False, code=None), record(3, 2, Outcome.FAILED, False, code=1),
            record(3, 3, Outcome.CANCELLED, False, code=None),
            record(5, 1, Outcome.FAILED, False, code=1), record(5, 2, Outcome.FAILED, True, code=1),
            record(9, 1, Outcome.DONE, True),
            record(0, 1, Outcome.FAILED, True, 1, job=2), record(7, 1, Outcome.LOST, False, None, job=2),
        ]).result(T)
        store.write([EndJob(JobId(3), JobState.DONE, Counts(10, done=10), 5.0)]).result(T)
    with backend.opened() as (_, loaded):
        assert loaded.next_job_id == 4
        assert [row.id for row, _ in loaded.unfinished] == [1, 2]  # in id order; the ended job is not there
        (one, restored), (two, restored_two) = loaded.unfinished
        assert (one.owner, one.spec, one.submitted, one.state, one.counts) == (ALICE, SPEC, 0.0, None, None)
        assert restored.settled == [(0, 2), (5, 6), (9, 10)]
        assert (restored.done, restored.failed) == (3, 1)
        assert set(restored.unsettled) == {2, 3}
        task = restored.unsettled[2]
        assert (task.attempts, task.failures) == (2, 1)  # a lost attempt is no failure of the task
        task = restored.unsettled[3]
        assert (task.attempts, task.failures) == (3, 2)  # a timeout is one, a cancelled attempt is not
        assert two.owner == BOB
        assert restored_two.settled == [(0, 1)] and (restored_two.done, restored_two.failed) == (0, 1)
        assert set(restored_two.unsettled) == {7}
        assert (restored_two.unsettled[7].attempts, restored_two.unsettled[7].failures) == (1, 0)


def test_a_second_final_row_for_one_task_does_not_count_twice(backend: Backend) -> None:
    w2 = WorkerId("w2")
    with backend.opened() as (store, _):
        store.write([AddJob(JobId(1), ALICE, SPEC, 0.0)]).result(T)
        store.write([
            record(4, 1, Outcome.DONE, True), record(4, 1, Outcome.DONE, True, worker=w2),  # two workers, one attempt
            record(4, 2, Outcome.DONE, True),  # and a later attempt
            record(5, 1, Outcome.LOST, False, None),
            record(6, 1, Outcome.FAILED, True, 1), record(6, 1, Outcome.FAILED, True, 1, worker=w2),
        ]).result(T)
        assert len(store.attempts(JobId(1), 4, True)) == 3  # every row is kept and listed
    with backend.opened() as (_, loaded):
        [(_, restored)] = loaded.unfinished
        assert restored.settled == [(4, 5), (6, 7)]
        assert (restored.done, restored.failed) == (1, 1)
        assert set(restored.unsettled) == {5}


# ---- tokens, workers, reservations, site jobs -------------------------------------------


def test_tokens_are_saved_touched_and_deleted(backend: Backend) -> None:
    with backend.opened() as (store, _):
        store.write([SaveToken("b" * 64, BOB, "admin", "lab€l", 2.0), SaveToken("a" * 64, ALICE, "user", "", 1.0),
                     SaveToken("c" * 64, UserName("worker"), "worker", "pool", 3.0)]).result(T)
        rows = store.tokens()
        assert [(t.digest[0], t.user, t.role, t.label, t.created, t.last_used) for t in rows] == [
            ("a", ALICE, "user", "", 1.0, None), ("b", BOB, "admin", "lab€l", 2.0, None),
            ("c", "worker", "worker", "pool", 3.0, None)]  # oldest first
        store.write([TouchToken("a" * 64, 50.5)]).result(T)
        store.write([TouchToken("a" * 64, 60.0)]).result(T)
        store.write([DeleteToken("b" * 64)]).result(T)
        assert [(t.digest[0], t.last_used) for t in store.tokens()] == [("a", 60.0), ("c", None)]
    with backend.opened() as (store, loaded):
        assert loaded.tokens == {"a" * 64: (ALICE, "user"), "c" * 64: (UserName("worker"), "worker")}
        assert [(t.digest[0], t.last_used) for t in store.tokens()] == [("a", 60.0), ("c", None)]


def test_workers_seen_and_forgotten_are_known_after_reopen(backend: Backend) -> None:
    w1, w2, w3 = WorkerId("w1"), WorkerId("w2"), WorkerId("wörker-3")
    with backend.opened() as (store, _):
        store.write([SeenWorker(w1, "one", "h1", 1.0), SeenWorker(w2, "two", "h2", 2.0)]).result(T)
        store.write([SeenWorker(w3, "three", "h3", 3.0), SeenWorker(w1, "one", "h1", 4.0)]).result(T)  # seen again
        store.write([ForgetWorker(w2)]).result(T)
    with backend.opened() as (store, loaded):
        assert sorted(loaded.workers) == [w1, w3]  # each once
        store.write([ForgetWorker(w1), ForgetWorker(w3)]).result(T)
    with backend.opened() as (_, loaded):
        assert loaded.workers == []


def test_reservations_round_trip_with_their_mirror(backend: Backend) -> None:
    plain = Reservation("a", "pool", 2, 10.0, 20.0, frozenset({"bob"}), "admin", None)
    mirrored = Reservation("b", "hpc", 4, 5.5, 40.25, frozenset({"bob", "carol", "dörte"}), "admin", "tiercel-b")
    gone = Reservation("c", "pool", 1, 1.0, 2.0, frozenset(), "", None)
    with backend.opened() as (store, loaded):
        assert loaded.reservations == []
        store.write([SaveReservation(plain, 1.0), SaveReservation(mirrored, 2.0)]).result(T)
        store.write([SaveReservation(gone, 3.0)]).result(T)
        store.write([DeleteReservation("c")]).result(T)
    with backend.opened() as (store, loaded):
        assert loaded.reservations == [mirrored, plain]  # by start
        store.write([DeleteReservation("b")]).result(T)
    with backend.opened() as (_, loaded):
        assert loaded.reservations == [plain]


def test_site_jobs_are_kept_until_deleted(backend: Backend) -> None:
    first = SaveSiteJob("hpc", "1001", '{"job": 1, "spans": [[0, 10]]}', 10.0)
    other_site = SaveSiteJob("sge", "1001", '{"pilots": 4}', 20.0)  # the same native id on another site
    second = SaveSiteJob("hpc", "1002", '{"job": 2, "spans": []}', 15.0)
    with backend.opened() as (store, _):
        store.write([first, other_site, second]).result(T)
        store.write([SaveSiteJob("hpc", "1002", '{"job": 2, "spans": [[3, 4]]}', 15.0)]).result(T)  # saved again
        store.write([SaveSiteJob("hpc", "1003", "{}", 30.0)]).result(T)
        store.write([DeleteSiteJob("hpc", "1003")]).result(T)
    with backend.opened() as (store, loaded):
        assert loaded.site_jobs == [first, SaveSiteJob("hpc", "1002", '{"job": 2, "spans": [[3, 4]]}', 15.0),
                                    other_site]  # by submission
        store.write([DeleteSiteJob("hpc", "1001")]).result(T)
    with backend.opened() as (_, loaded):
        assert [(j.site, j.native_id) for j in loaded.site_jobs] == [("hpc", "1002"), ("sge", "1001")]
