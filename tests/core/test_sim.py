"""The simulator over tiny traces whose outcome can be worked out by hand."""

from __future__ import annotations

import pytest

from tiercel.core.problems import Problem
from tiercel.core.sim import SimJob, estimates, simulate
from tiercel.core.sim.swf import SwfJob, parse_line
from tiercel.queues import single


def chain(*names: str):  # type: ignore[no-untyped-def]
    q = single(list(names))
    assert not isinstance(q, Problem)
    return q.chain


# 4 slots. Job 1 takes 2 slots for 100 s; job 2 needs 4 (must wait for job 1);
# job 3 needs 1 slot for 50 s: FCFS makes it wait behind job 2, backfill runs it at once.
TRACE = [
    SimJob(1, "a", 0, 100, 2, 100),
    SimJob(2, "a", 1, 10, 4, 10),
    SimJob(3, "b", 2, 50, 1, 50),
]


def test_fcfs_makes_the_small_job_wait_behind_the_big_one() -> None:
    r = simulate(TRACE, 4, chain("fcfs"))
    # starts: job 1 at 0, job 2 at 100, job 3 at 110
    assert r.waits == [0, 99, 108]
    assert r.makespan == 160
    assert r.utilisation == pytest.approx((200 + 40 + 50) / (4 * 160))


def test_backfill_runs_the_small_job_in_the_hole_without_delaying_the_big_one() -> None:
    r = simulate(TRACE, 4, chain("backfill"))
    assert r.waits == [0, 99, 0]  # job 2 still starts at 100
    assert r.makespan == 110
    # bounded slowdown: job 1: 100/100, job 2: (99+10)/10, job 3: 50/50
    assert r.mean_bounded_slowdown == pytest.approx((1 + 10.9 + 1) / 3)
    assert r.p95_bounded_slowdown == pytest.approx(10.9)


def test_jobs_larger_than_the_machine_are_skipped_and_counted() -> None:
    r = simulate([*TRACE, SimJob(4, "c", 3, 10, 8, 10)], 4, chain("fcfs"))
    assert (r.jobs, r.skipped) == (3, 1)


def test_same_seed_same_result_and_noise_only_inflates() -> None:
    jobs = [SimJob(i, str(i % 3), i * 7.0, 30 + (i * 13) % 90, 1 + i % 3, 0) for i in range(300)]
    a = simulate(estimates(jobs, 1.0, 0.5, seed=7), 4, chain("fairshare", "backfill"))
    b = simulate(estimates(jobs, 1.0, 0.5, seed=7), 4, chain("fairshare", "backfill"))
    assert a == b
    assert all(e.estimate >= e.runtime for e in estimates(jobs, 1.0, 0.5, seed=3))


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("; header", None),
        ("", None),
        ("1 0 10 100 4 -1 -1 4 200 -1 1 7 1 -1 1 -1 -1 -1", SwfJob(1, 0, 100, 4, 200, "7", "1")),
        ("3 5 -1 60 -1 -1 -1 2 -1 -1 1 7 1 -1 1 -1 -1 -1", SwfJob(3, 5, 60, 2, None, "7", "1")),
    ],
)
def test_swf_lines(line: str, expected: SwfJob | None) -> None:
    assert parse_line(line, 1) == expected


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("2 5 -1 -1 4 -1 -1 4 -1 -1 0 7 1 -1 1 -1 -1 -1", "run_time"),  # never ran
        ("4 5 -1 60 -1 -1 -1 -1 -1 -1 1 7 1 -1 1 -1 -1 -1", "processors"),
        ("5 -1 -1 60 2 -1 -1 2 -1 -1 1 7 1 -1 1 -1 -1 -1", "submit_time"),
    ],
)
def test_jobs_that_cannot_be_replayed_are_skipped_with_the_reason(line: str, reason: str) -> None:
    from tiercel.core.sim.swf import SKIP_REASONS, Skipped

    assert parse_line(line, 1) == Skipped(reason) and reason in SKIP_REASONS


@pytest.mark.parametrize(
    ("line", "needle"),
    [("1 2 3", "line 9: '1 2 3' has 3 fields; SWF lines have 18"),
     ("1 0 10 x 4 -1 -1 4 200 -1 1 7 1 -1 1 -1 -1 -1", "line 9: 'x' is not a number")],
)
def test_malformed_swf_lines_name_the_line(line: str, needle: str) -> None:
    problem = parse_line(line, 9)
    assert isinstance(problem, Problem) and needle in problem.message()


