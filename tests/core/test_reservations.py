"""Advance reservations: admission, and reserved slots honoured by placement."""

from __future__ import annotations

import pytest

from tiercel.core.engine import Engine, SendTasks
from tiercel.core.model import JobId, JobSpec, Outcome, Report, UserName, WorkerId, WorkerInfo
from tiercel.core.problems import Problem
from tiercel.core.ranges import IndexRanges
from tiercel.core.reservations import Reservation, admit, when

ALICE, BOB = UserName("alice"), UserName("bob")


def r(name: str = "r", slots: int = 2, start: float = 100, end: float = 200, users: tuple[str, ...] = ("bob",)
      ) -> Reservation:
    return Reservation(name, "pool", slots, start, end, frozenset(users))


@pytest.mark.parametrize(
    ("new", "existing", "needle"),
    [
        (r(start=200, end=100), [], f"end: '{when(100)}' must be after the start ({when(200)})"),
        (r(start=10, end=40), [], f"end: '{when(40)}' is in the past"),
        (r(slots=9), [], "slots: 9 is more than site pool has (4)"),
        (r(users=()), [], "users: must name at least one user"),
        (r(name="a"), [r(name="a", start=500, end=600)], "name: 'a' is taken"),
        (r(name="b", slots=3, start=150, end=250), [r(name="a", slots=2)],
         f"would oversubscribe site pool: with a 5 of its 4 slots would be held at {when(150)}"),
    ],
)
def test_admission_refuses_with_the_reason(new: Reservation, existing: list[Reservation], needle: str) -> None:
    problem = admit(new, existing, capacity=4, now=50)
    assert isinstance(problem, Problem) and needle in problem.message()


def test_back_to_back_and_disjoint_windows_fit() -> None:
    existing = [r(name="a", slots=4, start=100, end=200)]
    assert admit(r(name="b", slots=4, start=200, end=300), existing, 4, 50) is None
    assert admit(r(name="c", slots=4, start=0, end=100), existing, 4, 50) is None


def sent(effects: list[object]) -> dict[int, int]:
    out: dict[int, int] = {}
    for e in effects:
        if isinstance(e, SendTasks):
            for t in e.tasks:
                out[t.job] = out.get(t.job, 0) + 1
    return out


def engine_with(now: float) -> Engine:
    e = Engine()
    assert e.reserve(r(), capacity=4, now=0) is None
    e.connect(WorkerId("w"), WorkerInfo("w", "h", 4), now, credit=4)
    return e


def job(e: Engine, jid: int, owner: UserName, n: int = 4, **kw: object) -> None:
    spec = JobSpec(command=("true",), indexes=IndexRanges.of_size(n), **kw)  # type: ignore[arg-type]
    e.add_job(JobId(jid), spec, owner, 0)


def test_other_work_leaves_reserved_slots_alone_unless_it_ends_before_the_window() -> None:
    e = engine_with(50)
    job(e, 1, ALICE)  # no walltime: it might still run at t=100
    assert sent(e.dispatch(50)) == {1: 2}
    e2 = engine_with(50)
    job(e2, 1, ALICE, walltime=30)  # ends by t=80: may use the reserved slots now
    assert sent(e2.dispatch(50)) == {1: 4}


def test_reservation_work_runs_inside_its_window_for_allowed_users_only() -> None:
    e = engine_with(50)
    job(e, 2, BOB, reservation="r", walltime=10)
    assert sent(e.dispatch(50)) == {}  # the window opens at 100
    explained = e.explain(JobId(2), 50)
    assert explained is not None and explained.status is not None
    assert explained.status.reason == f"reservation r opens at {when(100)}"
    assert sent(e.dispatch(120)) == {2: 2}  # its two slots, no more
    job(e, 3, ALICE, reservation="r", walltime=10)
    e.add_credit(WorkerId("w"), 2)
    assert 3 not in sent(e.dispatch(130))
    why = e.explain(JobId(3), 130)
    assert why is not None and why.status is not None and why.status.reason == "alice may not use reservation r"


def test_reserved_slots_count_real_slots_not_a_workers_queue() -> None:
    """A worker asks for more tasks than it has slots (prefetch): reserved slots must still stay free."""
    e = Engine()
    assert e.reserve(r(start=0, end=200), capacity=4, now=0) is None
    e.connect(WorkerId("w"), WorkerInfo("w", "h", 4), 50, credit=8)  # 4 slots, 4 more queued ahead
    job(e, 1, ALICE, n=20)
    assert sent(e.dispatch(50)) == {1: 2}  # 4 slots - 2 reserved: two tasks, however much it asks for


def test_reserved_slots_in_use_by_their_own_work_do_not_open_the_queue_to_others() -> None:
    """The reservation's own tasks fill its slots: other work still gets only the real free slots,
    not the worker's prefetch queue, whose tasks would start in the reserved slots once those end."""
    e = Engine()
    w = WorkerId("w")
    assert e.reserve(r(start=10, end=1000), capacity=4, now=0) is None
    e.connect(w, WorkerInfo("w", "h", 4), 0, credit=8)  # 4 slots and 4 queued ahead
    job(e, 1, ALICE, n=8)
    assert sent(e.dispatch(0)) == {1: 2}
    job(e, 2, BOB, reservation="r", walltime=60)
    assert sent(e.dispatch(10)) == {2: 2}  # its two reserved slots, now all in use
    e.report(w, [Report(JobId(1), i, 1, Outcome.DONE) for i in (0, 1)], 11)
    e.add_credit(w, 2)
    assert sent(e.dispatch(11)) == {1: 2}  # alice's two freed slots again, not six
    running = {j: len(x.running) for j, x in e.jobs.items()}
    assert running == {1: 2, 2: 2}


