"""Table tests of the task state machine: events in, effects out."""

from tiercel.core.engine import Engine, JobEnded, KillTasks, Persist, Refused, RunCleanup, SendTasks
from tiercel.core.model import (
    Entries,
    JobId,
    JobSpec,
    JobState,
    Outcome,
    Report,
    Restored,
    RestoredTask,
    TaskRef,
    UserName,
    WorkerId,
    WorkerInfo,
)
from tiercel.core.ranges import IndexRanges
from tiercel.core.seal import Seal

ALICE = UserName("alice")
W1, W2 = WorkerId("w1"), WorkerId("w2")


def spec(n: int = 4, **kw: object) -> JobSpec:
    return JobSpec(command=("/bin/true",), indexes=IndexRanges.of_size(n), **kw)  # type: ignore[arg-type]


def worker(slots: int = 2, tags: frozenset[str] = frozenset()) -> WorkerInfo:
    return WorkerInfo(name="w", host="h", slots=slots, tags=tags)


def sent(effects: list[object]) -> dict[WorkerId, list[tuple[int, int, int]]]:
    out: dict[WorkerId, list[tuple[int, int, int]]] = {}
    for e in effects:
        if isinstance(e, SendTasks):
            out.setdefault(e.worker, []).extend((t.job, t.index, t.attempt) for t in e.tasks)
    return out


def records(effects: list[object]) -> list[tuple[int, int, str, bool]]:
    return [(r.report.index, r.report.attempt, r.report.outcome.value, r.final) for e in effects
            if isinstance(e, Persist) for r in e.records]


def ended(effects: list[object]) -> list[JobEnded]:
    return [e for e in effects if isinstance(e, JobEnded)]


def rep(job: int, index: int, attempt: int = 1, outcome: Outcome = Outcome.DONE, *,
        by: WorkerId | None = None) -> Report:
    """A report; ``by`` seals it as the attempt handed to that worker (the engine's default key)."""
    seal = Seal(b"").make(by, JobId(job), index, attempt) if by else b""
    return Report(JobId(job), index, attempt, outcome, 0 if outcome is Outcome.DONE else 1, seal=seal)


def held(worker_id: WorkerId, job: int, index: int, attempt: int) -> TaskRef:
    """A task a worker says it holds, with the seal it was handed."""
    return TaskRef(JobId(job), index, attempt, Seal(b"").make(worker_id, JobId(job), index, attempt))


def test_fcfs_fills_credit_from_the_earliest_job() -> None:
    e = Engine()
    e.add_job(JobId(1), spec(3), ALICE, 0)
    e.add_job(JobId(2), spec(3), ALICE, 0)
    e.connect(W1, worker(), 0, credit=4)
    assert sent(e.dispatch(0)) == {W1: [(1, 0, 1), (1, 1, 1), (1, 2, 1), (2, 0, 1)]}
    assert e.dispatch(0) == []  # no credit left


def test_priority_goes_before_submission_order() -> None:
    e = Engine()
    e.add_job(JobId(1), spec(2), ALICE, 0)
    e.add_job(JobId(2), spec(2, priority=5), ALICE, 0)
    e.connect(W1, worker(), 0, credit=2)
    assert sent(e.dispatch(0)) == {W1: [(2, 0, 1), (2, 1, 1)]}


def test_requirements_pass_over_workers_without_tags_without_blocking_others() -> None:
    e = Engine()
    e.add_job(JobId(1), spec(2, requires=frozenset({"gpu"})), ALICE, 0)
    e.add_job(JobId(2), spec(2), ALICE, 0)
    e.connect(W1, worker(), 0, credit=2)
    e.connect(W2, worker(tags=frozenset({"gpu", "bio"})), 0, credit=1)
    assert sent(e.dispatch(0)) == {W1: [(2, 0, 1), (2, 1, 1)], W2: [(1, 0, 1)]}


def test_multi_slot_tasks_take_their_slots_of_credit() -> None:
    e = Engine()
    e.add_job(JobId(1), spec(5, cpus=2), ALICE, 0)
    e.connect(W1, worker(slots=4), 0, credit=5)
    assert sent(e.dispatch(0)) == {W1: [(1, 0, 1), (1, 1, 1)]}


def test_job_ends_done_when_every_task_succeeds() -> None:
    e = Engine()
    e.add_job(JobId(1), spec(2), ALICE, 0)
    e.connect(W1, worker(), 0, credit=2)
    e.dispatch(0)
    eff = e.report(W1, [rep(1, 0), rep(1, 1)], 1)
    assert records(eff) == [(0, 1, "done", True), (1, 1, "done", True)]
    [end] = ended(eff)
    assert end.state is JobState.DONE and end.counts.done == 2
    assert JobId(1) not in e.jobs