def test_non_finite_swf_fields_are_malformed() -> None:
    problem = parse_line("1 0 10 nan 4 -1 -1 4 200 -1 1 7 1 -1 1 -1 -1 -1", 3)
    assert isinstance(problem, Problem) and "line 3: 'nan' is not a finite number" in problem.message()


def test_throttle_in_the_simulator_counts_tasks_not_slots() -> None:
    jobs = [SimJob(1, "a", 0, 100, 4, 100), SimJob(2, "a", 1, 10, 1, 10)]
    from tiercel.queues import parse

    queues = parse({"queues": {"t": {"policies": ["fcfs"], "max_running_per_user": 2}}})
    assert not isinstance(queues, Problem)
    r = simulate(jobs, 8, queues["t"].chain)
    assert r.waits == [0, 0]  # one 4-slot job is one task: the second may start beside it


def test_every_skipped_reason_is_described() -> None:
    from tiercel.core.sim.swf import SKIP_REASONS

    assert set(SKIP_REASONS) == {"run_time", "processors", "submit_time"}
    assert all(SKIP_REASONS.values())


# ---- job numbers -----------------------------------------------------------------------------


def test_simulate_refuses_job_numbers_used_twice() -> None:
    twice = [SimJob(1, "a", 0, 10, 1, 10), SimJob(1, "b", 0, 10, 1, 10)]
    with pytest.raises(ValueError, match=r"\[1\] are used more than once"):
        simulate(twice, 1, chain("fcfs"))


def test_reused_numbers_are_renumbered_above_all_others_and_replayed_as_their_own_jobs() -> None:
    from tiercel.core.sim import renumber_duplicates

    # one slot; two jobs numbered 2 arrive together: one waits for the other
    jobs = [SimJob(2, "a", 0, 10, 1, 10), SimJob(2, "b", 0, 10, 1, 10), SimJob(1, "c", 30, 5, 1, 5),
            SimJob(2, "d", 40, 5, 1, 5)]
    renumbered, given = renumber_duplicates(jobs)
    assert (renumbered[0].id, renumbered[2].id) == (2, 1)  # the first use keeps its number, other numbers theirs
    assert len({j.id for j in renumbered}) == len(jobs)
    assert all(new > max(j.id for j in jobs) for new in given[2]) and len(given[2]) == 2
    # the workload is the same, line for line: only the numbers differ
    assert [(j.user, j.submit, j.runtime, j.procs, j.estimate) for j in renumbered] == \
           [(j.user, j.submit, j.runtime, j.procs, j.estimate) for j in jobs]
    distinct = [SimJob(n, j.user, j.submit, j.runtime, j.procs, j.estimate)
                for n, j in zip((2, 5, 1, 6), jobs, strict=True)]
    assert simulate(renumbered, 1, chain("fcfs")) == simulate(distinct, 1, chain("fcfs"))
    assert renumber_duplicates(distinct) == (distinct, {})


# ---- walltime estimates ----------------------------------------------------------------------


def test_a_requested_time_is_the_estimate_whatever_the_factor_and_noise() -> None:
    jobs = [SimJob(1, "a", 0, 100, 1, 400), SimJob(2, "a", 0, 100, 1, 150)]
    for factor, noise in ((1.0, 0.0), (3.0, 0.0), (2.0, 0.5)):
        assert [j.estimate for j in estimates(jobs, factor, noise, seed=1)] == [400, 150]


def test_a_requested_time_below_the_run_time_is_raised_to_it() -> None:
    # the replay runs the job for its recorded time: backfill must not plan for an earlier end
    assert estimates([SimJob(1, "a", 0, 100, 1, 60)], 2.0, 0.0, seed=1)[0].estimate == 100


def test_without_a_requested_time_the_estimate_is_run_time_times_factor_inflated_by_noise() -> None:
    jobs = [SimJob(i, "a", 0, 10 + i, 1, 0) for i in range(50)]
    assert [j.estimate for j in estimates(jobs, 3.0, 0.0, seed=1)] == [3.0 * j.runtime for j in jobs]
    noisy = estimates(jobs, 3.0, 0.5, seed=1)
    assert all(3.0 * j.runtime <= e.estimate <= 4.5 * j.runtime for j, e in zip(jobs, noisy, strict=True))
    assert len({e.estimate / j.runtime for j, e in zip(jobs, noisy, strict=True)}) > 1


