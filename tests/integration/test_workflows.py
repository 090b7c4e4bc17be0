"""Workflow files against a real manager and workers: stages, a failing part, retry, kill -9, all or nothing."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from tests.integration.conftest import Cluster, wait_until

pytestmark = pytest.mark.integration

STAGES = '''
[workflow]
name = "sum"

[vars]
factor = "7"

[jobs.prepare]
command = "sleep 0.3; echo {factor} > input"
cwd = "{dir}"

[jobs.sweep]
command = ["sh", "-c", """echo $(( $(cat input) * TIERCEL_TASK_INDEX )) > "part$TIERCEL_TASK_INDEX"
             test -e ok -o $TIERCEL_TASK_INDEX -ne 3"""]
append_index = false
queue = 5
cwd = "{dir}"
after = ["prepare"]

[jobs.merge]
command = "cat part* | paste -sd+ | bc > total"
cwd = "{dir}"
after = ["sweep"]

[jobs.report]
command = "echo reported > report"
cwd = "{dir}"
after = ["merge:any"]
'''


def write_flow(tmp_path: Path) -> tuple[Path, Path]:
    work = tmp_path / "work"
    work.mkdir()
    flow = tmp_path / "flow.toml"
    flow.write_text(STAGES)
    return flow, work


def test_a_workflow_runs_in_order_fails_in_part_and_its_retry_runs_only_the_failed_part(
        cluster: Cluster, tmp_path: Path) -> None:
    flow, work = write_flow(tmp_path)
    cluster.start_worker("--slots", "3")
    out = cluster.cli("workflow", "submit", str(flow), "--var", f"dir={work}", "--json")
    assert out.returncode == 0, out.stderr
    wid = json.loads(out.stdout)["id"]
    waited = cluster.cli("workflow", "wait", str(wid), "--json")
    assert waited.returncode == 1
    data = {j["name"]: j for j in json.loads(waited.stdout)["jobs"]}
    assert (data["prepare"]["state"], data["sweep"]["state"]) == ("done", "failed")
    assert data["merge"]["state"] == "cancelled" and data["merge"]["reason"] == \
        f"dependency: job {data['sweep']['id']} failed"
    assert data["report"]["state"] == "done"  # it waited for merge to end, whatever way (merge:any)
    shown = cluster.cli("workflow", "status", str(wid))
    assert "dependency: job" in shown.stdout and "sweep" in shown.stdout
    (work / "ok").touch()
    again = cluster.cli("workflow", "retry", str(wid))
    assert again.returncode == 0, again.stderr
    assert cluster.cli("workflow", "wait", str(wid)).returncode == 0
    assert (work / "total").read_text().strip() == str(7 * 10)
    with cluster.client() as c:
        ran = {j["name"]: [(r.index, r.attempt) for r in c.job(j["id"]).results()] for j in data.values()}
    assert ran["prepare"] == [(0, 1)]  # nothing that finished ran again
    assert sorted(ran["sweep"]) == [(0, 1), (1, 1), (2, 1), (3, 2), (4, 1)]
    assert ran["merge"] == [(0, 1)]


def test_after_kill_9_of_the_manager_mid_workflow_nothing_that_finished_runs_again(
        cluster: Cluster, tmp_path: Path) -> None:
    flow, work = write_flow(tmp_path)
    (work / "ok").touch()
    out = cluster.cli("workflow", "submit", str(flow), "--var", f"dir={work}", "--json")
    wid = json.loads(out.stdout)["id"]
    cluster.start_worker("--slots", "3")
    with cluster.client() as c:
        wait_until(lambda: c.workflow(wid)["jobs"][0]["state"] == "done", 30, "prepare to finish")
    cluster.kill_manager(signal.SIGKILL)
    cluster.start_manager()
    assert cluster.cli("workflow", "wait", str(wid)).returncode == 0
    with cluster.client() as c:
        for j in c.workflow(wid)["jobs"]:
            finals = [r for r in c.job(j["id"]).results()]
            assert len(finals) == j["total"] and all(r.attempt == 1 for r in finals), j["name"]


def test_a_workflow_with_anything_wrong_submits_nothing(cluster: Cluster, tmp_path: Path) -> None:
    flow = tmp_path / "bad.toml"
    flow.write_text('[jobs.a]\ncommand = "true"\n[jobs.b]\ncommand = "true"\nafter = ["a"]\nwalltime = "soon"\n')
    out = cluster.cli("workflow", "submit", str(flow))
    assert out.returncode == 2 and "jobs.b.walltime: 'soon'" in out.stderr, out.stderr
    cycle = tmp_path / "cycle.toml"
    cycle.write_text('[jobs.a]\ncommand = "true"\nafter = ["b"]\n[jobs.b]\ncommand = "true"\nafter = ["a"]\n')
    out = cluster.cli("workflow", "submit", str(cycle))
    assert out.returncode == 2 and "'a -> b -> a' is a cycle" in out.stderr, out.stderr
    with cluster.client() as c:
        assert c.jobs() == [] and c.workflows() == []


def test_a_workflows_throttle_caps_its_running_tasks_across_jobs_and_per_category(
        cluster: Cluster, tmp_path: Path) -> None:
    flow = tmp_path / "wide.toml"
    flow.write_text('[workflow]\nmax_running = 3\n[workflow.categories]\nio = 1\n'
                    '[jobs.a]\ncommand = "sleep 0.4"\nqueue = 6\nappend_index = false\n'
                    '[jobs.b]\ncommand = "sleep 0.4"\nqueue = 6\nappend_index = false\n'
                    '[jobs.c]\ncommand = "sleep 0.4"\nqueue = 4\nappend_index = false\ncategory = "io"\n')
    cluster.start_worker("--slots", "8")
    out = cluster.cli("workflow", "submit", str(flow), "--json")
    assert out.returncode == 0, out.stderr
    wid = json.loads(out.stdout)["id"]
    peak, peak_io = 0, 0
    deadline = time.monotonic() + 60
    with cluster.client() as c:
        while time.monotonic() < deadline:
            data = c.workflow(wid)
            running = {j["name"]: j["running"] for j in data["jobs"]}
            peak, peak_io = max(peak, sum(running.values())), max(peak_io, running["c"])
            if data["state"] in ("done", "failed", "cancelled"):
                break
    assert data["state"] == "done" and peak == 3 and peak_io == 1
    bad = tmp_path / "bad.toml"
    bad.write_text('[jobs.a]\ncommand = "true"\ncategory = "gpu"\n')
    refused = cluster.cli("workflow", "submit", str(bad))
    assert refused.returncode == 2 and "line 3: jobs.a.category: 'gpu' must be a category" in refused.stderr