def test_only_the_peak_of_overlapping_windows_is_kept_back() -> None:
    e = Engine()
    assert e.reserve(r(name="a", slots=8, start=100, end=200), capacity=16, now=0) is None
    assert e.reserve(r(name="b", slots=8, start=300, end=400), capacity=16, now=0) is None
    e.connect(WorkerId("w"), WorkerInfo("w", "h", 16), 50, credit=16)
    job(e, 1, ALICE, n=20)  # no walltime: it may run through both windows, but never both at once
    assert sent(e.dispatch(50)) == {1: 8}


def test_reservation_work_must_end_with_its_window() -> None:
    e = engine_with(150)
    job(e, 2, BOB, reservation="r", walltime=100)  # 150 + 100 > 200
    assert sent(e.dispatch(150)) == {}
    why = e.explain(JobId(2), 150)
    assert why is not None and why.status is not None
    assert why.status.reason == "with a walltime of 100s it would run past the end of reservation r"


@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "1e400"])
def test_times_must_be_finite(text: str) -> None:
    from tiercel.jobspec.values import parse_when

    assert isinstance(parse_when(text, 0.0, "start"), Problem)
    assert isinstance(admit(r(start=float(text), end=float("inf")), [], 4, 0.0), Problem)


def test_a_reservation_holds_slots_of_its_own_site_only() -> None:
    """Reserved slots of a batch site keep back work bound there, not work on the pool."""
    from tiercel.core.sites import Mode, SiteInfo

    e = Engine()
    e.set_sites([SiteInfo("pool", "pool", Mode.POOL), SiteInfo("hpc", "slurm", Mode.PILOT)])
    hpc = Reservation("r", "hpc", 4, 0, 200, frozenset({"bob"}))  # every slot of hpc
    assert e.reserve(hpc, capacity=4, now=0) is None
    e.connect(WorkerId("p"), WorkerInfo("p", "h", 4), 50, credit=4)  # a pool worker
    e.connect(WorkerId("s"), WorkerInfo("s", "n", 4, site="hpc"), 50, credit=4)  # a pilot of hpc
    job(e, 2, ALICE, site="hpc")
    job(e, 1, ALICE, site="pool")
    assert sent(e.dispatch(50)) == {1: 4}  # the pool is not held back by hpc's reservation, hpc's work is
    why = e.explain(JobId(2), 50)
    assert why is not None and why.status is not None and why.status.reason == "4 free slot(s) are reserved (r)"
    job(e, 3, BOB, n=2, site="hpc", reservation="r", walltime=10)
    assert sent(e.dispatch(60)) == {3: 2}
    assert {t.worker for t in e.jobs[JobId(3)].running.values()} == {WorkerId("s")}


def test_a_pilot_inside_a_mirrored_reservation_runs_only_that_work() -> None:
    from tiercel.core.sites import Mode, SiteInfo

    e = Engine()
    e.set_sites([SiteInfo("pool", "pool", Mode.POOL), SiteInfo("hpc", "slurm", Mode.PILOT)])
    assert e.reserve(Reservation("r", "hpc", 2, 0, 200, frozenset({"bob"}), mirror="tiercel-r"), 4, 0) is None
    e.connect(WorkerId("in"), WorkerInfo("in", "n", 2, site="hpc", reservation="r"), 50, credit=2)
    job(e, 1, ALICE, n=2, site="hpc")
    assert sent(e.dispatch(50)) == {}
    e.connect(WorkerId("out"), WorkerInfo("out", "n", 4, site="hpc"), 50, credit=0)  # another pilot, busy
    why = e.explain(JobId(1), 50)
    assert why is not None and ("in", "in runs only the work of reservation r") in [
        (w, s.reason) for w, s in why.workers]
    e.add_credit(WorkerId("out"), 4)  # ... and now free: it takes alice's work, not the reservation's
    job(e, 2, BOB, n=4, site="hpc", reservation="r", walltime=10)
    assert sent(e.dispatch(60)) == {1: 2, 2: 2}
    assert {t.worker for t in e.jobs[JobId(2)].running.values()} == {WorkerId("in")}
    why = e.explain(JobId(2), 60)
    assert why is not None and ("out", "reservation r runs on the pilots started inside its mirror, not on out") in [
        (w, s.reason) for w, s in why.workers]
    assert e.waiting_on("hpc") == 2 and e.waiting_on("hpc", besides=frozenset({"r"})) == 0
    job(e, 3, ALICE, n=3, site="hpc")
    e.bind()
    assert e.waiting_on("hpc", "r") == 2 and e.waiting_on("hpc", besides=frozenset({"r"})) == 3
