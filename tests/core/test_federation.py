"""The pure part of federation: leases, offers, time-outs, and placement on peers, as tables."""

from __future__ import annotations

import pytest

from tiercel.core.engine import Engine, Persist, SendTasks
from tiercel.core.federation import (
    Lease,
    LeaseState,
    Offer,
    SiteSummary,
    check_sites,
    credit,
    overdue,
    ranges,
    shares,
    target,
    verdict,
)
from tiercel.core.model import JobId, JobSpec, Outcome, Report, TaskRef, UserName, WorkerId, WorkerInfo
from tiercel.core.pipeline import Chain
from tiercel.core.policies.fcfs import Fcfs
from tiercel.core.policies.overflow import Overflow
from tiercel.core.policies.requirements import Requirements
from tiercel.core.policy import Code, Group, Place, Snapshot
from tiercel.core.problems import Problem
from tiercel.core.ranges import IndexRanges
from tiercel.core.sites import Limits, Mode, SiteInfo, SiteLoad, choose, peer_of_worker, peer_worker

J = JobId(1)


def refs(job: int, attempt: int, *indexes: int) -> list[TaskRef]:
    return [TaskRef(JobId(job), i, attempt) for i in indexes]


@pytest.mark.parametrize(("tasks", "expected"), [
    (refs(1, 1, 0, 1, 2, 3), [(1, 1, ((0, 4),))]),
    (refs(1, 1, 5, 3, 4, 9), [(1, 1, ((3, 6), (9, 10)))]),  # one lease, two spans
    (refs(1, 1, 0, 1) + refs(1, 2, 2), [(1, 1, ((0, 2),)), (1, 2, ((2, 3),))]),  # one lease per attempt
    (refs(1, 1, 0) + refs(2, 1, 0), [(1, 1, ((0, 1),)), (2, 1, ((0, 1),))]),  # and per job
    ([], []),
])
def test_tasks_are_cut_into_one_lease_per_job_and_attempt(tasks: list[TaskRef], expected: list[object]) -> None:
    assert ranges(tasks) == expected


@pytest.mark.parametrize(("offer", "in_flight", "prefetch", "want_target", "want_credit"), [
    (Offer(4, 4), 0, 1.0, 8, 8),  # idle: its slots and as many again
    (Offer(4, 0, running_ours=4, queued=4), 8, 1.0, 8, 0),  # busy with ours: no more until some end
    (Offer(4, 2, running_ours=2), 4, 1.0, 8, 4),
    (Offer(4, 4, queued=10), 0, 1.0, 0, 0),  # its own users' work waits: it offers nothing
    (Offer(4, 4), 0, 0.0, 4, 4),
    (Offer(0, 0), 3, 1.0, 0, 0),  # never negative
])
def test_a_peer_is_offered_its_room_plus_prefetch(offer: Offer, in_flight: int, prefetch: float, want_target: int,
                                                 want_credit: int) -> None:
    assert target(offer, prefetch) == want_target
    assert credit(offer, in_flight, prefetch) == want_credit


@pytest.mark.parametrize(("waiting", "local", "offers", "expected"), [
    (100, 0, {"B": 10, "C": 10}, {"B": 50, "C": 50}),
    (100, 0, {"B": 30, "C": 10}, {"B": 75, "C": 25}),
    (100, 20, {"B": 10, "C": 10}, {"B": 40, "C": 40}),  # home's free slots take their share first
    (5, 10, {"B": 10}, {"B": 0}),
    (101, 0, {"B": 1, "C": 1}, {"B": 51, "C": 50}),  # the remainder goes to the largest (then by name)
    (10, 0, {"B": 0}, {"B": 0}),
])
def test_an_array_splits_in_proportion_to_what_each_offers(waiting: int, local: int, offers: dict[str, int],
                                                           expected: dict[str, int]) -> None:
    got = shares(waiting, local, offers)
    assert got == expected
    assert sum(got.values()) <= waiting


def lease(state: LeaseState = LeaseState.ACCEPTED, sent: float = 0.0, started: int = 0,
          settled: set[int] | None = None) -> Lease:
    x = Lease("1.1.0", "B", J, 1, ((0, 10),), sent, state, started)
    x.settled = settled or set()
    return x


