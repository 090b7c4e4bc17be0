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
    Entries,
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
    AddPlaces,
    DeleteReservation,
    DeleteSiteJob,
    DeleteToken,
    EndJob,
    ForgetOutputs,
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
    inputs=("gfarm:///data/s_{index:04}.bam", "gfarm:///ref/genome.fa"), outputs=("gfarm:///out/{index}.txt",),
    on_missing_input="refuse",
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


def test_a_sweeps_entries_are_kept_with_its_job_restored_and_exported(backend: Backend) -> None:
    items = ["plain", "", "ünïcode \t tab", '{"a":[1,2]}', "x" * 65_536] + [f"/data/{i}.fq" for i in range(100_000)]
    entries = Entries.of(items)
    sweep = JobSpec(command=("./run.sh",), indexes=IndexRanges.of_size(len(items)), entries=entries,
                    stdout="out/{index}.txt", stderr="err.log")
    ended = JobSpec(command=("./run.sh",), indexes=IndexRanges.of_size(2), entries=Entries.of(["a", "b"]))
    with backend.opened() as (store, _):
        store.write([AddJob(JobId(1), ALICE, sweep, 1.0), AddJob(JobId(2), ALICE, SPEC, 2.0),
                     AddJob(JobId(3), BOB, ended, 3.0)]).result(T)
        store.write([EndJob(JobId(3), JobState.DONE, Counts(2, done=2), 4.0)]).result(T)
        row = store.job(JobId(1))
        assert row is not None and row.spec.entries is None  # reads of jobs leave the entries out
        assert (row.spec.stdout, row.spec.stderr, row.spec.size) == ("out/{index}.txt", "err.log", len(items))
        assert store.entries(JobId(1)) == entries and store.entries(JobId(3)) == ended.entries
        assert store.entries(JobId(2)) is None and store.entries(JobId(9)) is None
        # a job whose row cannot be written keeps no entries either
        with pytest.raises(Exception):  # noqa: B017  (each store raises its own integrity error)
            store.write([AddJob(JobId(2), ALICE, sweep, 5.0)]).result(T)
        assert store.entries(JobId(2)) is None
    with backend.opened() as (store, loaded):
        restored = {row.id: row.spec for row, _ in loaded.unfinished}
        assert restored[JobId(1)] == sweep and restored[JobId(2)] == SPEC and JobId(3) not in restored
        again = restored[JobId(1)].entries
        assert again is not None and len(again) == len(items)
        assert [again[i] for i in (0, 1, 2, 3, 4, len(items) - 1)] == [*items[:5], items[-1]]
        copied = {op.job: op.spec for ops in store.export(50) for op in ops if isinstance(op, AddJob)}
        assert copied == {1: sweep, 2: SPEC, 3: ended}
        assert copied[JobId(1)].entries == entries and copied[JobId(2)].entries is None
    with backend.opened(backend.elsewhere()) as (other, _):  # the copy writes them again
        other.write([AddJob(j, ALICE, spec, 1.0) for j, spec in copied.items()]).result(T)
        assert other.entries(JobId(1)) == entries and other.entries(JobId(3)) == ended.entries


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


# ---- the day-to-day reads: outputs by pages, history, dropping outputs ------------------------


