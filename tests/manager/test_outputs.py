"""Reading a job's outputs by pages and following it step by step, over a real SQLite store.

Following must show every settled task exactly once, whatever order tasks settle in, keep its
cursor short, and stop at its bounds without losing anything."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tiercel.core.model import AttemptRecord, JobId, JobSpec, Outcome, Report, UserName, WorkerId
from tiercel.core.problems import Problem
from tiercel.core.ranges import IndexRanges, Span
from tiercel.manager import outputs
from tiercel.manager.outputs import MAX_PENDING, Cursor, Step, follow_step, index_chunks, pages, shown
from tiercel.store import AddJob, AttemptRow, Record, SqliteStore

JOB = JobId(1)
T = 30.0


class Reads:
    """What the output readers need of the read model: the store's pages, read in a thread."""

    def __init__(self, store: SqliteStore) -> None:
        self.store = store

    async def attempts_page(self, job: JobId, after: int, limit: int, final: bool = False,
                            streams: tuple[str, ...] = ("stdout", "stderr"), within: tuple[Span, ...] = (),
                            max_bytes: int | None = None) -> list[AttemptRow]:
        return await asyncio.to_thread(self.store.attempts_page, job, after, limit, final, streams, within,
                                       max_bytes)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    s = SqliteStore(tmp_path / "t.db", synchronous="OFF")
    s.open()
    try:
        yield s
    finally:
        s.close()


def add_job(store: SqliteStore, indexes: IndexRanges) -> None:
    store.write([AddJob(JOB, UserName("alice"), JobSpec(command=("true",), indexes=indexes), 0.0)]).result(T)


def settle(store: SqliteStore, indexes: list[int], *, final: bool = True, out: bytes | None = None,
           attempt: int = 1) -> None:
    records = [AttemptRecord(Report(JOB, i, attempt, Outcome.DONE if final else Outcome.FAILED, 0 if final else 1,
                                    1.0, 2.0, out if out is not None else b"out %d\n" % i, b""), final, WorkerId("w"))
               for i in indexes]
    if records:
        store.write([Record(records)]).result(T)


class Follower:
    """A client following the job: it keeps only the cursor's text between steps, as the CLI does."""

    def __init__(self, store: SqliteStore, tasks: IndexRanges) -> None:
        self.reads = Reads(store)
        self.tasks = tasks
        self.cursor = "-1"
        self.seen: list[int] = []
        self.steps = 0

    def step(self, ended: bool = False) -> Step:
        start = Cursor.parse(self.cursor)
        assert not isinstance(start, Problem)
        step = asyncio.run(follow_step(self.reads, JOB, self.tasks, start, ended=ended))  # type: ignore[arg-type]
        assert all(r.final for r in step.rows)
        assert [r.index for r in step.rows] == sorted(r.index for r in step.rows)
        self.seen += [r.index for r in step.rows]
        self.cursor = step.cursor.text()
        self.steps += 1
        assert len(step.cursor.pending) <= MAX_PENDING
        return step

    def drain(self, ended: bool = False) -> None:
        while self.step(ended).more:
            pass


