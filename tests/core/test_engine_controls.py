"""The engine's job controls: a cap on running tasks, hold and release, fail fast, running settled tasks again."""

import dataclasses

from tests.core.test_engine import ALICE, W1, ended, rep, sent, spec, worker
from tiercel.core.engine import Engine, KillTasks
from tiercel.core.model import JobId, JobState, Outcome


def test_max_running_caps_the_tasks_handed_out_and_frees_a_place_as_each_ends() -> None:
    e = Engine()
    e.add_job(JobId(1), spec(6, max_running=2), ALICE, 0)
    e.add_job(JobId(2), spec(2), ALICE, 0)
    e.connect(W1, worker(slots=8), 0, credit=8)
    assert sent(e.dispatch(0)) == {W1: [(1, 0, 1), (1, 1, 1), (2, 0, 1), (2, 1, 1)]}  # the cap lets others by
    assert e.dispatch(0) == []
    e.add_credit(W1, 1)
    e.report(W1, [rep(1, 0, by=W1)], 1)
    assert sent(e.dispatch(1)) == {W1: [(1, 2, 1)]}


def test_a_held_job_starts_nothing_until_released_and_its_running_tasks_go_on() -> None:
    e = Engine()
    e.add_job(JobId(1), spec(4), ALICE, 0)
    e.connect(W1, worker(slots=2), 0, credit=2)
    assert sent(e.dispatch(0)) == {W1: [(1, 0, 1), (1, 1, 1)]}
    job = e.jobs[JobId(1)]
    e.set_spec(JobId(1), dataclasses.replace(job.spec, held=True))
    e.add_credit(W1, 1)
    eff = e.report(W1, [rep(1, 0, by=W1)], 1)  # a running task still settles
    assert not ended(eff) and e.counts(JobId(1)).done == 1  # type: ignore[union-attr]
    assert e.dispatch(1) == []
    assert e.explain(JobId(1), 1).status.policy == "hold"  # type: ignore[union-attr]
    e.set_spec(JobId(1), dataclasses.replace(job.spec, held=False))
    assert sent(e.dispatch(2)) == {W1: [(1, 2, 1)]}


def test_max_failures_cancels_the_rest_kills_what_runs_and_says_why() -> None:
    e = Engine()
    e.add_job(JobId(1), spec(10, max_failures=2), ALICE, 0)
    e.connect(W1, worker(slots=3), 0, credit=3)
    e.dispatch(0)
    eff = e.report(W1, [rep(1, 0, 1, Outcome.FAILED, by=W1)], 1)
    assert not ended(eff)
    eff = e.report(W1, [rep(1, 1, 1, Outcome.FAILED, by=W1)], 2)
    [end] = ended(eff)
    assert end.state is JobState.CANCELLED and (end.counts.failed, end.counts.cancelled) == (2, 8)
    assert end.reason is not None and end.reason.startswith("max_failures: 2 tasks failed")
    assert [(t.index, t.attempt) for e_ in eff if isinstance(e_, KillTasks) for t in e_.tasks] == [(2, 1)]


def test_failures_within_retries_do_not_count_towards_max_failures() -> None:
    e = Engine()
    e.add_job(JobId(1), spec(3, max_failures=1, retries=1), ALICE, 0)
    e.connect(W1, worker(slots=3), 0, credit=3)
    e.dispatch(0)
    eff = e.report(W1, [rep(1, 0, 1, Outcome.FAILED, by=W1)], 1)
    assert not ended(eff) and e.counts(JobId(1)).failed == 0  # type: ignore[union-attr]


def test_reopened_tasks_run_again_as_new_attempts_with_their_retries_afresh() -> None:
    e = Engine()
    e.add_job(JobId(1), spec(3, retries=1), ALICE, 0)
    e.connect(W1, worker(slots=3), 0, credit=3)
    e.dispatch(0)
    e.report(W1, [rep(1, 0, 1, Outcome.FAILED, by=W1), rep(1, 1, by=W1)], 1)
    e.add_credit(W1, 2)
    e.dispatch(1)
    e.report(W1, [rep(1, 0, 2, Outcome.FAILED, by=W1)], 2)  # task 0 failed for good; task 2 still runs
    assert e.counts(JobId(1)).failed == 1  # type: ignore[union-attr]
    e.reopen(JobId(1), {0: (3, "failed")})
    counts = e.counts(JobId(1))
    assert counts is not None and (counts.failed, counts.queued) == (0, 1)
    e.add_credit(W1, 1)
    assert sent(e.dispatch(3)) == {W1: [(1, 0, 3)]}
    assert e.jobs[JobId(1)].running[0].failures == 0
