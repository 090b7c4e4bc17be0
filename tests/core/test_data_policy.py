"""The data-aware placement policy, with tables: local reads first, a copy only when it beats the wait,
once per (file, node), and every task that cannot run saying why."""

from __future__ import annotations

import pytest

from tiercel.core.data import DataView
from tiercel.core.policies.data import Estimates, Slot, costs, holders, pick

MB = 1_000_000


def own_file(i: int) -> tuple[str, ...]:
    return (f"/d/{i}",)


def view(replicas: dict[str, set[str]], size: int = MB, **kw: object) -> DataView:
    return DataView({p: frozenset(h) for p, h in replicas.items()}, {p: size for p in replicas}, **kw)  # type: ignore[arg-type]


ON_1_AND_2 = {f"/d/{i}": {"n1", "n2"} for i in range(10)}
SLOTS = {"n1": 2, "n2": 2, "n3": 2}


@pytest.mark.parametrize(("slots", "runtime", "rate", "local", "copies"), [
    # three free workers, files on n1 and n2, no run time known: only the local reads start
    ([Slot("w1", "n1", 2), Slot("w2", "n2", 2), Slot("w3", "n3", 2)], None, 50 * MB, {"w1": 2, "w2": 2}, 0),
    # tasks take 10 s, a copy 0.02 s: n3 copies for the two tasks at the back of the queue
    ([Slot("w1", "n1", 2), Slot("w2", "n2", 2), Slot("w3", "n3", 2)], 10.0, 50 * MB, {"w1": 2, "w2": 2}, 2),
    # copies crawl (1 kB/s: 1000 s each), tasks take 1 s: waiting wins, nothing is copied
    ([Slot("w1", "n1", 2), Slot("w2", "n2", 2), Slot("w3", "n3", 2)], 1.0, 1000, {"w1": 2, "w2": 2}, 0),
    # only n3 is free: copies for the tasks that would wait longest, one per free slot
    ([Slot("w3", "n3", 2)], 10.0, 50 * MB, {}, 2),
])
def test_local_reads_first_copies_when_they_beat_the_wait(slots: list[Slot], runtime: float | None, rate: float,
                                                         local: dict[str, int], copies: int) -> None:
    picks = pick(list(range(10)), own_file, slots, view(ON_1_AND_2, copy_rate=rate), Estimates(runtime, SLOTS), {})
    assert {p: len(ix) for p, ix in picks.assign.items()} == local
    for place, indexes in picks.assign.items():
        node = next(s.node for s in slots if s.place == place)
        assert all(node in ON_1_AND_2[f"/d/{i}"] for i in indexes)
    assert len(picks.copies) == copies
    assert all(node == "n3" for _, node in picks.copies)
    assert sorted(picks.intents) == list(range(10 - copies, 10))  # the back of the queue


def test_a_file_every_task_reads_is_copied_once_per_node() -> None:
    shared = DataView({"/ref": frozenset({"n1"})}, {"/ref": MB})
    slots = [Slot("w1", "n1", 1), Slot("w2", "n2", 4), Slot("w3", "n3", 4)]
    picks = pick(list(range(100)), lambda i: ("/ref",), slots, shared, Estimates(5.0, SLOTS), {})
    assert picks.assign == {"w1": [0]}
    assert sorted(picks.copies) == [("/ref", "n2"), ("/ref", "n3")]
    # the next cycle, copies under way: nothing asked again, the tasks that asked still wait for them
    under_way = DataView({"/ref": frozenset({"n1"})}, {"/ref": MB}, copying={("/ref", "n2"): 0.0, ("/ref", "n3"): 0.0})
    again = pick(list(range(1, 100)), lambda i: ("/ref",), slots[1:], under_way, Estimates(5.0, SLOTS), picks.intents)
    assert again.copies == []
    # once made, the tasks run there
    made = DataView({"/ref": frozenset({"n1", "n2", "n3"})}, {"/ref": MB})
    after = pick(list(range(1, 100)), lambda i: ("/ref",), slots[1:], made, Estimates(5.0, SLOTS), picks.intents)
    assert sum(len(v) for v in after.assign.values()) == 8 and after.copies == []


@pytest.mark.parametrize(("replicas", "down", "reachable", "needle"), [
    ({}, frozenset(), True, "locating /d/0 in Gfarm"),
    ({"/d/0": set()}, frozenset(), True, "gfarm:///d/0 does not exist"),
    ({"/d/0": {"n2"}}, frozenset({"n2"}), True, "every replica of /d/0 is on a node that is down (n2)"),
    ({"/d/0": {"n1"}}, frozenset(), False, "Gfarm's metadata server is unreachable: connection refused"),
])
def test_a_task_that_cannot_run_says_why(replicas: dict[str, set[str]], down: frozenset[str], reachable: bool,
                                         needle: str) -> None:
    v = view(replicas, down=down, reachable=reachable, problem="connection refused")
    picks = pick([0], own_file, [Slot("w3", "n3", 1)], v, Estimates(None, SLOTS), {})
    assert picks.assign == {} and picks.copies == []
    assert needle in picks.waiting
    assert (0 in picks.missing) == ("does not exist" in needle)


def test_a_node_that_is_down_sends_its_tasks_to_the_other_replica() -> None:
    v = view(ON_1_AND_2, down=frozenset({"n2"}))
    picks = pick(list(range(4)), own_file, [Slot("w1", "n1", 4), Slot("w2", "n2", 4)], v, Estimates(None, SLOTS), {})
    assert picks.assign == {"w1": [0, 1, 2, 3]}
    assert holders(("/d/0",), v) == frozenset({"n1"})


def test_explain_shows_each_place_with_its_data_cost() -> None:
    v = view({"/d/0": {"n1"}, "/ref": {"n1", "n2"}}, size=3 * MB)
    table = costs(("/d/0", "/ref"), [Slot("w1", "n1", 0), Slot("w2", "n2", 1), Slot("w3", "n3", 1),
                                      Slot("laptop", None, 1)], v)
    assert table == [("w1", "n1", True, 0), ("w2", "n2", False, 3 * MB), ("w3", "n3", False, 6 * MB),
                     ("laptop", None, False, 6 * MB)]


def test_a_replica_that_could_not_be_read_is_passed_over_then_the_task_fails() -> None:
    v = view({"/d/0": {"n1", "n2"}}, unreadable=frozenset({("/d/0", "n2")}))
    picks = pick([0], own_file, [Slot("w2", "n2", 1), Slot("w1", "n1", 1)], v, Estimates(None, SLOTS), {})
    assert picks.assign == {"w1": [0]}
    gone = view({"/d/0": {"n1", "n2"}}, unreadable=frozenset({("/d/0", "n2"), ("/d/0", "n1")}))
    failed = pick([0], own_file, [Slot("w1", "n1", 1)], gone, Estimates(None, SLOTS), {})
    assert failed.missing == {0: "no replica of gfarm:///d/0 is left that could be read (tried on n1, n2)"}
