"""Policy plug-ins through entry points, and queues built from TOML."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tiercel.config import load_queues
from tiercel.core.model import JobId, UserName
from tiercel.core.pipeline import schedule
from tiercel.core.policy import Group, Place, Snapshot
from tiercel.core.problems import Problem
from tiercel.plugins import build, listing
from tiercel.queues import parse

# Installed into the test environment by `make test` (see the Makefile): the example package
# under examples/shortest-first and a fixture whose import fails on purpose.


def test_listing_shows_builtins_the_example_and_the_broken_plugin() -> None:
    rows = {r.name: r for r in listing()}
    assert rows["fcfs"].origin == "built-in" and rows["fcfs"].status == "ok"
    assert rows["shortest-first"].origin == "tiercel_shortest_first:ShortestFirst"
    assert rows["shortest-first"].status == "ok"
    assert "failed to load from tiercel_broken_policy:Broken: ImportError" in rows["broken-example"].status


def test_the_example_plugin_selected_by_a_queue_changes_the_order() -> None:
    queues = parse({"queues": {"short": {"policies": ["shortest-first"]}, "plain": {"policies": ["fcfs"]}}})
    assert not isinstance(queues, Problem), queues
    groups = (
        Group(JobId(1), UserName("a"), 1, submitted=0, walltime=3600),
        Group(JobId(2), UserName("b"), 1, submitted=5, walltime=60),
    )
    snap = Snapshot(10, groups, (Place("pool", 1, 1),))
    assert [p.job for p in schedule(snap, queues["short"].chain).placements] == [2]
    assert [p.job for p in schedule(snap, queues["plain"].chain).placements] == [1]


def test_a_broken_plugin_fails_when_selected_not_before() -> None:
    assert build("fcfs", {}) is not None  # other policies load fine with it installed
    problem = parse({"queues": {"q": {"policies": ["fairshare", "broken-example"]}}})
    assert isinstance(problem, Problem)
    assert problem.field == "queues.q.policies"
    assert "'broken-example' failed to load from tiercel_broken_policy:Broken" in problem.message()


def test_plugin_arguments_are_checked_by_the_plugin() -> None:
    problem = parse({"queues": {"q": {"policies": ["shortest-first"], "shortest-first": {"unknown_last": 3}}}})
    assert isinstance(problem, Problem)
    assert problem.message() == "queues.q.shortest-first.unknown_last: 3 must be true or false"


@pytest.mark.parametrize(
    ("queues", "needle"),
    [
        ({"q": {"policies": ["nope"]}}, "queues.q.policies: 'nope' is not a known policy"),
        ({"q": {"policies": "fcfs"}}, "queues.q.policies: 'fcfs' must be a list of policy names"),
        ({"q": {"max_running": -3}}, "queues.q.max_running: -3 must be a whole number of at least 1"),
        ({"q": {"colour": "red"}}, "queues.q.colour: 'red' is not a queue setting"),
        ({"q": {"policies": ["fairshare"], "fairshare": {"half_life": -1}}},
         "queues.q.fairshare.half_life: -1 must be a number of at least 1"),
        ({"a": {"default": True}, "b": {"default": True}}, "more than one queue says default = true"),
    ],
)
def test_bad_queue_configs_name_the_key(queues: dict[str, object], needle: str) -> None:
    problem = parse({"queues": queues})
    assert isinstance(problem, Problem) and needle in problem.message()


def test_limits_become_a_throttle_and_the_first_queue_is_the_default(tmp_path: Path) -> None:
    f = tmp_path / "queues.toml"
    f.write_text('[queues.batch]\npolicies = ["fairshare"]\nmax_running_per_user = 2\n\n[queues.other]\n')
    queues = load_queues(f)
    assert not isinstance(queues, Problem)
    batch = queues["batch"]
    assert batch.default and not queues["other"].default
    assert batch.policies == ("fairshare", "fcfs") and batch.limits == {"per_user": 2}
    assert [p.name for p in batch.chain.permits] == ["throttle"]


def test_policies_command_lists_status() -> None:
    out = subprocess.run([sys.executable, "-m", "tiercel", "policies", "--json"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0
    assert '"name": "shortest-first"' in out.stdout and '"name": "broken-example"' in out.stdout


def _swf(path: Path, lines: list[str]) -> Path:
    path.write_text("; a tiny trace\n" + "\n".join(lines) + "\n")
    return path


def test_simulate_command_is_deterministic_and_reports_bad_lines(tmp_path: Path) -> None:
    import json

    rows = [f"{i} {i * 5} -1 {20 + i % 7 * 10} {1 + i % 4} -1 -1 {1 + i % 4} -1 -1 1 {i % 3} 1 -1 1 -1 -1 -1"
            for i in range(1, 200)]
    trace = _swf(tmp_path / "t.swf", rows)
    cmd = [sys.executable, "-m", "tiercel", "simulate", "--trace", str(trace), "--slots", "4", "--json",
           "--policy", "fairshare,backfill", "--estimate-noise", "0.5", "--seed", "3"]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    a, b = json.loads(first.stdout), json.loads(second.stdout)
    for key in ("utilisation", "mean_wait", "mean_bounded_slowdown", "p95_bounded_slowdown", "makespan"):
        assert a[key] == b[key]
    assert a["jobs"] == 199 and 0 < a["utilisation"] <= 1

    bad = _swf(tmp_path / "bad.swf", [*rows[:5], "6 30 -1 oops 1 -1 -1 1 -1 -1 1 0 1 -1 1 -1 -1 -1", *rows[6:9]])
    out = subprocess.run([*cmd[:5], str(bad), "--slots", "4"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "line 7: 'oops' is not a number" in out.stderr and "Traceback" not in out.stderr
    out = subprocess.run([*cmd[:5], str(bad), "--slots", "4", "--on-error", "skip", "--json"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and json.loads(out.stdout)["skipped_malformed"] == 1
    assert "skipped line 7" in out.stderr
