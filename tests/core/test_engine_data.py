"""The engine with data-aware placement: tasks go where their files are, copies are asked for once,
a missing input fails its task with the reason, and the rest of the engine is as before."""

from __future__ import annotations

from dataclasses import replace

from tiercel.core.data import DataView
from tiercel.core.engine import Engine, JobEnded, Persist, SendTasks
from tiercel.core.engine.effects import Relocate, Replicate
from tiercel.core.model import JobId, JobSpec, Outcome, Report, UserName, WorkerId, WorkerInfo
from tiercel.core.ranges import IndexRanges

MB = 1_000_000


def engine_with_nodes(*nodes: str, slots: int = 2) -> Engine:
    e = Engine()
    for n in nodes:
        e.connect(WorkerId(f"w-{n}"), WorkerInfo(f"w-{n}", "h", slots, data_node=n), 0.0, credit=slots)
    return e


def data_job(n: int, *inputs: str) -> JobSpec:
    return JobSpec(("true",), IndexRanges.of_size(n), inputs=inputs)


def sent(effects: list[object]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for e in effects:
        if isinstance(e, SendTasks):
            out.setdefault(e.worker, []).extend(t.index for t in e.tasks)
    return out


def test_each_task_goes_to_a_worker_whose_node_holds_its_file() -> None:
    e = engine_with_nodes("n1", "n2", "n3")
    e.add_job(JobId(1), data_job(6, "gfarm:///d/{index}"), UserName("u"), 0.0)
    where = {f"/d/{i}": frozenset({"n1"} if i % 2 else {"n2"}) for i in range(6)}
    e.set_data(DataView(where, {p: MB for p in where}))
    out = sent(e.dispatch(1.0))
    assert sorted(out["w-n1"]) == [1, 3] and sorted(out["w-n2"]) == [0, 2]
    assert "w-n3" not in out  # no run time known yet: waiting beats a blind copy


def test_a_copy_is_asked_for_once_and_its_task_runs_there_once_made() -> None:
    e = engine_with_nodes("n1", "n3", slots=1)
    e.add_job(JobId(1), data_job(20, "gfarm:///ref"), UserName("u"), 0.0)
    e.set_data(DataView({"/ref": frozenset({"n1"})}, {"/ref": MB}))
    first = e.dispatch(1.0)
    assert sent(first) == {"w-n1": [0]}
    e.report(WorkerId("w-n1"), [Report(JobId(1), 0, 1, Outcome.DONE, 0, 1.0, 11.0)], 11.0)  # a 10 s task
    e.add_credit(WorkerId("w-n1"), 1)
    second = e.dispatch(11.0)
    assert [c for c in second if isinstance(c, Replicate)] == [Replicate("/ref", "n3", MB)]
    assert sent(second) == {"w-n1": [1]}
    e.set_data(DataView({"/ref": frozenset({"n1"})}, {"/ref": MB}, copying={("/ref", "n3"): 11.0}))
    assert not [c for c in e.dispatch(12.0) if isinstance(c, Replicate)]
    e.set_data(DataView({"/ref": frozenset({"n1", "n3"})}, {"/ref": MB}))
    assert list(sent(e.dispatch(13.0))) == ["w-n3"]  # the file is there now: any of its tasks runs there
    assert e.copy_log == [("/ref", "n3")]


def test_a_task_whose_input_does_not_exist_fails_saying_so() -> None:
    e = engine_with_nodes("n1")
    e.add_job(JobId(1), data_job(1, "gfarm:///nope"), UserName("u"), 0.0)
    e.set_data(DataView({"/nope": frozenset()}, {}))
    effects = e.dispatch(1.0)
    persisted = [r for p in effects if isinstance(p, Persist) for r in p.records]
    assert persisted[0].report.outcome is Outcome.FAILED
    assert b"input gfarm:///nope does not exist in Gfarm" in persisted[0].report.stderr
    assert [x.state.value for x in effects if isinstance(x, JobEnded)] == ["failed"]


def test_jobs_without_files_run_while_gfarm_is_unreachable() -> None:
    e = engine_with_nodes("n1", slots=2)
    e.add_job(JobId(1), data_job(2, "gfarm:///d/{index}"), UserName("u"), 0.0)
    e.add_job(JobId(2), JobSpec(("true",), IndexRanges.of_size(2)), UserName("u"), 0.0)
    e.set_data(DataView({}, {}, reachable=False, problem="connection refused"))
    assert sent(e.dispatch(1.0)) == {"w-n1": [0, 1]}  # job 2's
    assert "unreachable" in e.data_waits[JobId(1)]


def gave_back(e: Engine, worker: str, index: int, attempt: int, node: str, now: float) -> None:
    """The worker on ``node`` could not read the task's input there, and gave the task back."""
    why = f"tiercel: cannot read gfarm:///d/x on {node}: connection refused\n".encode()
    e.report(WorkerId(worker), [Report(JobId(1), index, attempt, Outcome.LOST, None, now, now, b"", why)], now)
    e.add_credit(WorkerId(worker), 1)


def test_an_unreadable_replica_is_passed_over_until_gfwhere_is_asked_again_after_a_while() -> None:
    e = engine_with_nodes("n1", "n2", slots=1)
    e.add_job(JobId(1), data_job(1, "gfarm:///d/x"), UserName("u"), 0.0)
    view = DataView({"/d/x": frozenset({"n1", "n2"})}, {"/d/x": MB}, recheck_after=60.0)
    e.set_data(view)
    first = sent(e.dispatch(1.0))
    [(worker, [index])] = first.items()
    node = worker.removeprefix("w-")
    other = "n2" if node == "n1" else "n1"
    gave_back(e, worker, index, 1, node, 2.0)
    e.set_data(view)  # a view of the replicas that says nothing new keeps the mark
    stamped = e.dispatch(3.0)  # the mark is stamped now: 60 s from here
    assert sent(stamped) == {f"w-{other}": [0]} and ("/d/x", node) in e.data.unreadable
    gave_back(e, f"w-{other}", 0, 2, other, 4.0)  # the other fails too (the task fails: none left to read)
    e.set_data(view)
    assert not [x for x in e.dispatch(50.0) if isinstance(x, Relocate)]  # within the minute: nothing asked
    assert ("/d/x", node) in e.data.unreadable
    later = e.dispatch(64.0)
    assert [x for x in later if isinstance(x, Relocate)] == [Relocate(("/d/x",))]  # the first mark's minute is up
    assert not [x for x in e.dispatch(64.5) if isinstance(x, Relocate)]  # asked once, not again each dispatch
    assert ("/d/x", node) in e.data.unreadable  # still passed over until gfwhere answers
    e.set_data(replace(view, located=frozenset({"/d/x"})))  # it did: the replica is still listed
    assert ("/d/x", node) not in e.data.unreadable and ("/d/x", other) in e.data.unreadable


def test_an_unreadable_mark_ends_when_its_node_is_seen_up_again() -> None:
    e = engine_with_nodes("n1", "n2", slots=1)
    e.add_job(JobId(1), data_job(1, "gfarm:///d/x"), UserName("u"), 0.0)
    view = DataView({"/d/x": frozenset({"n1", "n2"})}, {"/d/x": MB})
    e.set_data(view)
    [(worker, [index])] = sent(e.dispatch(1.0)).items()
    node = worker.removeprefix("w-")
    gave_back(e, worker, index, 1, node, 2.0)
    assert ("/d/x", node) in e.data.unreadable
    e.set_data(replace(view, down=frozenset({node})))  # the node watch: down...
    assert ("/d/x", node) in e.data.unreadable
    e.set_data(view)  # ... and up again
    assert ("/d/x", node) not in e.data.unreadable