def test_attempts_page_reads_whole_tasks_by_index_and_the_pages_make_up_every_attempt(store: Store) -> None:
    w2 = WorkerId("w2")
    store.write([AddJob(JobId(2), BOB, SPEC, 1.0)]).result(T)
    store.write([
        record(9, 1, Outcome.DONE, True, out=b"nine"), record(9, 1, Outcome.DONE, True, worker=w2, out=b"again"),
        record(0, 1, Outcome.FAILED, False, 1, out=b"o0", err=b"e0"), record(0, 2, Outcome.DONE, True, out=b"ok0"),
        record(1, 1, Outcome.LOST, False, None), record(3, 1, Outcome.DONE, True, out=b"three", err=b"warn"),
        record(7, 1, Outcome.FAILED, True, 2, err=b"boom"),
        record(4, 1, Outcome.DONE, True, job=2, out=b"not job 1"),
    ]).result(T)
    key = sorted((r.index, r.attempt, r.worker, r.final, r.stdout, r.stderr)
                 for r in store.attempts(JobId(1), None, False))
    pages, after = [], -1
    while True:
        page = store.attempts_page(JobId(1), after, 2)
        if not page:
            break
        pages.append(sorted({r.index for r in page}))
        after = page[-1].index
        key_rows = [(r.index, r.attempt, r.worker, r.final, r.stdout, r.stderr) for r in page]
        assert key_rows == key[:len(key_rows)]  # whole tasks, every attempt of each, in order
        key = key[len(key_rows):]
    assert pages == [[0, 1], [3, 7], [9]]
    assert key == []
    finals_only = store.attempts_page(JobId(1), -1, 3, final_only=True)
    assert [(r.index, r.attempt) for r in finals_only] == [(0, 2), (3, 1), (7, 1)]  # task 1 has no final one
    assert [(r.index, r.worker) for r in store.attempts_page(JobId(1), 7, 5, final_only=True)] == [(9, "w"), (9, "w2")]
    assert store.attempts_page(JobId(1), 9, 5) == []
    assert store.attempts_page(JobId(3), -1, 5) == []
    errs = store.attempts_page(JobId(1), 2, 1, streams=("stderr",))
    assert [(r.index, r.stdout, r.stderr) for r in errs] == [(3, b"", b"warn")]
    outs = store.attempts_page(JobId(1), 2, 2, streams=("stdout",))
    assert [(r.index, r.stdout, r.stderr) for r in outs] == [(3, b"three", b""), (7, b"", b"")]
    [other] = store.attempts_page(JobId(2), 0, 10)
    assert (other.job, other.index, other.stdout) == (2, 4, b"not job 1")


def test_attempts_page_walks_a_large_sparse_job_in_bounded_pages(backend: Backend) -> None:
    spec = JobSpec(command=("true",), indexes=IndexRanges(((0, 30_000),)))
    with backend.opened() as (store, _):
        store.write([AddJob(JobId(1), ALICE, spec, 0.0)]).result(T)
        store.write([Record([attempt(i, 1, Outcome.DONE, True, out=str(i).encode()) for i in range(0, 30_000, 3)])]
                    ).result(90)
        seen: list[int] = []
        after = -1
        while page := store.attempts_page(JobId(1), after, 777, final_only=True):
            assert len(page) <= 777
            seen += [r.index for r in page]
            assert all(r.stdout == str(r.index).encode() for r in page)
            after = page[-1].index
        assert seen == list(range(0, 30_000, 3))


def test_history_lists_ended_jobs_last_ended_first_by_owner_state_and_time(backend: Backend) -> None:
    ends = {1: (ALICE, JobState.DONE, 100.0), 2: (BOB, JobState.FAILED, 200.0), 3: (ALICE, JobState.FAILED, 300.0),
            4: (ALICE, JobState.CANCELLED, 250.0), 6: (BOB, JobState.DONE, 50.0)}
    with backend.opened() as (store, _):
        store.write([AddJob(JobId(j), ends[j][0] if j in ends else ALICE, SPEC, float(j)) for j in range(1, 8)]
                    ).result(T)
        store.write([EndJob(JobId(j), state, Counts(10, done=8, failed=2 if state is JobState.FAILED else 0,
                                                    cancelled=0 if state is not JobState.CANCELLED else 2), when)
                     for j, (_, state, when) in ends.items()]).result(T)

        def ids(owner: UserName | None = None, since: float | None = None, states: tuple[JobState, ...] = (),
                limit: int = 100) -> list[int]:
            return [r.id for r in store.history(owner, since, states, limit)]

        assert ids() == [3, 4, 2, 1, 6]  # jobs 5 and 7 have not ended
        assert ids(limit=2) == [3, 4]
        assert ids(ALICE) == [3, 4, 1]
        assert ids(BOB, limit=1) == [2]
        assert ids(UserName("carol")) == []
        assert ids(states=(JobState.FAILED,)) == [3, 2]
        assert ids(states=(JobState.DONE, JobState.CANCELLED)) == [4, 1, 6]
        assert ids(ALICE, states=(JobState.DONE,)) == [1]
        assert ids(since=200.0) == [3, 4, 2]
        assert ids(BOB, since=100.0, states=(JobState.DONE,)) == []
        [three] = store.history(ALICE, 300.0, (), 10)
        assert (three.owner, three.state, three.submitted, three.ended, three.spec) == (
            ALICE, JobState.FAILED, 3.0, 300.0, SPEC)
        assert three.counts == Counts(10, done=8, failed=2)
        assert (three.places, three.forgotten) == ((), None)


