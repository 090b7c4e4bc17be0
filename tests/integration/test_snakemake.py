"""The Snakemake executor plugin (integrations/snakemake-executor-plugin-tiercel) against a real manager and
workers: the real ``snakemake --executor tiercel`` runs a split → 50 steps → merge workflow, a failing rule and
an interrupted run."""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.integration.conftest import Cluster, wait_until

pytestmark = pytest.mark.integration

STEPS = 50
STATUS_LINE = re.compile(r"tiercel: status request (\d+): (\d+) active jobs in one request")


@pytest.fixture(autouse=True)
def _plugin_installed() -> None:
    if importlib.util.find_spec("snakemake_executor_plugin_tiercel") is None:
        why = ("the Snakemake plugin is not installed: make test installs it "
               "(pip install -e integrations/snakemake-executor-plugin-tiercel)")
        if os.environ.get("CI"):
            pytest.fail(why, pytrace=False)
        pytest.skip(why)


def snakemake(cluster: Cluster, workdir: Path, *args: str, timeout: float = 150) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "snakemake", "--executor", "tiercel", "--jobs", "50", *args],
                          cwd=workdir, env=cluster.env(), capture_output=True, text=True, timeout=timeout)


def write_workflow(workdir: Path, snakefile: str) -> Path:
    workdir.mkdir()
    (workdir / "Snakefile").write_text(textwrap.dedent(snakefile))
    return workdir