def test_every_settled_task_is_shown_once_whatever_the_order_and_retries(store: SqliteStore) -> None:
    rng = random.Random(7)
    tasks = IndexRanges.of_size(3_000)
    add_job(store, tasks)
    order = list(tasks)
    rng.shuffle(order)
    order.sort(key=lambda i: i // 300 + rng.random() * 3)  # roughly in index order, as tasks are handed out
    follower = Follower(store, tasks)
    settled: set[int] = set()
    for start in range(0, len(order), 97):
        batch = order[start:start + 97]
        settle(store, [i for i in batch if i % 11 == 0], final=False)  # a first attempt that failed
        settle(store, [i for i in batch if i % 11], attempt=1)
        settled |= {i for i in batch if i % 11}
        follower.drain()
        assert sorted(follower.seen) == sorted(settled)  # each once, as soon as it settled
        assert len(follower.cursor) < 8_000
    settle(store, [i for i in order if i % 11 == 0], attempt=2)  # the retries settle last
    follower.drain(ended=True)
    assert sorted(follower.seen) == list(tasks)
    assert len(follower.seen) == len(set(follower.seen))


def test_a_sparse_cancelled_job_shows_what_settled_even_past_tasks_that_never_ran(store: SqliteStore) -> None:
    tasks = IndexRanges(tuple((i, i + 1) for i in range(0, 30_000, 10)))  # 0-29999:10, 3,000 spans
    add_job(store, tasks)
    follower = Follower(store, tasks)
    follower.drain()
    assert follower.seen == []
    late = list(range(20_000, 30_000, 10))  # the end of the array ran, the start never did
    settle(store, late)
    follower.drain()
    assert len(Cursor.parse(follower.cursor).pending) <= MAX_PENDING  # type: ignore[union-attr]
    follower.drain(ended=True)  # cancelled: the first 2,000 tasks will never run
    assert follower.seen == late


def test_the_cursor_stays_short_when_every_other_task_is_still_running(store: SqliteStore) -> None:
    tasks = IndexRanges.of_size(5_000)
    add_job(store, tasks)
    settle(store, list(range(0, 5_000, 2)))
    follower = Follower(store, tasks)
    follower.drain()
    pending = Cursor.parse(follower.cursor)
    assert isinstance(pending, Cursor) and len(pending.pending) == MAX_PENDING
    assert len(follower.cursor) < 4 * MAX_PENDING
    assert follower.seen == list(range(0, 2 * MAX_PENDING + 1, 2))  # no further than its last pending span
    settle(store, list(range(1, 5_000, 2)))
    for _ in range(100):
        follower.drain()
        if len(follower.seen) == 5_000:
            break
    assert sorted(follower.seen) == list(range(5_000))


def test_a_step_stops_at_its_bounds_and_the_next_one_goes_on(store: SqliteStore, monkeypatch: Any) -> None:
    monkeypatch.setattr(outputs, "PAGE_BYTES", 50_000)
    tasks = IndexRanges.of_size(400)
    add_job(store, tasks)
    settle(store, list(range(400)), out=b"x" * 1_000)
    follower = Follower(store, tasks)
    first = follower.step()
    assert first.more and 50 <= len(first.rows) < 400
    follower.drain()
    assert follower.seen == list(range(400))
    assert follower.steps >= 8


def test_following_one_task(store: SqliteStore) -> None:
    add_job(store, IndexRanges.of_size(10))
    settle(store, [3, 5, 6])
    follower = Follower(store, IndexRanges(((5, 6),)))
    follower.drain()
    assert follower.seen == [5]
    follower.drain(ended=True)
    assert follower.seen == [5]


def test_cursors_read_back_and_refuse_what_no_step_hands_out() -> None:
    for cursor in (Cursor(), Cursor(299, ((100, 200), (250, 251))), Cursor(7, ((0, 1),))):
        assert Cursor.parse(cursor.text()) == cursor
    assert Cursor(299, ((100, 200), (250, 251))).text() == "299:100+100,50"
    assert Cursor.parse(" 12:1+2,0 ") == Cursor(12, ((1, 4),))  # adjacent spans are one
    for bad in ("", "x", "-2", "5:3-1", "5:a", "5:-3", "5:1+0", "5:2147483647+2",
                "1:" + ",".join("1" for _ in range(4 * MAX_PENDING))):
        problem = Cursor.parse(bad)
        assert isinstance(problem, Problem) and problem.field == "cursor", bad


def test_pages_cover_every_task_once_in_bounded_pages(store: SqliteStore, monkeypatch: Any) -> None:
    monkeypatch.setattr(outputs, "PAGE_BYTES", 20_000)
    add_job(store, IndexRanges.of_size(3_000))
    settle(store, list(range(0, 3_000, 2)), final=False)
    settle(store, list(range(0, 3_000, 2)), out=b"y" * 100, attempt=2)
    settle(store, list(range(1, 3_000, 2)))

    async def read() -> list[list[AttemptRow]]:
        return [page async for page in pages(Reads(store), JOB)]  # type: ignore[arg-type]

    read_pages = asyncio.run(read())
    assert len(read_pages) > 5
    assert [r.index for page in read_pages for r in page] == list(range(3_000))
    assert all(r.final for page in read_pages for r in page)  # the settling attempt, not the failed one
    assert all(sum(len(r.stdout) for r in page) < 20_000 + 100 for page in read_pages)  # and one task at most


def test_shown_picks_the_settling_attempt_else_the_latest() -> None:
    def row(i: int, a: int, final: bool) -> AttemptRow:
        return AttemptRow(JOB, i, a, "done" if final else "failed", final, "w", 0, 1.0, 2.0, b"", b"")

    picked = shown([row(0, 1, False), row(0, 2, True), row(0, 3, False), row(1, 1, False), row(1, 2, False)])
    assert [(r.index, r.attempt) for r in picked] == [(0, 2), (1, 2)]


def test_index_chunks_cut_a_job_into_runs_of_its_indexes() -> None:
    assert index_chunks(IndexRanges.of_size(5), 2) == [(0, 2), (2, 4), (4, 5)]
    assert index_chunks(IndexRanges(((0, 3), (10, 12), (20, 21))), 3) == [(0, 3), (10, 21)]
    sparse = IndexRanges(tuple((i, i + 1) for i in range(0, 100, 10)))
    chunks = index_chunks(sparse, 4)
    assert chunks == [(0, 31), (40, 71), (80, 91)]
    assert sorted(i for a, b in chunks for i in sparse if a <= i < b) == list(sparse)
    assert index_chunks(IndexRanges(()), 5) == []
