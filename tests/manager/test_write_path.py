"""The shell's write path under load: a bounded backlog, one dispatch and one wake-up per loop turn.

A store whose writes the test holds back and releases (in order or not) stands for a slow disk."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from pathlib import Path
from typing import Any

import pytest

from tiercel.core.model import JobSpec, Outcome, Report, TaskRef, UserName
from tiercel.core.ranges import IndexRanges
from tiercel.manager import shell, writes
from tiercel.manager.settings import Settings
from tiercel.manager.shell import Manager
from tiercel.store import Record, SqliteStore, WriteOp

from .test_shell import ALICE, Clock, hello, settle


class HeldStore(SqliteStore):
    """Writes of attempt records wait until the test lets them through (each resolved by itself)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.holding = False
        self.held: list[tuple[list[WriteOp], concurrent.futures.Future[None]]] = []
        self.lock = threading.Lock()

    def write(self, ops: list[WriteOp]) -> concurrent.futures.Future[None]:
        if not self.holding or not any(isinstance(op, Record) for op in ops):
            return super().write(ops)
        fut: concurrent.futures.Future[None] = concurrent.futures.Future()
        with self.lock:
            self.held.append((ops, fut))
        return fut

    def release(self, which: int) -> None:
        """Make one held write durable (really, through the store), then resolve its future."""
        with self.lock:
            ops, fut = self.held.pop(which)
        super().write(ops).result(30)
        fut.set_result(None)


def run(tmp: Path, scenario: Any) -> None:
    async def main() -> None:
        clock = Clock()
        store = HeldStore(tmp / "t.db")
        manager = Manager(store, Settings(state_dir=tmp), clock=clock)
        await manager.start()
        try:
            await scenario(manager, store, clock)
        finally:
            manager.close()

    asyncio.run(main())


def done(refs: list[TaskRef], now: float) -> list[Report]:
    return [Report(r.job, r.index, r.attempt, Outcome.DONE, 0, now, now, b"", b"", r.seal) for r in refs]


def test_no_task_is_handed_out_while_the_backlog_of_unwritten_results_is_full(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writes, "WRITE_BACKLOG", 2)

    async def scenario(manager: Manager, store: HeldStore, clock: Clock) -> None:
        session, wire = hello(manager, "w1", slots=2)
        job = await manager.submit(ALICE, JobSpec(("true",), IndexRanges.of_size(6)))
        first = wire.tasks()
        assert len(first) == 2
        store.holding = True
        manager.worker_message(session, shell.Results(done(first, clock.now), 2))
        await settle()
        assert manager.unwritten == 2
        assert wire.tasks() == first, "tasks were handed out while 2 results (the bound) waited for the store"
        store.release(0)
        await settle()
        assert manager.unwritten == 0
        assert [t.index for t in wire.tasks()] == [0, 1, 2, 3], "dispatch did not resume once they were durable"
        assert wire.acks() == [(job.id, 0, 1), (job.id, 1, 1)]

    run(tmp_path, scenario)


def test_writes_made_durable_out_of_order_are_each_acknowledged_when_theirs_is(tmp_path: Path) -> None:
    async def scenario(manager: Manager, store: HeldStore, clock: Clock) -> None:
        s1, w1 = hello(manager, "w1", slots=1)
        s2, w2 = hello(manager, "w2", slots=1)
        job = await manager.submit(ALICE, JobSpec(("true",), IndexRanges.of_size(4)))
        store.holding = True
        manager.worker_message(s1, shell.Results(done(w1.tasks(), clock.now), 1))  # one loop turn, two writes
        manager.worker_message(s2, shell.Results(done(w2.tasks(), clock.now), 1))
        await settle()
        assert w1.acks() == w2.acks() == []
        store.release(1)  # the second write first: the store broke its order
        await settle()
        assert w1.acks() == [] and w2.acks() == [(job.id, w2.tasks()[0].index, 1)]
        store.release(0)
        await settle()
        assert w1.acks() == [(job.id, w1.tasks()[0].index, 1)]

    run(tmp_path, scenario)


def test_frames_of_one_loop_turn_lead_to_one_dispatch(tmp_path: Path) -> None:
    async def scenario(manager: Manager, store: HeldStore, clock: Clock) -> None:
        sessions = [hello(manager, f"w{k}", slots=1) for k in range(5)]
        await manager.submit(ALICE, JobSpec(("true",), IndexRanges.of_size(20)))
        calls = []
        dispatch = manager.engine.dispatch
        manager.engine.dispatch = lambda now: calls.append(now) or dispatch(now)  # type: ignore[method-assign]
        for session, wire in sessions:
            manager.worker_message(session, shell.Results(done(wire.tasks(), clock.now), 1))
        assert calls == []  # not once per frame
        await settle()
        assert len(calls) == 1
        assert all(len(wire.tasks()) == 2 for _, wire in sessions)

    run(tmp_path, scenario)


def test_a_batch_with_one_bad_write_fails_that_one_alone(tmp_path: Path) -> None:
    from tiercel.core.model import JobId
    from tiercel.store import AddJob

    store = SqliteStore(tmp_path / "t.db")
    store.open()
    try:
        spec = JobSpec(("true",), IndexRanges.of_size(1))
        conn = store._connect()
        futs = [concurrent.futures.Future[None]() for _ in range(3)]
        store._commit(conn, [([AddJob(JobId(1), UserName("a"), spec, 0.0)], futs[0]),
                             ([AddJob(JobId(1), UserName("b"), spec, 0.0)], futs[1]),  # the same id again
                             ([AddJob(JobId(2), UserName("c"), spec, 0.0)], futs[2])])
        conn.close()
        assert futs[0].result() is None and futs[2].result() is None
        assert futs[1].exception() is not None
        assert {r.id: r.owner for r in store.jobs(None, 10)} == {1: "a", 2: "c"}
    finally:
        store.close()


def test_results_made_durable_leave_no_garbage_for_the_collector(tmp_path: Path) -> None:
    """What a write held (its results, its acknowledgement) is freed when it is durable, not left in a
    reference cycle for the garbage collector, whose collections stop the loop under load."""
    import gc

    async def scenario(manager: Manager, store: HeldStore, clock: Clock) -> None:
        session, wire = hello(manager, "w1", slots=4)
        await manager.submit(ALICE, JobSpec(("true",), IndexRanges.of_size(40)))
        await settle()
        gc.collect()
        gc.disable()
        try:
            for _ in range(8):
                manager.worker_message(session, shell.Results(done(wire.tasks()[-4:], clock.now), 4))
                await settle()
            gc.set_debug(gc.DEBUG_SAVEALL)
            gc.collect()
            left = [type(o).__qualname__ for o in gc.garbage]
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
            gc.enable()
        assert len(wire.acks()) == 32
        assert "TaskRef" not in left and "Future" not in left, f"cyclic garbage after 8 writes: {left[:20]}"

    run(tmp_path, scenario)
