"""The dashboard's data views: table tests of a job's data panel, the datasets page's replica table,
byte sizes, and the read model's count of a job's input files by where their replicas are."""

from __future__ import annotations

from typing import Any

import pytest

from tiercel.core.data import DataView
from tiercel.core.model import JobSpec
from tiercel.core.ranges import IndexRanges
from tiercel.gateways.web import views
from tiercel.manager.queries import replica_counts


def spec(size: int, inputs: tuple[str, ...] = (), outputs: tuple[str, ...] = ()) -> JobSpec:
    return JobSpec(command=("cat",), indexes=IndexRanges.of_size(size), inputs=inputs, outputs=outputs)


@pytest.mark.parametrize(("n", "shown"), [
    (0, "0 B"), (999, "999 B"), (1000, "1 kB"), (20_000, "20 kB"), (1_500_000, "1.5 MB"),
    (3_210_000_000, "3.2 GB"), (5_000_000_000_000, "5 TB"), (2_500_000_000_000_000, "2,500 TB")])
def test_sizes_are_read_in_powers_of_a_thousand(n: int, shown: str) -> None:
    assert views.size_text(n) == shown


def test_a_job_naming_no_files_has_no_data_panel() -> None:
    assert views.data_panel(spec(3), {"verdict": None, "workers": []}) is None


def test_a_job_with_only_outputs_shows_its_patterns_and_no_costs() -> None:
    panel = views.data_panel(spec(3, outputs=("gfarm:///out/r_{index}",)), None)
    assert panel == {"inputs": [], "outputs": ["gfarm:///out/r_{index}"], "reason": "", "copies": "", "places": []}


def test_the_data_panel_shows_each_place_what_it_holds_and_what_a_copy_costs() -> None:
    explained: dict[str, Any] = {"data": {
        "reason": "waiting for a place holding its inputs", "reachable": True, "copies_under_way": 2,
        "copy_rate": 50e6, "places": [
            {"worker": "w1", "node": "gfnode1", "local": True, "copy_bytes": 0, "copy_seconds": 0.0},
            {"worker": "w3", "node": "gfnode3", "local": False, "copy_bytes": 20_000_000, "copy_seconds": 0.4},
            {"worker": "w9", "node": None, "local": False, "copy_bytes": 20_000_000, "copy_seconds": None}]}}
    panel = views.data_panel(spec(3, inputs=("gfarm:///in/f_{index}",)), explained)
    assert panel is not None
    assert panel["reason"] == "waiting for a place holding its inputs"
    assert panel["copies"] == "copies at 50 MB/s, 2 under way"
    assert [(p["worker"], p["node"], p["holds"], p["bytes"], p["seconds"]) for p in panel["places"]] == [
        ("w1", "gfnode1", "yes", "0 B", "-"), ("w3", "gfnode3", "no", "20 MB", "0.4s"),
        ("w9", "-", "no", "20 MB", "?")]


def test_an_unreachable_gfarm_is_the_reason_and_there_are_no_places() -> None:
    explained = {"data": {"reason": "Gfarm's metadata server is unreachable: gfwhere: no such file",
                          "reachable": False, "copies_under_way": 0, "copy_rate": 50e6, "places": []}}
    panel = views.data_panel(spec(2, inputs=("gfarm:///in/x",)), explained)
    assert panel is not None and panel["places"] == []
    assert panel["reason"].startswith("Gfarm's metadata server is unreachable")


VIEW = DataView(replicas={"/in/f_0": frozenset({"gfnode1"}), "/in/f_1": frozenset({"gfnode1", "gfnode2"}),
                          "/in/f_2": frozenset(), "/ref.fa": frozenset({"gfnode2", "gfnode3"})},
                sizes={}, down=frozenset({"gfnode3"}))


@pytest.mark.parametrize(("inputs", "size", "limit", "expected"), [
    # one file per task: each located file counted on each node holding it; f_2 has no replica; f_3 not asked yet
    (("gfarm:///in/f_{index}",), 4, 100,
     {"files": 4, "counted": 4, "unknown": 1, "missing": 1, "nodes": {"gfnode1": 2, "gfnode2": 1}}),
    # a file every task reads is one file, however many tasks
    (("gfarm:///ref.fa",), 1000, 100, {"files": 1, "counted": 1, "unknown": 0, "missing": 0,
                                       "nodes": {"gfnode2": 1, "gfnode3": 1}}),
    (("gfarm:///in/f_{index}", "gfarm:///ref.fa"), 2, 100,
     {"files": 3, "counted": 3, "unknown": 0, "missing": 0, "nodes": {"gfnode1": 2, "gfnode2": 2, "gfnode3": 1}}),
    # a big job: only its first tasks' files are counted
    (("gfarm:///in/f_{index}",), 50_000, 2, {"files": 50_000, "counted": 2, "unknown": 0, "missing": 0,
                                             "nodes": {"gfnode1": 2, "gfnode2": 1}}),
])
def test_a_jobs_input_files_are_counted_by_where_their_replicas_are(inputs: tuple[str, ...], size: int, limit: int,
                                                                    expected: dict[str, Any]) -> None:
    found = replica_counts(7, spec(size, inputs=inputs), VIEW, limit)
    assert {k: v for k, v in found.items() if k != "inputs"} == expected
    assert found["inputs"] == list(inputs)


def test_the_replica_table_has_a_column_per_known_node_then_any_other_holding_a_file() -> None:
    nodes = [{"node": "gfnode1", "state": "up", "workers": ["w1"]}, {"node": "gfnode3", "state": "down", "workers": []}]
    jobs = [{"id": 4, "owner": "alice", "name": "cat", "inputs": ["gfarm:///in/f_{index}"], "files": 50_000,
             "counted": 2, "unknown": 0, "missing": 0, "nodes": {"gfnode1": 2, "gfnode2": 1}},
            {"id": 3, "owner": "alice", "name": "cat", "inputs": ["gfarm:///ref.fa"], "files": 1, "counted": 1,
             "unknown": 1, "missing": 0, "nodes": {}}]
    table = views.replica_table(jobs, nodes)
    assert table["columns"] == [{"node": "gfnode1", "state": "up"}, {"node": "gfnode3", "state": "down"},
                                {"node": "gfnode2", "state": "unknown"}]
    assert [r["cells"] for r in table["rows"]] == [[2, 0, 1], [0, 0, 0]]
    assert [r["note"] for r in table["rows"]] == ["2 of 50,000 counted (its first tasks')", ""]
