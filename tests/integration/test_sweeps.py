"""Sweeps over data (--each-line, --each-json) and output files (--stdout, --stderr) with a real
manager and worker, through the CLI, the REST API and the Python client."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import Cluster
from tests.integration.test_sites import FAKES, results, start, submit, wait_end

pytestmark = pytest.mark.integration

LINES = ["alpha", "two words", "", "ünïcode 'q' \"d\" $HOME", "last"]


def test_each_line_gives_each_task_its_line_in_the_environment_and_as_argument(cluster: Cluster,
                                                                                tmp_path: Path) -> None:
    inputs = tmp_path / "inputs.txt"
    inputs.write_text("\n".join(LINES) + "\n")
    out = cluster.cli("submit", "--each-line", str(inputs), "--json", "--",
                      "sh", "-c", 'printf "%s|%s|%s\\n" "$TIERCEL_ENTRY" "$1" "$TIERCEL_TASK_INDEX"', "task")
    assert out.returncode == 0, out.stderr
    submitted = json.loads(out.stdout)
    assert submitted["total"] == 5
    # durable with its entries: a manager killed before any worker came finds them again
    cluster.kill_manager(signal.SIGKILL)
    cluster.start_manager()
    cluster.start_worker("--slots", "2")
    with cluster.client() as c:
        job = cluster.wait_job(c.job(submitted["id"]))
        assert job.state == "done", job.data
        for i, line in enumerate(LINES):
            assert job.output(i).decode() == f"{line}|{line}|{i}\n"
    every = cluster.cli("logs", str(submitted["id"]))
    assert every.stdout.count("==> task") == 5 and "two words|two words|1" in every.stdout


def test_each_json_and_entries_through_the_client(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_worker("--slots", "2")
    params = tmp_path / "params.json"
    params.write_text(json.dumps([{"alpha": 0.1, "name": "a b"}, [1, 2], "s"], indent=2))
    out = cluster.cli("submit", "--each-json", str(params), "--json", "--", "echo")
    assert out.returncode == 0, out.stderr
    with cluster.client() as c:
        job = cluster.wait_job(c.job(json.loads(out.stdout)["id"]))
        assert [job.output(i) for i in range(3)] == [b'{"alpha":0.1,"name":"a b"}\n', b"[1,2]\n", b'"s"\n']
        direct = cluster.wait_job(c.submit(["printenv", "TIERCEL_ENTRY"], entries=["x", "y z"], append_index=False))
        assert (direct.data["total"], direct.output(1)) == (2, b"y z\n")


def test_bad_sweeps_are_refused_with_one_line(cluster: Cluster, tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"ok\n\xff\n")
    out = cluster.cli("submit", "--each-line", str(bad), "--", "echo")
    assert out.returncode != 0 and "line 2 holds byte 0xff" in out.stderr
    out = cluster.cli("submit", "--each-line", str(bad), "--queue", "3", "--", "echo")
    assert out.returncode != 0 and "--each-line: cannot be given together with --queue" in out.stderr
    with cluster.client() as c:
        r = c._http.post("/v1/jobs", json={"command": "echo", "entries": ["a", "b\nc"]})
        assert r.status_code == 422 and r.json()["field"] == "entries.1"
        r = c._http.post("/v1/jobs", json={"command": "echo", "stdout": "out/{name}"})
        assert r.status_code == 422 and "unknown placeholder {name}" in r.json()["error"]
        assert c.jobs() == []


def test_output_files_per_task_and_per_job_where_the_task_ran(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_worker("--slots", "3")
    work = tmp_path / "work"
    work.mkdir()
    out = cluster.cli("submit", "--queue", "6", "--cwd", str(work), "--stdout", "out/{index}.txt",
                      "--stderr", "err-{job}.log", "--json", "--", "sh", "-c", 'echo "result $1"; echo "note $1" >&2',
                      "task")
    assert out.returncode == 0, out.stderr
    job_id = json.loads(out.stdout)["id"]
    with cluster.client() as c:
        job = cluster.wait_job(c.job(job_id))
        assert job.state == "done"
        assert job.output(4) == b"result 4\n"  # the manager keeps its copy as well
    for i in range(6):
        assert (work / "out" / f"{i}.txt").read_text() == f"result {i}\n"
    blocks = (work / f"err-{job_id}.log").read_text().split("==> task ")[1:]
    assert sorted(blocks) == sorted(f"{i} (attempt 1, done, exit 0) <==\nnote {i}\n" for i in range(6))


def test_a_million_line_file_is_accepted(cluster: Cluster, tmp_path: Path) -> None:
    inputs = tmp_path / "million.txt"
    with inputs.open("w") as f:
        f.writelines(f"/data/run-{i:07d}/sample.fastq.gz\n" for i in range(1_000_000))
    out = cluster.cli("submit", "--each-line", str(inputs), "--json", "--", "./process.sh")
    assert out.returncode == 0, out.stderr
    job = json.loads(out.stdout)
    assert (job["total"], job["state"]) == (1_000_000, "queued")
    with cluster.client() as c:
        assert c.job(job["id"]).data["total"] == 1_000_000


def test_a_native_site_runs_a_sweep_with_output_files(bare_cluster: Cluster, tmp_path: Path) -> None:
    """The whole path of a native array (a fake PBS running the element script): entries from the file
    the site writes beside the script, output files written where the elements ran."""
    cluster = bare_cluster
    os.environ["FAKEBATCH_STATE"] = str(tmp_path / "fakebatch.json")
    start(cluster, f'[sites.pbs]\nkind = "pbs"\npoll_interval = "0.5s"\npath = ["{FAKES}"]\n'
                   f'spool = "{tmp_path / "spool"}"\npython = "{sys.executable}"\n')
    work = tmp_path / "work"
    work.mkdir()
    inputs = tmp_path / "inputs.txt"
    inputs.write_text("\n".join(LINES) + "\n")
    job = submit(cluster, "--site", "pbs", "--each-line", str(inputs), "--cwd", str(work), "--stdout",
                 "out/{index}.txt", "--", "sh", "-c", 'echo "$1|$TIERCEL_ENTRY"', "task")
    end = wait_end(cluster, job)
    assert end["done"] == 5, end
    assert sorted((r["index"], r["stdout"]) for r in results(cluster, job)) == [
        (i, f"{line}|{line}\n") for i, line in enumerate(LINES)]
    assert [(work / "out" / f"{i}.txt").read_text() for i in range(5)] == [f"{line}|{line}\n" for line in LINES]
