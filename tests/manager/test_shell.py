"""The manager's shell with a fake clock and a fake transport: sessions, the write path, liveness."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from tiercel.core.model import JobSpec, Outcome, Report, TaskRef, UserName, WorkerId, WorkerInfo
from tiercel.core.ranges import IndexRanges
from tiercel.manager.sessions import PlaceKind, Session, Sessions
from tiercel.manager.settings import Settings
from tiercel.manager.shell import Manager
from tiercel.store import SqliteStore
from tiercel.wire.messages import Ack, Error, Hello, ManagerMessage, Results, Tasks

ALICE = UserName("alice")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Wire:
    """A fake transport: what the manager sent to one worker session."""

    def __init__(self) -> None:
        self.sent: list[ManagerMessage] = []

    def send(self, msg: ManagerMessage) -> None:
        self.sent.append(msg)

    def kinds(self) -> list[str]:
        return [type(m).__name__ for m in self.sent]

    def tasks(self) -> list[TaskRef]:
        return [t for m in self.sent if isinstance(m, Tasks) for t in m.tasks]

    def acks(self) -> list[tuple[int, int, int]]:
        return [(a.job, a.index, a.attempt) for m in self.sent if isinstance(m, Ack) for a in m.done]


def run(tmp: Path, scenario: Callable[[Manager, Clock], Awaitable[None]], **settings: Any) -> None:
    async def main() -> None:
        clock = Clock()
        manager = Manager(SqliteStore(tmp / "t.db"), Settings(state_dir=tmp, **settings), clock=clock)
        await manager.start()
        try:
            await scenario(manager, clock)
        finally:
            manager.close()

    asyncio.run(main())


def hello(manager: Manager, wid: str, slots: int = 2, principal: str = "p1") -> tuple[Session, Wire]:
    wire = Wire()
    session = Session(WorkerId(wid), WorkerInfo(name=wid, host="h", slots=slots), wire.send, manager.clock(),
                      principal=principal)
    assert manager.worker_connected(session, Hello(WorkerId(wid), session.info, slots))
    return session, wire


async def settle() -> None:
    for _ in range(20):  # the store's writer thread, then the loop's callbacks
        await asyncio.sleep(0.01)


def test_a_result_is_acknowledged_only_once_durable_and_the_job_ends(tmp_path: Path) -> None:
    async def scenario(manager: Manager, clock: Clock) -> None:
        session, wire = hello(manager, "w1")
        job = await manager.submit(ALICE, JobSpec(("true",), IndexRanges.of_size(2)))
        assert [(t.job, t.index, t.attempt) for t in wire.tasks()] == [(job.id, 0, 1), (job.id, 1, 1)]
        clock.now += 5
        reports = [Report(r.job, r.index, r.attempt, Outcome.DONE, 0, clock.now, clock.now, b"ok", b"", r.seal)
                   for r in wire.tasks()]
        manager.worker_message(session, Results(reports, 2))
        assert wire.acks() == []  # not yet durable
        await settle()
        assert wire.acks() == [(job.id, 0, 1), (job.id, 1, 1)]
        ended = await manager.queries.summary(job.id)
        assert ended is not None and ended.state.value == "done" and ended.counts.done == 2

    run(tmp_path, scenario)


def test_a_silent_worker_is_lost_by_the_fake_clock_and_its_tasks_go_to_another(tmp_path: Path) -> None:
    async def scenario(manager: Manager, clock: Clock) -> None:
        _, quiet_wire = hello(manager, "quiet", slots=1)
        job = await manager.submit(ALICE, JobSpec(("true",), IndexRanges.of_size(1)))
        assert len(quiet_wire.tasks()) == 1
        clock.now += 5
        manager.check_liveness()  # 5 s of silence: within the time-out
        assert manager.sessions.get(WorkerId("quiet")) is not None
        _, other = hello(manager, "other", slots=1, principal="p2")
        assert other.tasks() == []  # the task is still quiet's
        clock.now += 30
        manager.check_liveness()
        assert manager.sessions.get(WorkerId("quiet")) is None and "Reconnect" in quiet_wire.kinds()
        assert [(t.job, t.index, t.attempt) for t in other.tasks()] == [(job.id, 0, 2)]  # attempt 2, elsewhere

    run(tmp_path, scenario, worker_timeout=30.0)


def test_a_closed_session_keeps_its_place_until_lost_and_a_new_one_takes_it_back(tmp_path: Path) -> None:
    async def scenario(manager: Manager, clock: Clock) -> None:
        session, wire = hello(manager, "w1", slots=1)
        job = await manager.submit(ALICE, JobSpec(("true",), IndexRanges.of_size(1)))
        (task,) = wire.tasks()
        manager.worker_disconnected(session)
        kept = manager.sessions.get(WorkerId("w1"))
        assert kept is session and not kept.open
        session.send(Error("never delivered"))
        assert Error("never delivered") not in wire.sent  # a closed session's messages go nowhere
        again, new_wire = hello(manager, "w1", slots=1)
        await settle()
        assert manager.sessions.current(WorkerId("w1")) is again
        assert manager.queries.live(job.id).counts.running == 1  # type: ignore[union-attr]
        # reclaimed only with the held task's seal: here it held nothing, so the task was re-queued and re-sent
        assert [(t.job, t.index, t.attempt) for t in new_wire.tasks()] == [(task.job, 0, 2)]

    run(tmp_path, scenario)


def test_a_worker_id_held_by_other_credentials_is_refused(tmp_path: Path) -> None:
    async def scenario(manager: Manager, clock: Clock) -> None:
        hello(manager, "w1", principal="alice-token")
        wire = Wire()
        thief = Session(WorkerId("w1"), WorkerInfo(name="thief", host="h", slots=1), wire.send, clock.now,
                        principal="mallory-token")
        assert not manager.worker_connected(thief, Hello(WorkerId("w1"), thief.info, 1))
        assert wire.kinds() == ["Error"] and manager.sessions.current(WorkerId("w1")).principal == "alice-token"  # type: ignore[union-attr]
        manager.worker_disconnected(manager.sessions.current(WorkerId("w1")))  # type: ignore[arg-type]
        wire.sent.clear()
        assert not manager.worker_connected(thief, Hello(WorkerId("w1"), thief.info, 1))  # not while it reconnects
        assert wire.kinds() == ["Error"]

    run(tmp_path, scenario)


def test_explain_changes_nothing(tmp_path: Path) -> None:
    async def scenario(manager: Manager, clock: Clock) -> None:
        job = await manager.submit(ALICE, JobSpec(("true",), IndexRanges.of_size(3), requires=frozenset({"gpu"})))
        run_ = manager.engine.jobs[job.id]
        before = (run_.choice, dict(manager.engine.queue_errors), run_.pending)
        summary = manager.queries.live(job.id)
        assert summary is not None
        for _ in range(3):
            manager.queries.explain(summary)
        assert (run_.choice, dict(manager.engine.queue_errors), run_.pending) == before

    run(tmp_path, scenario)


def test_sessions_table() -> None:
    table = Sessions()
    info = WorkerInfo(name="a", host="h", slots=3)
    a = Session(WorkerId("a"), info, lambda m: None, 0.0, principal="x")
    assert table.open(a, 10.0) is None and table.holder(WorkerId("a")) == "x"
    b = Session(WorkerId("a"), info, lambda m: None, 0.0, principal="x")
    assert table.open(b, 11.0) is a and not table.close(a)  # a replaced session's close changes nothing
    site = Session(WorkerId("site:hpc"), info, lambda m: None, 0.0, kind=PlaceKind.SITE)
    table.open(site, 0.0)
    assert table.slots() == 3 and table.slots(PlaceKind.SITE) == 3
    assert [s.worker for s in table.silent(100.0, 30.0)] == ["a"]  # a site is polled, never silent
    assert table.close(b) and table.current(WorkerId("a")) is None and table.get(WorkerId("a")) is b
    assert table.holder(WorkerId("a")) == "x"  # a closed place is still its credentials' until lost
    assert table.drop(WorkerId("a")) is b and table.holder(WorkerId("a")) is None and len(table) == 1


def test_a_manager_whose_state_dir_lacks_the_worker_token_makes_one_for_its_pilots(tmp_path: Path) -> None:
    """A standby taking over a shared store has a state dir of its own: the tokens are in the store,
    the token files only where the first manager ran. Its pilots need a worker token file."""
    from tiercel.sites import config as sites_config

    async def nothing(manager: Manager, clock: Clock) -> None:
        return None

    run(tmp_path, nothing)  # the first start makes admin.token and worker.token
    first = (tmp_path / "worker.token").read_text()
    (tmp_path / "worker.token").unlink()
    sites = sites_config.parse({"sites": {"pool": {}, "here": {"kind": "local", "slots": 1}}})
    assert isinstance(sites, dict)

    async def check(manager: Manager, clock: Clock) -> None:
        token = (tmp_path / "worker.token").read_text().strip()
        who = manager.identify(token)
        assert who is not None and who.role == "worker" and token != first.strip()
        assert (tmp_path / "worker.token").stat().st_mode & 0o077 == 0

    run(tmp_path, check, sites=sites)


def test_a_workflow_the_store_cannot_keep_is_refused_whole_and_uses_up_no_id(tmp_path: Path) -> None:
    import concurrent.futures

    import pytest

    from tiercel.core.problems import Problem
    from tiercel.manager.shell import Unavailable
    from tiercel.manager.workflows import Planned, submit

    async def scenario(manager: Manager, clock: Clock) -> None:
        def failing(ops: list[object]) -> concurrent.futures.Future[None]:
            fut: concurrent.futures.Future[None] = concurrent.futures.Future()
            fut.set_exception(OSError(28, "No space left on device"))
            return fut

        real = manager.store.write
        manager.store.write = failing  # type: ignore[method-assign]
        jobs = [Planned("a", JobSpec(("true",), IndexRanges.of_size(1))),
                Planned("b", JobSpec(("true",), IndexRanges.of_size(1)), (("a", "ok"),))]
        with pytest.raises(Unavailable, match=r"could not store the workflow .*nothing was kept"):
            await submit(manager, ALICE, "w", jobs)
        manager.store.write = real  # type: ignore[method-assign]
        made = await submit(manager, ALICE, "w", jobs)
        assert not isinstance(made, Problem) and made == (1, [1, 2]) and manager.engine.jobs.keys() == {1, 2}

    run(tmp_path, scenario)
