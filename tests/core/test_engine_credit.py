"""The engine's set of workers with free slots stays exactly the connected workers with credit,
whatever sequence of hellos, credit, hand-outs, drains, disconnects and losses comes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tiercel.core.engine import Engine
from tiercel.core.engine.effects import SendTasks
from tiercel.core.model import JobId, JobSpec, Outcome, Report, UserName, WorkerId, WorkerInfo
from tiercel.core.ranges import IndexRanges

WORKERS = [WorkerId(f"w{k}") for k in range(4)]

op = st.one_of(
    st.tuples(st.just("connect"), st.sampled_from(WORKERS), st.integers(0, 3)),
    st.tuples(st.just("credit"), st.sampled_from(WORKERS), st.integers(-2, 3)),
    st.tuples(st.just("drain"), st.sampled_from(WORKERS), st.just(0)),
    st.tuples(st.just("disconnect"), st.sampled_from(WORKERS), st.just(0)),
    st.tuples(st.just("lose"), st.sampled_from(WORKERS), st.just(0)),
    st.tuples(st.just("dispatch"), st.sampled_from(WORKERS), st.just(0)),
    st.tuples(st.just("finish"), st.sampled_from(WORKERS), st.just(0)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(op, max_size=40))
def test_the_hungry_workers_are_the_connected_ones_with_credit(ops: list[tuple[str, WorkerId, int]]) -> None:
    engine = Engine()
    engine.add_job(JobId(1), JobSpec(("true",), IndexRanges.of_size(50)), UserName("a"), 0.0)
    now = 1.0
    handed: list[tuple[WorkerId, int, int, bytes]] = []
    for kind, w, n in ops:
        now += 1
        if kind == "connect":
            engine.connect(w, WorkerInfo(name=w, host="h", slots=3), now, credit=n)
        elif kind == "credit":
            engine.add_credit(w, n)
        elif kind == "drain":
            engine.drain(w)
        elif kind == "disconnect":
            engine.disconnect(w)
        elif kind == "lose":
            engine.lose(w, now)
        elif kind == "dispatch":
            before = [x.id for x in engine.workers.values() if x.connected and x.credit > 0]
            sends = [e for e in engine.dispatch(now) if isinstance(e, SendTasks)]
            # places are offered in the order the workers joined, as before the set was kept
            assert [s.worker for s in sends] == [x for x in before if x in {s.worker for s in sends}]
            handed += [(s.worker, t.index, t.attempt, t.seal) for s in sends for t in s.tasks]
        elif kind == "finish":
            mine = [h for h in handed if h[0] == w]
            if mine:
                handed.remove(mine[0])
                _, index, attempt, seal = mine[0]
                engine.report(w, [Report(JobId(1), index, attempt, Outcome.DONE, 0, now, now, seal=seal)], now)
        expected = {x.id for x in engine.workers.values() if x.connected and x.credit > 0}
        assert engine._hungry == expected, (kind, w, n)