def test_failed_task_is_retried_then_fails_for_good() -> None:
    e = Engine()
    e.add_job(JobId(1), spec(1, retries=1), ALICE, 0)
    e.connect(W1, worker(), 0, credit=2)
    e.dispatch(0)
    eff = e.report(W1, [rep(1, 0, 1, Outcome.FAILED)], 1)
    assert records(eff) == [(0, 1, "failed", False)]
    assert sent(e.dispatch(1)) == {W1: [(1, 0, 2)]}
    eff = e.report(W1, [rep(1, 0, 2, Outcome.TIMEOUT)], 2)
    assert records(eff) == [(0, 2, "timeout", True)]
    assert ended(eff)[0].state is JobState.FAILED


def test_duplicate_and_late_reports_are_ignored() -> None:
    e = Engine()
    e.add_job(JobId(1), spec(2), ALICE, 0)
    e.connect(W1, worker(), 0, credit=2)
    e.dispatch(0)
    assert records(e.report(W1, [rep(1, 0)], 1)) == [(0, 1, "done", True)]
    assert e.report(W1, [rep(1, 0)], 1) == []  # the same report again
    assert e.report(W1, [rep(1, 0, 1, Outcome.FAILED)], 1) == []  # a contradicting late report
    assert e.report(W1, [rep(99, 0)], 1) == []  # an unknown job
    assert e.counts(JobId(1)).done == 1  # type: ignore[union-attr]


def test_lost_worker_tasks_are_requeued_with_a_higher_attempt() -> None:
    e = Engine()
    e.add_job(JobId(1), spec(2), ALICE, 0)
    e.connect(W1, worker(), 0, credit=2)
    e.dispatch(0)
    eff = e.lose(W1, 5)
    assert sorted(records(eff)) == [(0, 1, "lost", False), (1, 1, "lost", False)]
    e.connect(W2, worker(), 6, credit=2)
    assert sorted(sent(e.dispatch(6))[W2]) == [(1, 0, 2), (1, 1, 2)]
    # the lost worker's late success still settles the task, and the other attempt is killed
    eff = e.report(W1, [rep(1, 0, 1, by=W1)], 7)
    assert records(eff) == [(0, 1, "done", True)]
    assert [k.tasks for k in eff if isinstance(k, KillTasks)] == [[TaskRef(JobId(1), 0, 2)]]


def test_lost_attempts_do_not_use_up_retries() -> None:
    e = Engine()
    e.add_job(JobId(1), spec(1, retries=0), ALICE, 0)
    for n in range(3):
        w = WorkerId(f"x{n}")
        e.connect(w, worker(), n, credit=1)
        e.dispatch(n)
        e.lose(w, n)
    e.connect(W1, worker(), 9, credit=1)
    assert sent(e.dispatch(9)) == {W1: [(1, 0, 4)]}
    eff = e.report(W1, [rep(1, 0, 4, Outcome.FAILED)], 10)
    assert ended(eff)[0].counts.failed == 1


def test_cancel_settles_everything_and_kills_running_tasks() -> None:
    e = Engine()
    e.add_job(JobId(1), spec(10), ALICE, 0)
    e.connect(W1, worker(), 0, credit=3)
    e.dispatch(0)
    e.report(W1, [rep(1, 0)], 1)
    eff = e.cancel(JobId(1))
    kills = [e for e in eff if isinstance(e, KillTasks)]
    assert kills and sorted(t.index for t in kills[0].tasks) == [1, 2]
    [end] = ended(eff)
    assert end.state is JobState.CANCELLED
    assert (end.counts.done, end.counts.cancelled) == (1, 9)
    # a report arriving after the cancel changes nothing
    assert e.report(W1, [rep(1, 1)], 2) == []


def test_cleanup_runs_on_each_worker_that_ran_tasks() -> None:
    e = Engine()
    e.add_job(JobId(1), spec(2, cleanup="rm -rf /tmp/x"), ALICE, 0)
    e.connect(W1, worker(), 0, credit=1)
    e.connect(W2, worker(), 0, credit=1)
    e.dispatch(0)
    eff = e.report(W1, [rep(1, 0)], 1) + e.report(W2, [rep(1, 1)], 1)
    assert sorted(c.worker for c in eff if isinstance(c, RunCleanup)) == [W1, W2]


def test_restore_skips_settled_tasks_and_resumes_attempt_numbers() -> None:
    e = Engine()
    restored = Restored(settled=[(0, 3)], done=2, failed=1, unsettled={3: RestoredTask(attempts=2, failures=1)})
    e.add_job(JobId(1), spec(6, retries=3), ALICE, 0, restored)
    counts = e.counts(JobId(1))
    assert counts is not None and (counts.done, counts.failed, counts.queued) == (2, 1, 3)
    e.connect(W1, worker(), 0, credit=10)
    assert sent(e.dispatch(0)) == {W1: [(1, 3, 3), (1, 4, 1), (1, 5, 1)]}


