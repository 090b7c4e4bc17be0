"""Table tests of dependencies between jobs: every kind, failure propagation, corr task by task."""

import pytest

from tests.core.test_engine import ALICE, W1, ended, rep, sent, spec, worker
from tiercel.core.engine import Engine
from tiercel.core.model import After, JobId, JobState, Outcome, Parent


def finish(e: Engine, job: int, outcomes: dict[int, Outcome], now: float = 1) -> list[object]:
    """Hand out the job's tasks and report them as given (DONE for the rest)."""
    effects: list[object] = []
    e.add_credit(W1, 100)
    for w, tasks in sent(e.dispatch(now)).items():
        effects += e.report(w, [rep(j, i, a, outcomes.get(i, Outcome.DONE), by=w) for j, i, a in tasks], now)
    return effects


@pytest.mark.parametrize(("kind", "parent_fails", "child_runs"), [
    ("ok", False, True), ("ok", True, False),
    ("any", False, True), ("any", True, True),
    ("notok", False, False), ("notok", True, True),
])
def test_a_job_waits_for_its_parent_to_end_then_runs_or_is_cancelled_by_kind(
        kind: str, parent_fails: bool, child_runs: bool) -> None:
    e = Engine()
    e.connect(W1, worker(slots=100), 0, credit=0)
    e.add_job(JobId(1), spec(2), ALICE, 0)
    e.add_job(JobId(2), spec(3, after=(After(JobId(1), kind),)), ALICE, 0)
    assert e.explain(JobId(2), 0).status.policy == "after"  # type: ignore[union-attr]
    effects = finish(e, 1, {0: Outcome.FAILED} if parent_fails else {})
    [parent_end, *rest] = ended(effects)
    assert parent_end.job == 1
    if child_runs:
        assert rest == [] and JobId(2) in e.jobs
        finish(e, 2, {})
        assert JobId(2) not in e.jobs
    else:
        [child] = rest
        assert child.job == 2 and child.state is JobState.CANCELLED and child.counts.cancelled == 3
        assert child.reason is not None and child.reason.startswith("dependency: job 1 ")


def test_a_cancelled_dependency_cancels_the_whole_chain_after_it() -> None:
    e = Engine()
    e.add_job(JobId(1), spec(1), ALICE, 0)
    e.add_job(JobId(2), spec(1, after=(After(JobId(1)),)), ALICE, 0)
    e.add_job(JobId(3), spec(1, after=(After(JobId(2)),)), ALICE, 0)
    effects = e.cancel(JobId(1))
    assert [(x.job, x.state, x.reason) for x in ended(effects)] == [
        (1, JobState.CANCELLED, None),
        (2, JobState.CANCELLED, "dependency: job 1 was cancelled"),
        (3, JobState.CANCELLED, "dependency: job 2 was cancelled"),
    ]
    assert e.jobs == {} and e.children == {}


def test_on_dependency_failure_wait_keeps_the_job_until_a_retried_parent_succeeds() -> None:
    e = Engine()
    e.connect(W1, worker(slots=10), 0, credit=0)
    e.add_job(JobId(1), spec(1), ALICE, 0)
    e.add_job(JobId(2), spec(1, after=(After(JobId(1)),), on_dependency_failure="wait"), ALICE, 0)
    effects = finish(e, 1, {0: Outcome.FAILED})
    assert [x.job for x in ended(effects)] == [1] and e.jobs[JobId(2)].waits == {JobId(1): "ok"}
    e.add_job(JobId(1), spec(1), ALICE, 2)  # the parent comes back, as 'tiercel retry' brings it
    finish(e, 1, {}, now=3)
    assert e.jobs[JobId(2)].waits == {}
    assert sent(e.dispatch(4)) == {W1: [(2, 0, 1)]}