def by_rule(jobs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Tiercel jobs by the Snakemake rule they ran (their names are snakejob.RULE.JOBID)."""
    rules: dict[str, list[dict[str, Any]]] = {}
    for job in jobs:
        assert job["name"].startswith("snakejob."), job["name"]
        rules.setdefault(job["name"].split(".")[1], []).append(job)
    return rules


def test_split_fifty_steps_merge(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_worker("--slots", "2", name="plain")
    cluster.start_worker("--slots", "1", "--tags", "merger", name="tagged")
    with cluster.client() as c:
        wait_until(lambda: len(c.workers()) == 2, what="two workers")
    workdir = write_workflow(tmp_path / "wf", f"""
        N = {STEPS}

        rule all:
            input: "merged.txt"

        rule split:
            output: expand("parts/{{i}}.txt", i=range(N))
            run:
                for i, path in enumerate(output):
                    with open(path, "w") as f:
                        f.write(f"{{i}}\\n")

        rule step:
            input: "parts/{{i}}.txt"
            output: "steps/{{i}}.txt"
            resources: mem_mb=50, runtime=5
            shell: "n=$(cat {{input}}); echo $((n * n)) > {{output}}"

        rule merge:
            input: expand("steps/{{i}}.txt", i=range(N))
            output: "merged.txt"
            resources: tiercel_requires="merger"
            shell: "cat {{input}} > {{output}}"
        """)
    started = time.monotonic()
    run = snakemake(cluster, workdir, "--verbose", "--seconds-between-status-checks", "2")
    elapsed = time.monotonic() - started
    assert run.returncode == 0, run.stderr[-4000:]
    assert (workdir / "merged.txt").read_text().split() == [str(i * i) for i in range(STEPS)]

    # Every job of the workflow but the local target rule ran as a Tiercel job, and succeeded.
    with cluster.client() as c:
        jobs = c.jobs()
        rules = by_rule(jobs)
        assert {rule: len(js) for rule, js in rules.items()} == {"split": 1, "step": STEPS, "merge": 1}
        assert {j["state"] for j in jobs} == {"done"}
        # tiercel_requires became the job's tags: the merge ran on the one worker that has the tag
        names = {w["id"]: w["name"] for w in c.workers()}
        [merge] = rules["merge"]
        assert [names[r.worker] for r in c.job(merge["id"]).results()] == ["tagged"]

    # The state of all active jobs came in one request per round: far fewer requests than one per job
    # and round, and fewer than there were jobs.
    rounds = [(int(n), int(k)) for n, k in STATUS_LINE.findall(run.stderr)]
    assert rounds and [n for n, _ in rounds] == list(range(1, len(rounds) + 1))
    requests, per_job_polls = len(rounds), sum(k for _, k in rounds)
    assert f"tiercel: {len(jobs)} jobs submitted; their state read in {requests} status requests" in run.stderr
    assert max(k for _, k in rounds) >= STEPS // 2  # many jobs were active at once, and asked about together
    assert requests < len(jobs) and requests * 5 < per_job_polls
    assert requests <= elapsed / 2 + 2  # bounded by time (one round each 2 s), not by the number of jobs
    print(f"{len(jobs)} Tiercel jobs, {requests} status requests (one per job per round would have been "
          f"{per_job_polls}), {elapsed:.1f} s")


def test_failing_rule_reports_the_task_stderr(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_worker("--slots", "2")
    workdir = write_workflow(tmp_path / "wf", """
        rule all:
            input: "ok.txt", "bad.txt"

        rule ok:
            output: "ok.txt"
            shell: "echo ok > {output}"

        rule bad:
            output: "bad.txt"
            shell: "echo tiercel-marker-from-the-rule >&2; exit 7"
        """)
    run = snakemake(cluster, workdir, "--seconds-between-status-checks", "1")
    assert run.returncode != 0
    with cluster.client() as c:
        [bad] = by_rule(c.jobs())["bad"]
    assert bad["state"] == "failed"
    out = run.stderr
    # The Tiercel job's state, its task's exit code and its stderr are in Snakemake's error report.
    assert f"Tiercel job {bad['id']} failed." in out
    assert "Task 0: failed, exit code 1 (attempt 1)." in out  # the job's snakemake process ends with 1
    report = out[out.index(f"Tiercel job {bad['id']} failed."):]
    assert "tiercel-marker-from-the-rule" in report and "returned non-zero exit status 7" in report
    assert f"tiercel logs {bad['id']} --stderr" in report
    assert not (workdir / "bad.txt").exists()


def test_interrupt_cancels_the_tiercel_jobs(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_worker("--slots", "2")
    workdir = write_workflow(tmp_path / "wf", """
        rule all:
            input: expand("slow{i}.txt", i=range(2))

        rule slow:
            output: "slow{i}.txt"
            shell: "sleep 120; touch {output}"
        """)
    proc = subprocess.Popen([sys.executable, "-m", "snakemake", "--executor", "tiercel", "--jobs", "50",
                             "--seconds-between-status-checks", "1"],
                            cwd=workdir, env=cluster.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        with cluster.client() as c:
            wait_until(lambda: [j["state"] for j in c.jobs()] == ["running", "running"], 60, "two running jobs")
            proc.send_signal(signal.SIGINT)
            out, _ = proc.communicate(timeout=60)
            assert proc.returncode != 0
            assert "tiercel: cancelled 2 Tiercel jobs" in out
            wait_until(lambda: [j["state"] for j in c.jobs()] == ["cancelled", "cancelled"], 30, "cancelled jobs")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_resources_become_job_fields() -> None:
    from snakemake_executor_plugin_tiercel.mapping import failure_message, job_fields, tail

    job = SimpleNamespace(threads=4, resources={"mem_mb": 2048, "runtime": 90, "tiercel_requires": "gpu, bio",
                                                "disk_mb": 1000, "tmpdir": "/tmp", "_cores": 4})
    assert job_fields(job, name="snakejob.align.7", cwd="/data/wf", env={"A": "1"}, queue="short",
                      requires=["bio", "x86"]) == {
        "name": "snakejob.align.7", "append_index": False, "cpus": 4, "memory": 2048, "walltime": 5400.0,
        "requires": ["bio", "x86", "gpu"], "queue_name": "short", "cwd": "/data/wf", "env": {"A": "1"}}
    # Unset or non-numeric resources are left to the manager's defaults.
    bare = SimpleNamespace(threads=1, resources={"mem_mb": "<TBD>", "runtime": None})
    assert job_fields(bare, name="x" * 300) == {"name": "x" * 200, "append_index": False, "cpus": 1}
    assert job_fields(bare, name="snakejob.a\nb.1")["name"] == "snakejob.a?b.1"  # a wildcard's newline

    assert tail("a\nb\nc\n\n", 2) == "[... 1 earlier lines]\nb\nc"
    message = failure_message(9, {"state": "cancelled", "reason": "cancelled by alice"}, [], None)
    assert message == "Tiercel job 9 cancelled (cancelled by alice).\nIts task never ran."