def test_restore_of_a_fully_settled_job_ends_it() -> None:
    e = Engine()
    eff = e.add_job(JobId(1), spec(2), ALICE, 0, Restored(settled=[(0, 2)], done=2))
    assert ended(eff)[0].state is JobState.DONE


def test_after_restart_dispatch_waits_for_known_workers_to_reclaim_tasks() -> None:
    e = Engine(hold_until=10, expected_workers=[W1])
    e.add_job(JobId(1), spec(4), ALICE, 0)
    e.connect(W2, worker(), 1, credit=4)
    assert e.dispatch(1) == []  # held: W1 may still be running some of these
    eff = e.connect(W1, worker(), 2, credit=0, held=[held(W1, 1, 1, 1)],
                    results=[rep(1, 0, by=W1)])
    assert records(eff) == [(0, 1, "done", True)]
    assert sent(e.dispatch(2)) == {W2: [(1, 2, 1), (1, 3, 1)]}  # 0 settled, 1 reclaimed by W1
    assert e.report(W1, [rep(1, 1)], 3) and e.counts(JobId(1)).done == 2  # type: ignore[union-attr]


def test_hold_ends_at_its_deadline() -> None:
    e = Engine(hold_until=10, expected_workers=[W1])
    e.add_job(JobId(1), spec(1), ALICE, 0)
    e.connect(W2, worker(), 1, credit=1)
    assert e.dispatch(9) == []
    assert sent(e.dispatch(10)) == {W2: [(1, 0, 1)]}


def test_reconnect_requeues_tasks_the_worker_never_received() -> None:
    e = Engine()
    e.add_job(JobId(1), spec(2), ALICE, 0)
    e.connect(W1, worker(), 0, credit=2)
    e.dispatch(0)
    e.disconnect(W1)
    eff = e.connect(W1, worker(), 1, credit=1, held=[TaskRef(JobId(1), 0, 1)])
    assert records(eff) == [(1, 1, "lost", False)]
    assert sent(e.dispatch(1)) == {W1: [(1, 1, 2)]}


def test_reconnect_with_a_task_settled_meanwhile_is_told_to_kill_it() -> None:
    e = Engine()
    e.add_job(JobId(1), spec(2), ALICE, 0)
    e.connect(W1, worker(), 0, credit=1)
    e.dispatch(0)
    e.lose(W1, 1)
    e.connect(W2, worker(), 1, credit=1)
    e.dispatch(1)
    e.report(W2, [rep(1, 0, 2)], 2)
    eff = e.connect(W1, worker(), 3, credit=0, held=[held(W1, 1, 0, 1)])
    assert [k.tasks for k in eff if isinstance(k, KillTasks)] == [[TaskRef(JobId(1), 0, 1)]]


def test_a_failure_reported_twice_counts_once() -> None:
    """A worker re-sends an unacknowledged failure (lost ack, manager restart): no retry is used up."""
    e = Engine()
    e.add_job(JobId(1), spec(1, retries=1), ALICE, 0)
    e.connect(W1, worker(), 0, credit=1)
    e.dispatch(0)
    assert records(e.report(W1, [rep(1, 0, 1, Outcome.FAILED)], 1)) == [(0, 1, "failed", False)]
    eff = e.connect(W1, worker(), 2, credit=1, results=[rep(1, 0, 1, Outcome.FAILED)])
    assert records(eff) == [] and not ended(eff)
    assert sent(e.dispatch(2)) == {W1: [(1, 0, 2)]}


def test_a_draining_worker_gets_nothing_new() -> None:
    e = Engine()
    e.add_job(JobId(1), spec(4), ALICE, 0)
    e.connect(W1, worker(), 0, credit=2)
    e.dispatch(0)
    e.drain(W1)
    e.add_credit(W1, 2)
    e.report(W1, [rep(1, 0, 1, Outcome.CANCELLED)], 1)  # handed back on its way out
    assert e.dispatch(1) == []
    e.connect(W2, worker(), 2, credit=4)
    assert sorted(sent(e.dispatch(2))[W2]) == [(1, 0, 2), (1, 2, 1), (1, 3, 1)]


def refused(effects: list[object]) -> list[tuple[int, int, int]]:
    return [(r.job, r.index, r.attempt) for e in effects if isinstance(e, Refused) for r in e.tasks]