def test_history_reads_one_index_over_many_jobs(backend: Backend) -> None:
    """20,000 ended jobs: the newest few of one user, one state or one window come back at once."""
    with backend.opened() as (store, _):
        for start in range(1, 20_001, 5_000):
            chunk = range(start, start + 5_000)
            store.write([AddJob(JobId(j), BOB if j % 10 else ALICE, SPEC, float(j)) for j in chunk]
                        + [EndJob(JobId(j), JobState.FAILED if j % 7 == 0 else JobState.DONE, Counts(10, done=10),
                                  1_000.0 + j) for j in chunk]).result(90)
        assert [r.id for r in store.history(ALICE, None, (), 3)] == [20_000, 19_990, 19_980]
        assert [r.id for r in store.history(None, None, (JobState.FAILED,), 2)] == [19_999, 19_992]
        assert [r.id for r in store.history(ALICE, 1_000.0 + 19_950, (JobState.FAILED,), 50)] == [19_950]
        assert len(store.history(None, None, (), 10_000)) == 10_000


def test_places_gather_without_repeats_and_are_kept(backend: Backend) -> None:
    with backend.opened() as (store, _):
        store.write([AddJob(JobId(1), ALICE, SPEC, 0.0), AddJob(JobId(2), ALICE, SPEC, 0.0)]).result(T)
        store.write([AddPlaces(JobId(1), ("node-b", "hpc"))]).result(T)
        store.write([AddPlaces(JobId(1), ("node-a", "node-b")), AddPlaces(JobId(2), ("wörker",))]).result(T)
        store.write([EndJob(JobId(1), JobState.DONE, Counts(10, done=10), 5.0)]).result(T)
        store.write([AddPlaces(JobId(1), ("hpc",)), AddPlaces(JobId(99), ("nowhere",))]).result(T)
    with backend.opened() as (store, _):
        one, two = store.job(JobId(1)), store.job(JobId(2))
        assert one is not None and two is not None
        assert one.places == ("hpc", "node-a", "node-b")  # sorted, each once
        assert two.places == ("wörker",) and two.state is None
        [ended] = store.history(ALICE, None, (), 10)
        assert ended.places == ("hpc", "node-a", "node-b")


def test_forgetting_outputs_keeps_the_rows_and_counts_and_says_the_size_first(backend: Backend) -> None:
    big = os.urandom(10_000)  # incompressible: stored as it is, give or take a few bytes
    with backend.opened() as (store, _):
        store.write([AddJob(JobId(1), ALICE, SPEC, 0.0), AddJob(JobId(2), BOB, SPEC, 0.0)]).result(T)
        store.write([record(0, 1, Outcome.FAILED, False, 1, err=b"e"), record(0, 2, Outcome.DONE, True, out=big),
                     record(1, 1, Outcome.DONE, True), record(5, 1, Outcome.DONE, True, out=b"five"),
                     record(3, 1, Outcome.DONE, True, job=2, out=b"bob's")]).result(T)
        store.write([EndJob(JobId(1), JobState.DONE, Counts(10, done=10), 9.0)]).result(T)
        rows, size = store.outputs_size(JobId(1))
        assert rows == 3  # attempt rows holding an output; task 1's has none
        assert len(big) + len(b"e") + len(b"five") <= size <= len(big) + 64  # as stored
        store.write([ForgetOutputs(JobId(1), 0, 3, 20.0)]).result(T)  # tasks 0..2 first
        assert [r.stdout for r in store.attempts(JobId(1), 5, False)] == [b"five"]
        assert store.outputs_size(JobId(1))[0] == 1
        store.write([ForgetOutputs(JobId(1), 3, 10, 21.0)]).result(T)
        assert store.outputs_size(JobId(1)) == (0, 0)
    with backend.opened() as (store, _):
        kept = store.attempts(JobId(1), None, False)
        assert [(r.index, r.attempt, r.outcome, r.final, r.exit_code) for r in kept] == [
            (0, 1, "failed", False, 1), (0, 2, "done", True, 0), (1, 1, "done", True, 0), (5, 1, "done", True, 0)]
        assert all((r.stdout, r.stderr) == (b"", b"") for r in kept)
        job = store.job(JobId(1))
        assert job is not None and job.counts == Counts(10, done=10) and job.state is JobState.DONE
        assert job.forgotten == 21.0
        assert [r.stdout for r in store.attempts(JobId(2), None, False)] == [b"bob's"]  # another job's stay
        other = store.job(JobId(2))
        assert other is not None and other.forgotten is None
        assert store.outputs_size(JobId(2))[0] == 1
        assert store.outputs_size(JobId(42)) == (0, 0)


