"""Table tests of the policy chain over small snapshots: the classic cases."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pytest

from tiercel.core.model import JobId, UserName
from tiercel.core.pipeline import Chain, schedule
from tiercel.core.policies import BUILTIN
from tiercel.core.policies.fairshare import DecayedUsage, decay
from tiercel.core.policy import Code, Group, Place, Snapshot
from tiercel.core.problems import Problem

ALICE, BOB = UserName("alice"), UserName("bob")


def chain(*names: str, **args: Mapping[str, Any]) -> Chain:
    policies = []
    for n in names:
        p = BUILTIN[n](args.get(n, {}))
        assert not isinstance(p, Problem), p
        policies.append(p)
    return Chain.of("q", policies)


def g(job: int, pending: int = 1, cpus: int = 1, owner: UserName = ALICE, submitted: float = 0.0,
      walltime: float | None = None, **kw: Any) -> Group:
    return Group(JobId(job), owner, pending, cpus, submitted, walltime=walltime, **kw)


def pool(free: int, total: int = 4, releases: tuple[tuple[float, int], ...] = (), **kw: Any) -> Place:
    return Place("pool", free, total, releases=releases, **kw)


def started(snap: Snapshot, c: Chain) -> dict[int, int]:
    out: dict[int, int] = {}
    for p in schedule(snap, c).placements:
        out[p.job] = out.get(p.job, 0) + p.count
    return out


def test_fcfs_blocks_later_work_behind_a_job_that_does_not_fit() -> None:
    snap = Snapshot(0, (g(1, cpus=3), g(2, cpus=1)), (pool(free=2),))
    plan = schedule(snap, chain("fcfs"))
    assert plan.placements == []
    assert plan.waiting[JobId(1)].code is Code.WAIT and plan.waiting[JobId(1)].policy == "capacity"
    why = plan.why(JobId(2))
    assert why is not None and why.policy == "capacity"


def test_fcfs_fills_in_order_when_everything_fits() -> None:
    snap = Snapshot(0, (g(2, pending=3, submitted=5), g(1, pending=3, submitted=1)), (pool(free=4),))
    assert started(snap, chain("fcfs")) == {1: 3, 2: 1}


def test_easy_backfill_fills_the_hole_without_delaying_the_head_job() -> None:
    # 4 slots, 2 free; 2 busy until t=100. The head job needs 3: it can start at t=100 with 1 spare.
    running = ((100.0, 2),)
    groups = (
        g(1, cpus=3, walltime=1000),          # head: blocked until t=100
        g(2, cpus=1, walltime=50, submitted=1),   # ends by t=100: backfills
        g(3, cpus=2, walltime=500, submitted=2),  # would delay the head: waits
        g(4, cpus=1, walltime=500, submitted=3),  # uses the slot the head will not need
    )
    snap = Snapshot(0, groups, (pool(free=2, releases=running),))
    assert started(snap, chain("fcfs", "backfill")) == {2: 1, 4: 1}
    assert started(snap, chain("fcfs")) == {}  # without backfill the hole stays empty
    hold = schedule(snap, chain("fcfs", "backfill")).holds[0]
    assert (hold.job, hold.until, hold.policy) == (1, 100.0, "backfill")


def test_backfill_without_walltimes_cannot_promise_and_holds() -> None:
    snap = Snapshot(0, (g(1, cpus=3), g(2, cpus=1)), (pool(free=2, releases=((float("inf"), 2),)),))
    assert started(snap, chain("fcfs", "backfill")) == {}


def test_fair_share_puts_the_light_user_first_after_a_heavy_one() -> None:
    groups = (g(1, pending=4, owner=ALICE, submitted=0), g(2, pending=4, owner=BOB, submitted=10))
    usage = {ALICE: 3600.0 * 8}
    snap = Snapshot(20, groups, (pool(free=2),), usage=usage)
    assert started(snap, chain("fairshare", "fcfs")) == {2: 2}
    assert started(snap, chain("fcfs")) == {1: 2}
    # shares scale usage: with ten times bob's share alice is "lighter" again
    snap = Snapshot(20, groups, (pool(free=2),), usage={ALICE: 100.0, BOB: 20.0}, shares={ALICE: 10.0})
    assert started(snap, chain("fairshare")) == {1: 2}


def test_usage_decays_with_its_half_life_and_grows_with_what_runs() -> None:
    assert decay({ALICE: 100.0}, 3600, 3600) == {ALICE: 50.0}
    usage = DecayedUsage(half_life=3600)
    usage.add_running(BOB, 2, now=0)
    # two slots for one half-life: 2 × 3600 s, less what decayed meanwhile: 2 × 3600 / (2 ln 2)
    assert usage.at(3600)[BOB] == pytest.approx(2 * 3600 / (2 * math.log(2)))
    usage.add_running(BOB, -2, now=3600)
    assert usage.at(7200)[BOB] == pytest.approx(3600 / (2 * math.log(2)))  # then halves again
    assert ALICE not in usage and usage.get(ALICE, 0.0) == 0.0


def test_priority_with_ageing_keeps_new_high_priority_work_from_starving_an_old_job() -> None:
    c = chain("priority")
    old_low = g(1, priority=0, submitted=0)
    hour = 3600.0
    # two hours in, a fresh priority-5 job goes first ...
    assert started(Snapshot(2 * hour, (old_low, g(2, priority=5, submitted=2 * hour)), (pool(free=1),)), c) == {2: 1}
    # ... but after ten hours of waiting the old job beats a fresh priority-5 one
    assert started(Snapshot(10 * hour, (old_low, g(3, priority=5, submitted=10 * hour)), (pool(free=1),)), c) == {1: 1}


@pytest.mark.parametrize(
    ("args", "running", "expected", "reason"),
    [
        ({"per_cycle": 3}, {}, {1: 2, 2: 1}, "per scheduling cycle"),
        ({"per_user": 3}, {ALICE: 2}, {1: 1}, "alice already runs the most tasks allowed (3)"),
        ({"per_queue": 4}, {}, {1: 2, 2: 2}, "queue default already runs"),
    ],
)
def test_throttle(args: dict[str, int], running: dict[UserName, int], expected: dict[int, int], reason: str) -> None:
    groups = (g(1, pending=2), g(2, pending=5, submitted=1))
    snap = Snapshot(0, groups, (pool(free=10, total=10),), running_by_user=running)
    plan = schedule(snap, chain("throttle", throttle=args))
    got: dict[int, int] = {}
    for p in plan.placements:
        got[p.job] = got.get(p.job, 0) + p.count
    assert got == expected
    held = [s for s in plan.waiting.values() if s.policy == "throttle"]
    assert held and reason in held[0].reason


def test_requirements_say_which_place_lacks_what() -> None:
    places = (Place("cpu-node", 4, 4), Place("gpu-node", 0, 4, tags=frozenset({"gpu"})))
    groups = (g(1, requires=frozenset({"gpu"})), g(2, requires=frozenset({"fpga"})), g(3, cpus=8))
    plan = schedule(Snapshot(0, groups, places), chain("requirements"))
    assert plan.waiting[JobId(1)].code is Code.WAIT  # gpu-node fits but is full
    assert plan.waiting[JobId(2)].code is Code.NEVER
    assert plan.waiting[JobId(2)].reason == "cpu-node lacks tag(s) fpga; gpu-node lacks tag(s) fpga"
    assert plan.waiting[JobId(2)].policy == "requirements"
    assert "a task needs 8" in plan.waiting[JobId(3)].reason


def test_a_blocked_gpu_job_does_not_hold_cpu_only_places() -> None:
    places = (Place("cpu-node", 4, 4), Place("gpu-node", 0, 4, tags=frozenset({"gpu"})))
    groups = (g(1, requires=frozenset({"gpu"})), g(2, pending=3, submitted=1))
    assert started(Snapshot(0, groups, places), chain("requirements", "fcfs")) == {2: 3}


@pytest.mark.parametrize(
    ("name", "args", "needle"),
    [
        ("throttle", {"per_cycle": -1}, "throttle.per_cycle: -1 must be a whole number of at least 1"),
        ("throttle", {"per_cycel": 3}, "throttle.per_cycel: 3 is not an argument of throttle"),
        ("fairshare", {"half_life": "soon"}, "fairshare.half_life: 'soon' must be a number"),
        ("priority", {"per_hour": -2}, "priority.per_hour: -2 must be a number of at least 0"),
        ("fcfs", {"x": 1}, "fcfs.x: 1 is not an argument of fcfs (allowed: none)"),
    ],
)
def test_bad_policy_arguments(name: str, args: dict[str, Any], needle: str) -> None:
    problem = BUILTIN[name](args)
    assert isinstance(problem, Problem) and needle in problem.message()


def test_shares_from_the_queue_configuration() -> None:
    heavy_share = BUILTIN["fairshare"]({"shares": {"alice": 10}})
    assert not isinstance(heavy_share, Problem)
    groups = (g(1, owner=ALICE, submitted=0), g(2, owner=BOB, submitted=1))
    snap = Snapshot(20, groups, (pool(free=1),), usage={ALICE: 100.0, BOB: 20.0})
    assert started(snap, Chain.of("q", [heavy_share])) == {1: 1}  # 100/10 < 20/1
    assert started(snap, chain("fairshare")) == {2: 1}
    bad = BUILTIN["fairshare"]({"shares": {"bob": 0}})
    assert isinstance(bad, Problem) and bad.message() == "fairshare.shares.bob: 0 must be a number above 0"


def test_easy_backfill_holds_the_one_place_where_the_head_starts_first() -> None:
    # A: 2 free, 2 busy until 100. C: full, 2 until 100 and 2 until 10,000. The 4-slot head job
    # can start on A at 100; a 2-slot job running 5,000 s must not take A's free slots.
    places = (Place("A", 2, 4, releases=((100.0, 2),)), Place("C", 0, 4, releases=((100.0, 2), (10_000.0, 2))))
    groups = (g(1, cpus=4, walltime=50), g(2, cpus=2, walltime=5000, submitted=1),
              g(3, cpus=2, walltime=60, submitted=2))
    plan = schedule(Snapshot(0, groups, places), chain("backfill"))
    assert [(p.job, p.place) for p in plan.placements] == [(3, "A")]  # ends by 100: fits the hole
    assert plan.holds[0].places == {"A"} and plan.holds[0].until == 100.0


def test_backfill_in_the_live_engine_uses_running_tasks_walltimes() -> None:
    from tiercel.core.engine import Engine
    from tiercel.core.model import JobSpec, WorkerId, WorkerInfo
    from tiercel.core.ranges import IndexRanges
    from tiercel.queues import parse

    queues = parse({"queues": {"q": {"policies": ["backfill"]}}})
    assert not isinstance(queues, Problem)
    e = Engine(queues={"q": queues["q"].chain})
    e.connect(WorkerId("w"), WorkerInfo("w", "h", 4), 0, credit=4)

    def add(jid: int, n: int, cpus: int, walltime: float) -> None:
        spec = JobSpec(command=("x",), indexes=IndexRanges.of_size(n), cpus=cpus, walltime=walltime, queue="q")
        e.add_job(JobId(jid), spec, ALICE, 0)

    add(1, 2, 1, 60)
    e.dispatch(0)  # two tasks running until t=60
    add(2, 1, 4, 100)  # the wide job waits for t=60
    add(3, 1, 1, 10)  # ends by t=60: backfills now
    add(4, 1, 1, 600)  # would delay the wide job: waits
    sent = [(t.job, t.index) for eff in e.dispatch(1) for t in getattr(eff, "tasks", [])]
    assert sent == [(3, 0)]


def test_a_policy_that_raises_stops_its_queue_not_the_engine() -> None:
    from tiercel.core.engine import Engine
    from tiercel.core.model import JobSpec, WorkerId, WorkerInfo
    from tiercel.core.ranges import IndexRanges

    class Faulty:
        name = "faulty"

        def key(self, group: Group, snap: Snapshot) -> float:
            raise ZeroDivisionError("division by zero")

    e = Engine(queues={"ok": chain("fcfs"), "bad": Chain.of("bad", [Faulty()])})
    e.connect(WorkerId("w"), WorkerInfo("w", "h", 4), 0, credit=4)
    for jid, queue in ((1, "bad"), (2, "ok")):
        e.add_job(JobId(jid), JobSpec(command=("x",), indexes=IndexRanges.of_size(1), queue=queue), ALICE, 0)
    sent = [t.job for eff in e.dispatch(0) for t in getattr(eff, "tasks", [])]
    assert sent == [2]
    assert e.queue_errors == {"bad": "a policy failed: ZeroDivisionError: division by zero"}
    why = e.explain(JobId(1), 0)
    assert why is not None and why.status is not None and "queue bad is stopped" in why.status.reason


# ---- the registry: what the engine asks of the policies, by name ------------------------------


def test_the_default_chain_is_requirements_then_priority_without_ageing_then_fcfs() -> None:
    from tiercel.core import policies

    c = policies.default_chain("default")
    assert [f.name for f in c.filters] == ["requirements"]
    assert [s.name for s in c.sorters] == ["priority", "fcfs"]
    assert getattr(c.sorters[0], "per_hour", None) == 0.0
    assert policies.default_names() == ["requirements", "priority", "fcfs"]


def test_placement_adds_requirements_first_and_reservations_last_once() -> None:
    from tiercel.core import policies

    live = policies.for_placement(chain("fcfs", "throttle", throttle={"per_user": 1}))
    assert [f.name for f in live.filters] == ["requirements"]
    assert [p.name for p in live.permits] == ["throttle", "reservations"]
    assert policies.for_placement(live) == live  # already there: not added twice
    assert policies.placement_names(["fairshare", "fcfs"]) == ["requirements", "fairshare", "fcfs"]
    assert policies.placement_names(["fcfs", "requirements"]) == ["requirements", "fcfs"]


def test_the_usage_half_life_is_the_first_fair_share_policys() -> None:
    from tiercel.core import policies
    from tiercel.core.engine import Engine

    assert policies.usage_half_life([chain("fcfs")]) is None
    two = [chain("fcfs"), chain("fairshare", fairshare={"half_life": 60}), chain("fairshare")]
    assert policies.usage_half_life(two) == 60.0
    assert Engine(queues={"a": two[0], "b": two[1]}).usage.rate == pytest.approx(math.log(2) / 60)
    assert Engine(queues={"a": two[0]}, half_life=30).usage.rate == pytest.approx(math.log(2) / 30)


def test_the_registry_describes_every_built_in() -> None:
    from tiercel.core import policies

    assert set(policies.DESCRIPTIONS) == set(policies.BUILTIN)
    assert policies.ALWAYS in policies.BUILTIN
    for name in policies.BUILTIN:
        assert getattr(policies.make(name), "name", None) == name