def test_the_factor_changes_backfill_only_for_jobs_without_a_requested_time() -> None:
    # 4 slots: job 1 holds 3 until 10, job 2 needs all 4, job 3 (1 slot, 9 s) may fill the hole
    # only if its estimate ends before job 1's does
    def waits(requested: bool, factor: float) -> list[float]:
        jobs = [SimJob(1, "a", 0, 10, 3, 200 if requested else 0), SimJob(2, "b", 1, 10, 4, 10 if requested else 0),
                SimJob(3, "c", 2, 100 if requested else 9, 1, 150 if requested else 0)]
        return simulate(estimates(jobs, factor, 0.0, seed=0), 4, chain("backfill")).waits

    assert waits(True, 3.0) == waits(True, 1.0)
    assert waits(False, 3.0) != waits(False, 1.0)


# ---- the engine-driven replay against the reference ------------------------------------------


def random_trace(seed: int, n: int = 150) -> list[SimJob]:
    """Bursty arrivals (ties included), few users, sizes up to the whole machine, estimates >= run time."""
    import random

    rng = random.Random(seed)
    jobs, t = [], 0.0
    for i in range(n):
        t += rng.choice((0.0, 0.0, 1.0, rng.uniform(0, 40)))
        runtime = rng.choice((0.0, 5.0, rng.uniform(1, 200)))
        jobs.append(SimJob(i + 1, rng.choice("abcd"), t, runtime, rng.randint(1, 8), 0.0))
    return estimates(jobs, 1.0, 1.0, seed)


@pytest.mark.parametrize("policies", [["fcfs"], ["backfill"], ["fairshare", "backfill"], ["priority", "backfill"],
                                      ["fairshare"]])
def test_the_engine_driven_replay_agrees_with_the_reference_job_for_job(policies: list[str]) -> None:
    from tests.core.sim_reference import replay

    for seed in range(12):
        jobs = random_trace(seed)
        assert simulate(jobs, 8, chain(*policies)) == replay(jobs, 8, chain(*policies)), seed


def test_limits_in_the_engine_driven_replay_agree_with_the_reference() -> None:
    from tests.core.sim_reference import replay
    from tiercel.queues import parse

    queues = parse({"queues": {"t": {"policies": ["fairshare", "backfill"], "max_running_per_user": 2,
                                     "max_per_cycle": 3}}})
    assert not isinstance(queues, Problem)
    for seed in range(8):
        jobs = random_trace(100 + seed)
        assert simulate(jobs, 8, queues["t"].chain) == replay(jobs, 8, queues["t"].chain), seed


def test_every_report_carries_the_seal_the_engine_handed_out(monkeypatch: pytest.MonkeyPatch) -> None:
    # the engine believes a report without its seal only while it remembers the attempt; the
    # driver hands back what it was given, so nothing is refused and every job ends
    from tiercel.core.engine import Engine, Refused, SendTasks

    handed: dict[tuple[int, int, int], bytes] = {}
    reported: dict[tuple[int, int, int], bytes] = {}
    dispatch, report = Engine.dispatch, Engine.report

    def spy_dispatch(self: Engine, now: float) -> list[object]:
        effects = dispatch(self, now)
        handed.update({(t.job, t.index, t.attempt): t.seal for e in effects if isinstance(e, SendTasks)
                       for t in e.tasks})
        return effects  # type: ignore[return-value]

    def spy_report(self: Engine, worker: str, reports: list[object], now: float) -> list[object]:
        reports = list(reports)
        reported.update({(r.job, r.index, r.attempt): r.seal for r in reports})  # type: ignore[attr-defined]
        effects = report(self, worker, reports, now)  # type: ignore[arg-type]
        assert not any(isinstance(e, Refused) for e in effects)
        return effects  # type: ignore[return-value]

    monkeypatch.setattr(Engine, "dispatch", spy_dispatch)
    monkeypatch.setattr(Engine, "report", spy_report)
    assert simulate(TRACE, 4, chain("backfill")).jobs == 3
    assert reported == handed and len(handed) == 3 and all(len(seal) == 8 for seal in handed.values())


def test_a_job_never_started_is_an_error_not_a_key_error() -> None:
    from tiercel.core.policy import OK, Cycle, Group, Snapshot, Status, wait

    class Never:
        name = "never"

        def permit(self, group: Group, n: int, cycle: Cycle, snap: Snapshot) -> tuple[int, Status]:
            return (n, OK) if group.job != 2 else (0, wait("never", "job 2 never runs"))

    from tiercel.core.pipeline import Chain

    with pytest.raises(ValueError, match=r"1 job\(s\) never started \(first: job 2\)"):
        simulate(TRACE, 4, Chain.of("q", [Never()]))