def test_attempts_page_keeps_to_the_spans_it_is_given(store: Store) -> None:
    store.write([Record([attempt(i, 1, Outcome.DONE, i % 4 != 1, out=b"%d" % i) for i in range(40)])]).result(T)
    within = ((3, 4), (10, 14), (30, 32), (38, 100))
    rows = store.attempts_page(JobId(1), -1, 100, within=within)
    assert [r.index for r in rows] == [3, 10, 11, 12, 13, 30, 31, 38, 39]
    assert [r.index for r in store.attempts_page(JobId(1), -1, 100, final_only=True, within=within)] == [
        3, 10, 11, 12, 30, 31, 38, 39]  # 13's attempt is not final
    assert [r.index for r in store.attempts_page(JobId(1), 10, 3, final_only=True, within=within)] == [11, 12, 30]
    assert [r.stdout for r in store.attempts_page(JobId(1), 29, 1, within=within)] == [b"30"]
    assert store.attempts_page(JobId(1), 39, 5, within=within) == []
    assert store.attempts_page(JobId(1), -1, 5, within=((50, 60),)) == []
    overlapping = store.attempts_page(JobId(1), 10, 100, within=((12, 15), (3, 4), (10, 13)))
    assert [r.index for r in overlapping] == [11, 12, 13, 14]  # each task once, in order


def test_attempts_page_begins_no_task_past_max_bytes_and_reads_the_last_one_whole(store: Store) -> None:
    store.write([Record([attempt(i, 1, Outcome.FAILED, False, 1, out=b"a" * 300) for i in range(0, 10, 2)]
                        + [attempt(i, n, Outcome.DONE, True, out=os.urandom(1_000)) for i in range(10)
                           for n in ((2,) if i % 2 == 0 else (1,))])]).result(T)
    page = store.attempts_page(JobId(1), -1, 100, max_bytes=2_500)
    assert [(r.index, r.attempt) for r in page] == [(0, 1), (0, 2), (1, 1), (2, 1), (2, 2)]  # 2,600 bytes
    rest, after = [], page[-1].index
    while more := store.attempts_page(JobId(1), after, 100, max_bytes=2_500):
        assert sum(len(r.stdout) for r in more) < 2_500 + 1_300
        rest += more
        after = more[-1].index
    assert [(r.index, r.attempt) for r in page + rest] == [
        (i, n) for i in range(10) for n in ((1, 2) if i % 2 == 0 else (1,))]
    one = store.attempts_page(JobId(1), -1, 100, max_bytes=1)  # always a whole task, however large
    assert [(r.index, r.attempt) for r in one] == [(0, 1), (0, 2)]
    spans = store.attempts_page(JobId(1), -1, 100, within=((3, 4), (5, 6), (7, 8)), max_bytes=1_500)
    assert [r.index for r in spans] == [3, 5]


def test_cpu_time_is_kept_per_attempt_summed_at_restore_and_kept_with_the_ended_job(backend: Backend) -> None:
    with backend.opened() as (store, _):
        store.write([AddJob(JobId(1), ALICE, SPEC, 0.0), AddJob(JobId(2), ALICE, SPEC, 0.0)]).result(T)
        timed = [AttemptRecord(Report(JobId(1), i, 1, Outcome.DONE, 0, 1.0, 2.0, cpu=0.25 * (i + 1)), True, W)
                 for i in range(3)]
        store.write([Record(timed), Record([attempt(3, 1, Outcome.DONE, True)])]).result(T)  # one not measured
        store.write([EndJob(JobId(2), JobState.DONE, Counts(10, done=10), 5.0, None, 12.5)]).result(T)
    with backend.opened() as (store, loaded):
        [(row, restored)] = loaded.unfinished
        assert row.id == 1 and restored.cpu == pytest.approx(1.5)
        ended = store.job(JobId(2))
        assert ended is not None and ended.cpu == 12.5
        copied = [op for batch in store.export(100) for op in batch]
        [attempts] = [op for op in copied if isinstance(op, Record)]
        assert sorted(r.report.cpu or 0 for r in attempts.records) == [0, 0.25, 0.5, 0.75]
        assert [op.cpu for op in copied if isinstance(op, EndJob)] == [12.5]