def test_a_result_for_a_task_never_handed_out_is_refused() -> None:
    e = Engine()
    e.add_job(JobId(1), spec(2, requires=frozenset({"gpu"})), ALICE, 0)  # no worker can take it
    e.connect(W1, worker(), 0, credit=0)
    eff = e.report(W1, [rep(1, 0)], 1)
    assert records(eff) == [] and refused(eff) == [(1, 0, 1)]
    assert e.counts(JobId(1)).done == 0 and e.workers[W1].refused == 1  # type: ignore[union-attr]
    # a seal made for another worker, or by another key, proves nothing either
    forged = Report(JobId(1), 1, 1, Outcome.DONE, 0, seal=b"x" * 8)
    eff = e.report(W1, [rep(1, 1, by=W2)], 1) + e.report(W1, [forged], 1)
    assert refused(eff) == [(1, 1, 1), (1, 1, 1)] and e.counts(JobId(1)).queued == 2  # type: ignore[union-attr]


def test_a_worker_cannot_settle_a_task_running_on_another() -> None:
    e = Engine()
    e.add_job(JobId(1), spec(1), ALICE, 0)
    e.connect(W2, worker(), 0, credit=1)
    assert sent(e.dispatch(0)) == {W2: [(1, 0, 1)]}
    e.connect(W1, worker(), 0, credit=0)
    eff = e.report(W1, [rep(1, 0, 1), rep(1, 0, 1, Outcome.FAILED)], 1)
    assert records(eff) == [] and [k for k in eff if isinstance(k, KillTasks)] == []
    assert refused(eff) == [(1, 0, 1), (1, 0, 1)]
    assert e.jobs[JobId(1)].running[0].worker == W2  # still W2's
    assert records(e.report(W2, [rep(1, 0, 1)], 2)) == [(0, 1, "done", True)]


def test_a_hello_holding_tasks_it_was_not_given_adopts_none_of_them() -> None:
    e = Engine()
    e.add_job(JobId(1), spec(2), ALICE, 0)
    e.connect(W2, worker(), 0, credit=1)
    e.dispatch(0)  # index 0 runs on W2; index 1 was never handed out
    eff = e.connect(W1, worker(), 1, credit=0, held=[TaskRef(JobId(1), 0, 1), TaskRef(JobId(1), 1, 1)],
                    results=[rep(1, 1)])
    assert refused(eff) == [(1, 1, 1), (1, 0, 1), (1, 1, 1)]
    assert [k.tasks for k in eff if isinstance(k, KillTasks)] == [[TaskRef(JobId(1), 0, 1), TaskRef(JobId(1), 1, 1)]]
    assert e.workers[W1].tasks == {} and e.jobs[JobId(1)].running[0].worker == W2
    assert 1 in e.jobs[JobId(1)].fresh


def test_after_a_restart_only_sealed_reports_reclaim_or_settle() -> None:
    before = Engine(seal=Seal(b"k"))
    before.add_job(JobId(1), spec(3), ALICE, 0)
    before.connect(W1, worker(3), 0, credit=3)
    handed = next(x for x in before.dispatch(0) if isinstance(x, SendTasks)).tasks
    report = Report(JobId(1), handed[0].index, 1, Outcome.DONE, 0, seal=handed[0].seal)
    # the manager restarts: a new engine with the store's key; W1 and an impostor come back
    after = Engine(seal=Seal(b"k"), hold_until=10, expected_workers=[W1])
    after.add_job(JobId(1), spec(3), ALICE, 0)
    eff = after.connect(W2, worker(), 1, credit=0, held=[handed[1]],
                        results=[Report(JobId(1), 2, 1, Outcome.DONE, 0, seal=handed[2].seal)])
    assert refused(eff) == [(1, 2, 1), (1, 1, 1)] and after.workers[W2].tasks == {}
    eff = after.connect(W1, worker(3), 1, credit=0, held=handed[1:], results=[report])
    assert records(eff) == [(0, 1, "done", True)] and refused(eff) == []
    assert set(after.workers[W1].tasks) == {(JobId(1), 1), (JobId(1), 2)}
    wrong_key = Engine(seal=Seal(b"other"))
    wrong_key.add_job(JobId(1), spec(3), ALICE, 0)
    assert refused(wrong_key.connect(W1, worker(3), 1, credit=0, results=[report])) == [(1, 0, 1)]


def test_each_task_handed_out_carries_its_entry_retries_too() -> None:
    e = Engine()
    e.add_job(JobId(1), spec(3, retries=1, entries=Entries.of(["a.txt", "", "c d"])), ALICE, 0)
    e.add_job(JobId(2), spec(1), ALICE, 0)
    e.connect(W1, worker(), 0, credit=5)
    tasks = [t for eff in e.dispatch(0) if isinstance(eff, SendTasks) for t in eff.tasks]
    assert [(t.job, t.index, t.entry) for t in tasks] == [(1, 0, "a.txt"), (1, 1, ""), (1, 2, "c d"), (2, 0, None)]
    e.report(W1, [rep(1, 2, 1, Outcome.FAILED, by=W1)], 1)
    [again] = [t for eff in e.dispatch(1) if isinstance(eff, SendTasks) for t in eff.tasks]
    assert (again.index, again.attempt, again.entry) == (2, 2, "c d")
