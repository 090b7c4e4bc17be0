"""Choosing a site for a job: what fits, what is healthy, what has room; and why the others were passed over."""

from __future__ import annotations

import pytest

from tiercel.core.engine import Engine, SendTasks
from tiercel.core.model import JobId, JobSpec, UserName, WorkerId, WorkerInfo
from tiercel.core.policy import Code, Group
from tiercel.core.ranges import IndexRanges
from tiercel.core.sites import Limits, Mode, SiteInfo, SiteLoad, admissible, choose, fits

POOL = SiteInfo("pool", "pool", Mode.POOL)
HPC = SiteInfo("hpc", "slurm", Mode.NATIVE, Limits(max_cpus=16, max_memory_mb=64_000, max_walltime=3600,
                                                      tags=frozenset({"gpu"})))
SGE = SiteInfo("sge", "sge", Mode.PILOT, Limits(max_cpus=4), headroom=8)


def group(**kw: object) -> Group:
    return Group(JobId(1), UserName("ann"), 10, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(("g", "site", "code", "words"), [
    (group(), HPC, Code.OK, ""),
    (group(cpus=32), HPC, Code.NEVER, "allows 16 core(s) per task; a task needs 32"),
    (group(memory_mb=100_000), HPC, Code.NEVER, "allows 64000 MB"),
    (group(walltime=7200.0), HPC, Code.NEVER, "walltime of 3600s"),
    (group(requires=frozenset({"bio"})), HPC, Code.NEVER, "lacks tag(s) bio"),
    (group(requires=frozenset({"gpu"})), HPC, Code.OK, ""),
    (group(requires=frozenset({"bio"})), POOL, Code.OK, ""),  # pool workers bring their own tags
])
def test_fits(g: Group, site: SiteInfo, code: Code, words: str) -> None:
    verdict = fits(g, site)
    assert verdict.code is code
    assert words in verdict.reason


def test_too_big_for_every_site_is_refused_with_each_reason() -> None:
    problem = admissible(group(cpus=64), [HPC, SGE])
    assert problem is not None
    assert "fits no site" in problem.message()
    assert "hpc allows 16" in problem.message() and "sge allows 4" in problem.message()
    assert admissible(group(cpus=2), [HPC, SGE]) is None


def test_the_refusal_says_what_the_job_asks_for_not_a_job_number() -> None:
    asks = {"cpus": 64, "memory_mb": 2048, "walltime": 90.0, "requires": frozenset({"bio", "gpu"})}
    problems = [admissible(Group(JobId(n), UserName("ann"), 10, **asks), [HPC, SGE])  # type: ignore[arg-type]
                for n in (0, 7)]
    messages = [p.message() for p in problems if p is not None]
    assert len(messages) == 2 and messages[0] == messages[1]  # the job has no number yet at submission
    head = messages[0].split(" fits no site:")[0]
    assert head.startswith("job: ")
    for words in ("64 core(s)", "2048 MB", "90s", "bio, gpu"):
        assert words in head, messages[0]
    bare = admissible(group(cpus=64), [HPC, SGE])
    assert bare is not None and "MB" not in bare.message().split(" fits no site:")[0]


def test_pinned_site_must_exist_and_fit() -> None:
    unknown = admissible(group(site="nowhere"), [POOL, HPC])
    assert unknown is not None and "is not a site; sites: pool, hpc" in unknown.message()
    unfit = admissible(group(site="sge", cpus=8), [POOL, HPC, SGE])
    assert unfit is not None and "cannot run this job" in unfit.message()


def test_most_room_wins_and_others_are_explained() -> None:
    loads = {"pool": SiteLoad(total=2, free=0), "hpc": SiteLoad(total=100, free=100), "sge": SiteLoad()}
    c = choose(group(), [POOL, HPC, SGE], loads)
    assert c.site == "hpc"
    reasons = dict(c.passed)
    assert "less room" in reasons["pool"].reason and "less room" in reasons["sge"].reason


def test_queued_work_counts_against_room() -> None:
    loads = {"pool": SiteLoad(total=8, free=8), "hpc": SiteLoad(total=100, free=100, queued=150)}
    assert choose(group(), [POOL, HPC], loads).site == "pool"


def test_degraded_site_is_passed_over_with_its_error() -> None:
    bad = SiteInfo("hpc", "slurm", Mode.NATIVE, problem="sbatch timed out after 30s")
    c = choose(group(), [POOL, bad], {"pool": SiteLoad(total=1, free=1), "hpc": SiteLoad(100, 100)})
    assert c.site == "pool"
    assert "degraded: sbatch timed out" in dict(c.passed)["hpc"].reason


def test_pinned_job_waits_on_its_site_even_when_full() -> None:
    c = choose(group(site="hpc"), [POOL, HPC], {"pool": SiteLoad(8, 8), "hpc": SiteLoad(10, 0, queued=500)})
    assert c.site == "hpc"


def test_without_any_slots_the_job_waits_on_the_first_site_that_fits() -> None:
    c = choose(group(cpus=8), [POOL, HPC], {})
    assert c.site == "pool"
    c = choose(group(cpus=8), [HPC, POOL], {})
    assert c.site == "hpc"


def test_nothing_healthy_means_no_choice_and_says_why() -> None:
    bad = SiteInfo("hpc", "slurm", Mode.NATIVE, problem="squeue: command not found")
    c = choose(group(site="hpc"), [POOL, bad], {})
    assert c.site is None
    assert "squeue: command not found" in c.reason()


def spec(n: int, **kw: object) -> JobSpec:
    return JobSpec(("true",), IndexRanges(((0, n),)), **kw)  # type: ignore[arg-type]


def test_engine_sends_a_job_only_to_places_of_its_site() -> None:
    engine = Engine()
    engine.set_sites([POOL, SiteInfo("hpc", "slurm", Mode.NATIVE)])
    engine.connect(WorkerId("w1"), WorkerInfo("w1", "h", 4), 0.0, credit=4)
    engine.connect(WorkerId("site:hpc"), WorkerInfo("hpc", "slurm", 100, site="hpc"), 0.0, credit=100)
    engine.add_job(JobId(1), spec(50), UserName("ann"), 0.0)
    engine.add_job(JobId(2), spec(3, site="pool"), UserName("ann"), 0.0)
    sends = {e.worker: e for e in engine.dispatch(1.0) if isinstance(e, SendTasks)}
    assert {r.job for r in sends[WorkerId("site:hpc")].tasks} == {1}
    assert len(sends[WorkerId("site:hpc")].tasks) == 50
    assert {r.job for r in sends[WorkerId("w1")].tasks} == {2}
    explained = engine.explain(JobId(2), 2.0)
    assert explained is not None


def test_a_site_that_degrades_sends_its_waiting_work_elsewhere() -> None:
    engine = Engine()
    hpc = SiteInfo("hpc", "slurm", Mode.NATIVE)
    engine.set_sites([POOL, hpc])
    engine.connect(WorkerId("site:hpc"), WorkerInfo("hpc", "slurm", 10, site="hpc"), 0.0, credit=10)
    engine.add_job(JobId(1), spec(30), UserName("ann"), 0.0)
    engine.dispatch(1.0)
    assert engine.jobs[JobId(1)].site == "hpc"
    engine.disconnect(WorkerId("site:hpc"))
    engine.set_sites([POOL, SiteInfo("hpc", "slurm", Mode.NATIVE, problem="sbatch failed")])
    engine.connect(WorkerId("w"), WorkerInfo("w", "h", 4), 2.0, credit=4)
    sends = [e for e in engine.dispatch(3.0) if isinstance(e, SendTasks)]
    assert [e.worker for e in sends] == ["w"]
    assert engine.jobs[JobId(1)].site == "pool"
    why = engine.explain(JobId(1), 3.0)
    assert why is not None and "degraded: sbatch failed" in why.site_reason


def test_work_pinned_to_a_degraded_site_waits_for_it_and_never_goes_elsewhere() -> None:
    engine = Engine()
    engine.set_sites([POOL, SiteInfo("hpc", "slurm", Mode.NATIVE, problem="sbatch failed")])
    engine.connect(WorkerId("w"), WorkerInfo("w", "h", 4), 0.0, credit=4)
    engine.add_job(JobId(1), spec(2, site="hpc"), UserName("ann"), 0.0)
    for now in (1.0, 2.0, 3.0):  # the choice is made again each cycle: the pin must hold every time
        assert [e for e in engine.dispatch(now) if isinstance(e, SendTasks)] == []
    why = engine.explain(JobId(1), 4.0)
    assert why is not None and "degraded: sbatch failed" in why.site_reason


def test_a_pilot_near_its_end_gets_no_task_that_would_outlive_it() -> None:
    engine = Engine()
    engine.set_sites([POOL, SiteInfo("hpc", "slurm", Mode.PILOT)])
    engine.connect(WorkerId("p"), WorkerInfo("p", "h", 2, site="hpc", ends_at=100.0), 0.0, credit=2)
    engine.add_job(JobId(1), spec(2, walltime=60.0, site="hpc"), UserName("ann"), 0.0)
    assert [e for e in engine.dispatch(50.0) if isinstance(e, SendTasks)] == []
    why = engine.explain(JobId(1), 50.0)
    assert why is not None and "ends in 50s" in why.workers[0][1].reason
    assert [e for e in engine.dispatch(30.0) if isinstance(e, SendTasks)] != []


def test_a_native_sites_virtual_worker_names_its_site() -> None:
    from tiercel.core.sites import site_of_worker, site_worker

    assert site_of_worker(site_worker("hpc")) == "hpc"
    assert site_of_worker("1a5de98b91da454489f86ba8987974ce") is None  # a real worker's id