@pytest.mark.parametrize(("leases", "now", "silent_since", "all_", "ids"), [
    ([lease()], 100.0, 50.0, True, ("1.1.0",)),  # silent 50 s, time-out 30 s: everything back
    ([lease()], 100.0, 80.0, False, ()),  # heard 20 s ago, started nothing, sent at 0 but start time-out 300 s
    ([lease(sent=0.0)], 400.0, 399.0, False, ("1.1.0",)),  # accepted, never started in 300 s
    ([lease(sent=0.0, started=1)], 400.0, 399.0, False, ()),  # started: it runs
    ([lease(sent=0.0, settled={3})], 400.0, 399.0, False, ()),  # a result came: it runs
    ([lease(LeaseState.RETIRED)], 100.0, 0.0, False, ()),  # nothing active: nothing to take
    ([], 100.0, 0.0, False, ()),
])
def test_what_is_taken_back_from_a_silent_or_idle_peer(leases: list[Lease], now: float, silent_since: float,
                                                      all_: bool, ids: tuple[str, ...]) -> None:
    due = overdue(leases, now, silent_since, 30.0, 300.0)
    assert (due.all, due.leases) == (all_, ids)
    assert bool(due.why) == bool(ids)


@pytest.mark.parametrize(("peer", "indexes", "words"), [
    ("B", [0, 9], None),
    ("C", [0], "given to peer B"),
    ("B", [10, 11], "outside range 1.1.0 (0-9)"),
])
def test_a_peer_reports_only_on_the_ranges_it_was_given(peer: str, indexes: list[int], words: str | None) -> None:
    why = verdict(lease(), peer, indexes)
    assert (why is None) if words is None else (why is not None and words in why)
    assert verdict(None, "B", [0]) == "a range it was not given"


@pytest.mark.parametrize(("site", "words"), [
    (SiteSummary("p", "pool", 4, 2), None),
    (SiteSummary("p", "pool", 4, 9), "9 free slots of 4"),
    (SiteSummary("p", "pool", -1, 0), "slots_total -1"),
    (SiteSummary("p", "pool", 10**9, 0), "slots_total 1000000000"),
    (SiteSummary("p", "pool", 4, 0, max_cpus=0), "max_cpus 0 must be positive"),
])
def test_a_summary_with_nonsense_values_is_named(site: SiteSummary, words: str | None) -> None:
    why = check_sites([site])
    assert (why is None) if words is None else (why is not None and words in why)


# ---- placement ------------------------------------------------------------------------------


PEER_B = SiteInfo("peer:B", "peer", Mode.PEER, Limits(tags=frozenset({"gpu"})))
POOL = SiteInfo("pool", "pool", Mode.POOL)


def test_a_peer_is_chosen_only_when_no_local_site_can_take_the_job() -> None:
    loads = {"pool": SiteLoad(0, 0, 0), "peer:B": SiteLoad(8, 8, 0)}
    assert choose(Group(J, UserName("u"), 10), [POOL, PEER_B], loads).site == "pool"  # full pool: still home
    gpu = Group(J, UserName("u"), 10, requires=frozenset({"gpu"}))
    hpc = SiteInfo("hpc", "slurm", Mode.NATIVE)
    choice = choose(gpu, [hpc, PEER_B], loads)
    assert choice.site == "peer:B" and "lacks tag(s) gpu" in choice.reason()
    assert choose(Group(J, UserName("u"), 10, requires=frozenset({"gpu"}), stay=True), [hpc, PEER_B], loads
                  ).site is None  # forwarded here (or pinned): never to a peer


@pytest.mark.parametrize(("group", "code"), [
    (Group(J, UserName("u"), 5, site="pool"), Code.OK),  # bound home: its overflow may go to a peer
    (Group(J, UserName("u"), 5, site="peer:B"), Code.OK),
    (Group(J, UserName("u"), 5, site="peer:C"), Code.WAIT),  # bound to another peer
    (Group(J, UserName("u"), 5, site="pool", stay=True), Code.NEVER),
])
def test_a_peer_place_takes_overflow_unless_the_job_stays(group: Group, code: Code) -> None:
    place = Place("peer:B", 8, 8, site="peer:B")
    assert Requirements().filter(group, place, Snapshot(0.0, (), ())).code is code


def spec(n: int, **kw: object) -> JobSpec:
    return JobSpec(("true",), IndexRanges.of_size(n), **kw)  # type: ignore[arg-type]


def engine_with_peer() -> Engine:
    e = Engine()
    e.set_sites([POOL, SiteInfo("peer:B", "peer", Mode.PEER)])
    e.connect(WorkerId("w"), WorkerInfo("w", "h", 2), 0.0, credit=2)
    e.connect(peer_worker("B"), WorkerInfo("B", "b", 8, site="peer:B"), 0.0, credit=8)
    return e


