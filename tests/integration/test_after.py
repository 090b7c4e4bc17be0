"""Dependencies between jobs with a real manager and workers: stages, a failing parent, corr, restarts."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from tests.integration.conftest import Cluster, wait_until

pytestmark = pytest.mark.integration


def submit(cluster: Cluster, *args: str) -> int:
    out = cluster.cli("submit", "--json", *args)
    assert out.returncode == 0, out.stderr
    return int(json.loads(out.stdout)["id"])


def status(cluster: Cluster, job: int) -> dict[str, object]:
    return dict(json.loads(cluster.cli("status", str(job), "--json").stdout))


def test_three_stages_run_in_order_through_the_cli_and_the_client(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_worker("--slots", "4")
    work = tmp_path / "work"
    work.mkdir()
    prep = submit(cluster, "--cwd", str(work), "--no-index", "--", "sh", "-c", "sleep 0.5; echo 7 > input")
    sweep = submit(cluster, "--after", str(prep), "--queue", "5", "--cwd", str(work), "--no-index", "--",
                   "sh", "-c", 'echo $(( $(cat input) * TIERCEL_TASK_INDEX )) > "part$TIERCEL_TASK_INDEX"')
    with cluster.client() as c:
        merge = c.submit("cat part* | paste -sd+ | bc > total", after=[c.job(sweep)], cwd=str(work),
                         append_index=False)
        assert merge.wait(timeout=60, poll=0.1).data["state"] == "done"
        prep_end = max(r.ended for r in c.job(prep).results())
        assert min(r.started for r in c.job(sweep).results()) >= prep_end
    assert (work / "total").read_text().strip() == str(7 * (0 + 1 + 2 + 3 + 4))


def test_a_failed_parent_cancels_its_dependents_and_theirs_saying_why(cluster: Cluster) -> None:
    parent = submit(cluster, "--hold", "--", "false")
    child = submit(cluster, "--after", str(parent), "--queue", "3", "--", "true")
    grandchild = submit(cluster, "--after", f"{child}:any", "--", "true")
    explained = cluster.cli("explain", str(child))
    assert f"waits for job {parent} to end (after ok)" in explained.stdout, explained.stdout
    assert f"waits for job {parent}" in str(status(cluster, child)["waiting"])
    cluster.start_worker("--slots", "2")
    assert cluster.cli("release", str(parent)).returncode == 0
    wait_until(lambda: status(cluster, grandchild)["state"] != "queued", 30, "the grandchild to be decided")
    c = status(cluster, child)
    assert (c["state"], c["cancelled"], c["reason"]) == ("cancelled", 3, f"dependency: job {parent} failed")
    g = status(cluster, grandchild)
    assert g["state"] == "done"  # it waited for the child to end whatever way (after any)


def test_corr_runs_task_i_after_task_i_and_cancels_the_one_whose_parent_failed(cluster: Cluster) -> None:
    cluster.start_worker("--slots", "2")
    first = submit(cluster, "--queue", "4", "--no-index", "--", "sh", "-c", "test $TIERCEL_TASK_INDEX -ne 2")
    second = submit(cluster, "--after", f"{first}:corr", "--queue", "4", "--", "true")
    assert cluster.cli("wait", str(second)).returncode != 0
    data = status(cluster, second)
    assert (data["done"], data["cancelled"]) == (3, 1)
    assert data["reason"] == f"dependency: job {first} task 2 failed"
    with cluster.client() as c:
        assert sorted(r.index for r in c.job(second).results()) == [0, 1, 3]


def test_a_waiting_dependent_survives_a_manager_restart_and_runs_once_its_parent_is_done(cluster: Cluster) -> None:
    parent = submit(cluster, "--hold", "--queue", "2", "--", "true")
    child = submit(cluster, "--after", str(parent), "--queue", "2", "--", "true")
    cluster.kill_manager(signal.SIGKILL)
    cluster.start_manager()
    time.sleep(0.5)
    assert status(cluster, child)["state"] == "queued"
    cluster.start_worker("--slots", "2")
    assert cluster.cli("release", str(parent)).returncode == 0
    assert cluster.cli("wait", str(child)).returncode == 0


def test_bad_dependencies_are_refused_by_name_and_nothing_is_submitted(cluster: Cluster) -> None:
    mine = submit(cluster, "--queue", "3", "--hold", "--", "true")
    bob = cluster.cli("token", "create", "--user", "bob", "--role", "user").stdout.strip().split()[-1]
    refused = [
        (cluster.cli("submit", "--after", "999", "--", "true"), "after: '999' names job 999, which does not exist"),
        (cluster.cli("submit", "--after", f"{mine}:sometimes", "--", "true"), "has the kind 'sometimes'"),
        (cluster.cli("submit", "--after", f"{mine}:corr", "--queue", "4", "--", "true"),
         f"links task i to task i of job {mine}, whose indexes (0-2) are not this job's (0-3)"),
        (cluster.cli("submit", "--after", str(mine), "--", "true", token=bob),
         f"names job {mine}, which is not a job of yours"),
        (cluster.cli("submit", "--after", "x", "--", "true"), "after: 'x' must name a job"),
    ]
    for out, message in refused:
        assert out.returncode == 2 and message in out.stderr, (message, out.stderr)
    with cluster.client() as c:
        assert [j["id"] for j in c.jobs()] == [mine]


def test_stages_chained_from_python_as_futures(cluster: Cluster) -> None:
    cluster.start_worker("--slots", "2")
    from tiercel.client import TiercelError

    with cluster.client() as c:
        prep = c.submit(["true"])
        sweep = c.submit(["true"], queue=4, after=[prep])
        broken = c.submit(["false"], after=[sweep])
        after_broken = c.submit(["true"], after=[broken])
        assert sweep.result(timeout=60).state == "done" and prep.done()
        words = f"job {after_broken.id} cancelled .*: dependency: job {broken.id} failed"
        with pytest.raises(TiercelError, match=words):
            after_broken.result(timeout=60)