def test_a_workflow_is_kept_with_its_jobs_listed_by_owner_and_exported(backend: Backend) -> None:
    from tiercel.store import SaveWorkflow

    with backend.opened() as (store, loaded):
        assert loaded.next_workflow_id == 1
        store.write([AddJob(JobId(1), ALICE, SPEC, 0.0), AddJob(JobId(2), ALICE, SPEC, 0.0),
                     SaveWorkflow(1, ALICE, "align", 5.0, (("prep", JobId(1)), ("sweep", JobId(2)))),
                     SaveWorkflow(2, BOB, "other", 6.0, ())]).result(T)
    with backend.opened() as (store, loaded):
        assert loaded.next_workflow_id == 3
        row = store.workflow(1)
        assert row is not None and (row.owner, row.name, row.submitted) == (ALICE, "align", 5.0)
        assert row.jobs == (("prep", 1), ("sweep", 2))
        assert [w.id for w in store.workflows(ALICE, 10)] == [1]
        assert [w.id for w in store.workflows(None, 10)] == [2, 1] and store.workflow(3) is None
        exported = [op for batch in store.export(100) for op in batch if isinstance(op, SaveWorkflow)]
        assert [(w.id, w.name, w.jobs) for w in exported] == [(1, "align", (("prep", 1), ("sweep", 2))),
                                                              (2, "other", ())]


def test_settled_per_step_counts_final_attempts_by_when_they_ended(store: Store) -> None:
    store.write([AddJob(JobId(2), BOB, SPEC, 1.0)]).result(T)
    store.write([
        record(0, 1, Outcome.FAILED, False, 1, ended=101.0), record(0, 2, Outcome.DONE, True, ended=105.0),
        record(1, 1, Outcome.DONE, True, ended=99.0),  # before the start: the first span
        record(2, 1, Outcome.DONE, True, ended=115.0), record(3, 1, Outcome.DONE, True, ended=119.9),
        record(4, 1, Outcome.FAILED, True, 3, ended=141.0),
        record(5, 1, Outcome.LOST, False, None, ended=125.0),  # not settled
        record(6, 1, Outcome.DONE, True, job=2, ended=105.0),  # another job's
    ]).result(T)
    assert store.settled_per_step(JobId(1), 100.0, 10.0) == [(0, 2), (1, 2), (4, 1)]
    assert store.settled_per_step(JobId(1), 100.0, 2.5) == [(0, 1), (2, 1), (6, 1), (7, 1), (16, 1)]
    assert store.settled_per_step(JobId(2), 0.0, 1000.0) == [(0, 1)]
    assert store.settled_per_step(JobId(3), 0.0, 1.0) == []


def test_many_results_in_one_write_each_stored_and_a_later_one_of_an_attempt_replaces_the_earlier(
        backend: Backend) -> None:
    """A write of 1,300 results is stored whole, each with its own fields (both stores send a run of
    results as few statements), and one attempt reported twice in one write keeps the later report."""
    spec = JobSpec(command=("true",), indexes=IndexRanges.of_size(2_000))
    with backend.opened() as (s, _):
        s.write([AddJob(JobId(1), ALICE, spec, 0.0)]).result(T)
        many = [attempt(i, 1, Outcome.DONE if i % 3 else Outcome.FAILED, True, i % 7, out=f"out {i}".encode(),
                        started=float(i), ended=i + 0.5, worker=WorkerId(f"w{i % 4}")) for i in range(1_300)]
        s.write([Record(many)]).result(T)
        s.write([Record([attempt(1_500, 1, Outcome.DONE, True, 0, out=b"first"),
                         attempt(1_500, 1, Outcome.FAILED, True, 9, out=b"later")])]).result(T)
        rows = {r.index: r for r in s.attempts(JobId(1), None, True)}
    assert sorted(rows) == [*range(1_300), 1_500]
    r = rows[1_234]
    assert (r.outcome, r.exit_code, r.started, r.ended, r.stdout, r.worker) == (
        "done", 1_234 % 7, 1_234.0, 1_234.5, b"out 1234", "w2")
    assert (rows[1_500].outcome, rows[1_500].exit_code, rows[1_500].stdout) == ("failed", 9, b"later")