def test_home_places_take_work_first_and_peers_the_overflow() -> None:
    e = engine_with_peer()
    e.add_job(J, spec(20), UserName("u"), 0.0)
    sent = {x.worker: len(x.tasks) for x in e.dispatch(1.0) if isinstance(x, SendTasks)}
    assert sent == {WorkerId("w"): 2, peer_worker("B"): 8}
    assert peer_of_worker(peer_worker("B")) == "B" and peer_of_worker("w") is None


def test_a_forwarded_job_never_leaves_for_a_peer() -> None:
    e = engine_with_peer()
    e.add_job(J, spec(20, hops=("a1",)), UserName("fed-a"), 0.0)
    sent = {x.worker: len(x.tasks) for x in e.dispatch(1.0) if isinstance(x, SendTasks)}
    assert sent == {WorkerId("w"): 2}


def test_tasks_given_back_wait_again_as_their_next_attempt_and_a_late_success_still_counts() -> None:
    e = engine_with_peer()
    e.add_job(J, spec(10), UserName("u"), 0.0)
    e.dispatch(1.0)
    b = peer_worker("B")
    held = [TaskRef(J, i, 1) for _, i in e.workers[b].tasks]
    back = e.give_back(b, held[:4], 2.0)
    assert isinstance(back[0], Persist) and [r.report.outcome for r in back[0].records] == [Outcome.LOST] * 4
    assert len(e.workers[b].tasks) == 4 and all(e.jobs[J].retry[r.index][0] == 2 for r in held[:4])
    # epoch 1 of a task taken back succeeds late: it settles, once
    r = held[0]
    late = Report(J, r.index, 1, Outcome.DONE, 0, 1.0, 2.0, seal=e.seal.make(b, J, r.index, 1))
    e.report(b, [late], 3.0)
    assert e.jobs[J].done == 1 and r.index not in e.jobs[J].retry
    e.report(b, [late], 3.0)  # twice: nothing more
    assert e.jobs[J].done == 1
    # a forged report (no seal) for a task never given to the peer is refused
    other = next(i for i in range(10) if i not in {x.index for x in held})
    refused = e.report(b, [Report(J, other, 1, Outcome.DONE, 0, 1.0, 2.0)], 3.0)
    assert any(type(x).__name__ == "Refused" for x in refused)


@pytest.mark.parametrize(("group", "place", "now", "code", "words"), [
    (Group(J, UserName("u"), 5, submitted=0.0, site="pool"), "peer:B", 100.0, Code.WAIT, "waited 100s"),
    (Group(J, UserName("u"), 5, submitted=0.0, site="pool"), "peer:B", 300.0, Code.OK, ""),
    (Group(J, UserName("u"), 5, submitted=0.0, site="pool"), "w1", 1.0, Code.OK, ""),  # home: no wait
    (Group(J, UserName("u"), 5, submitted=0.0, site="peer:B"), "peer:B", 1.0, Code.OK, ""),  # only a peer can
])
def test_overflow_keeps_work_home_until_it_has_waited(group: Group, place: str, now: float, code: Code,
                                                     words: str) -> None:
    policy = Overflow.create({"after": "5m"})
    assert isinstance(policy, Overflow) and policy.after == 300.0
    status = policy.filter(group, Place(place, 8, 8, site="peer:B" if place.startswith("peer:") else "pool"),
                           Snapshot(now, (), ()))
    assert status.code is code and words in status.reason


@pytest.mark.parametrize(("args", "words"), [
    ({"after": "soon"}, "overflow.after: 'soon' must be a duration"),
    ({"after": -3}, "overflow.after: -3 must be a duration"),
    ({"before": 3}, "overflow.before: 3 is not an argument of overflow"),
])
def test_overflow_arguments_are_checked(args: dict[str, object], words: str) -> None:
    made = Overflow.create(args)
    assert isinstance(made, Problem) and made.message().startswith(words), made


def test_the_overflow_policy_holds_work_home_in_the_engine_until_it_has_waited() -> None:
    chain = Chain.of("q", [Requirements(), Overflow(60.0), Fcfs()])
    e = Engine(queues={"q": chain})
    e.set_sites([POOL, SiteInfo("peer:B", "peer", Mode.PEER)])
    e.connect(WorkerId("w"), WorkerInfo("w", "h", 2), 0.0, credit=2)
    e.connect(peer_worker("B"), WorkerInfo("B", "b", 8, site="peer:B"), 0.0, credit=8)
    e.add_job(J, spec(20, queue="q"), UserName("u"), 0.0)
    first = {x.worker: len(x.tasks) for x in e.dispatch(10.0) if isinstance(x, SendTasks)}
    assert first == {WorkerId("w"): 2}
    later = {x.worker: len(x.tasks) for x in e.dispatch(61.0) if isinstance(x, SendTasks)}
    assert later == {peer_worker("B"): 8}