def test_an_ended_parent_known_to_the_shell_is_weighed_at_once() -> None:
    e = Engine()
    done = e.add_job(JobId(5), spec(1, after=(After(JobId(1)),)), ALICE, 0, parents={JobId(1): Parent(JobState.DONE)})
    assert done == [] and e.jobs[JobId(5)].startable == 1
    failed = e.add_job(JobId(6), spec(2, after=(After(JobId(2)),)), ALICE, 0,
                       parents={JobId(2): Parent(JobState.FAILED)})
    assert [(x.job, x.counts.cancelled, x.reason) for x in ended(failed)] == [(6, 2, "dependency: job 2 failed")]


def test_corr_releases_task_i_as_the_parents_task_i_is_done_and_cancels_it_when_that_fails() -> None:
    e = Engine()
    e.connect(W1, worker(slots=10), 0, credit=0)
    e.add_job(JobId(1), spec(4), ALICE, 0)
    e.add_job(JobId(2), spec(4, after=(After(JobId(1), "corr"),)), ALICE, 0)
    counts = e.counts(JobId(2))
    assert counts is not None and counts.queued == 4 and e.jobs[JobId(2)].startable == 0
    e.add_credit(W1, 2)
    assert sent(e.dispatch(1)) == {W1: [(1, 0, 1), (1, 1, 1)]}
    e.report(W1, [rep(1, 0, by=W1), rep(1, 1, 1, Outcome.FAILED, by=W1)], 2)
    child = e.jobs[JobId(2)]
    assert sorted(child.gated) == [2, 3] and child.cancelled == 1
    assert child.reason == "dependency: job 1 task 1 failed"
    e.add_credit(W1, 10)
    out = sent(e.dispatch(3))[W1]
    assert (2, 0, 1) in out and not any(j == 2 and i != 0 for j, i, _ in out)  # only the released task


def test_corr_restored_after_a_restart_from_what_the_store_says_of_the_parent() -> None:
    e = Engine()
    effects = e.add_job(JobId(2), spec(4, after=(After(JobId(1), "corr"),)), ALICE, 0,
                        parents={JobId(1): Parent(JobState.FAILED, done=frozenset({0, 2}), failed=frozenset({1}))})
    job = e.jobs[JobId(2)]
    assert job.pending == 2 and job.gated == {} and job.cancelled == 2 and not ended(effects)
    assert job.reason == "dependency: job 1 task 1 failed"


def test_corr_on_a_live_parent_counts_the_tasks_it_settled_before_the_child_came() -> None:
    e = Engine()
    e.connect(W1, worker(slots=10), 0, credit=2)
    e.add_job(JobId(1), spec(3), ALICE, 0)
    assert sent(e.dispatch(0)) == {W1: [(1, 0, 1), (1, 1, 1)]}
    e.report(W1, [rep(1, 0, by=W1), rep(1, 1, 1, Outcome.FAILED, by=W1)], 1)  # before the child exists
    e.add_job(JobId(2), spec(3, after=(After(JobId(1), "corr"),)), ALICE, 1)
    child = e.jobs[JobId(2)]
    assert (child.pending, sorted(child.gated), child.cancelled) == (1, [2], 1)


def test_a_cap_shared_by_several_jobs_holds_across_them() -> None:
    e = Engine()
    e.connect(W1, worker(slots=20), 0, credit=20)
    e.add_job(JobId(1), spec(10, limits=(("workflow 1", 3),)), ALICE, 0)
    e.add_job(JobId(2), spec(10, limits=(("workflow 1", 3), ("workflow 1 category io", 1))), ALICE, 0)
    e.add_job(JobId(3), spec(2), ALICE, 0)  # not in it: not held back
    out = sent(e.dispatch(0))[W1]
    assert sum(1 for j, _, _ in out if j in (1, 2)) == 3 and sum(1 for j, _, _ in out if j == 3) == 2
    assert e.dispatch(0) == []
    first = next((j, i, a) for j, i, a in out if j in (1, 2))
    e.report(W1, [rep(*first, by=W1)], 1)
    assert sum(1 for j, _, _ in sent(e.dispatch(1)).get(W1, []) if j in (1, 2)) == 1
    explained = e.explain(JobId(1), 1)
    assert explained is not None and explained.status is not None and explained.status.policy == "throttle"
