"""Sites against real batch systems: native arrays and pilots on Slurm and Grid Engine, placement,
a degraded site, and PBS, LSF and HTCondor through their fake command-line tools."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.batch import sge, slurm  # noqa: F401  (fixtures)
from tests.integration.conftest import Cluster, wait_until

pytestmark = pytest.mark.integration
FAKES = Path(__file__).resolve().parents[1] / "fixtures" / "fakebatch"


def start(cluster: Cluster, config: str) -> None:
    path = cluster.root / "tiercel.toml"
    path.write_text(config)
    cluster.start_manager("--config", str(path))


def sites(cluster: Cluster) -> dict[str, dict[str, object]]:
    out = cluster.cli("sites", "--json")
    assert out.returncode == 0, out.stderr
    return {row["name"]: row for row in json.loads(out.stdout)}


def submit(cluster: Cluster, *args: str) -> int:
    out = cluster.cli("submit", "--json", *args)
    assert out.returncode == 0, out.stderr + cluster.dump_logs()
    return int(json.loads(out.stdout)["id"])


def results(cluster: Cluster, job: int) -> list[dict[str, object]]:
    """Each task's settling attempt, with its stdout."""
    j = cluster.client().job(job)
    return [{"index": r.index, "attempt": r.attempt, "exit_code": r.exit_code, "worker": r.worker,
             "stdout": j.output(r.index).decode()} for r in j.results()]


def wait_end(cluster: Cluster, job: int, timeout: float = 120) -> dict[str, object]:
    c = cluster.client()
    try:
        return wait_until(lambda: (j := c.job(job)).finished and j.data, timeout, f"job {job} to end")
    except AssertionError:
        print(cluster.dump_logs())
        raise


TASK = "echo out $TIERCEL_TASK_INDEX; echo err >&2; exit $(( TIERCEL_TASK_INDEX == 3 ))"


@pytest.mark.parametrize("kind", ["slurm", "sge"])
def test_native_array_runs_each_task_once_with_its_exit_code_and_output(
        kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    request.getfixturevalue(kind)
    cluster = request.getfixturevalue("bare_cluster")
    start(cluster, f'[sites.{kind}]\nkind = "{kind}"\nmode = "native"\npoll_interval = "0.5s"\n'
                   f'spool = "{tmp_path / "spool"}"\n')
    job = submit(cluster, "--site", kind, "--queue", "6", "--no-index", "--", "sh", "-c", TASK)
    end = wait_end(cluster, job)
    assert end["done"] == 5 and end["failed"] == 1
    rows = results(cluster, job)
    assert sorted(r["index"] for r in rows) == list(range(6))
    assert all(str(r["stdout"]).strip() == f"out {r['index']}" for r in rows)
    assert {r["index"]: r["exit_code"] for r in rows}[3] == 1
    assert all(r["worker"] == f"site:{kind}" and r["attempt"] == 1 for r in rows)
    row = sites(cluster)[kind]
    submit_cmd = {"slurm": "sbatch", "sge": "qsub"}[kind]
    assert row["commands"][submit_cmd] == 1  # type: ignore[index]  # one array, not one job per task
    assert row["state"] == "ok"


@pytest.mark.parametrize("kind", ["slurm", "sge"])
def test_pilots_start_on_demand_and_pull_many_tasks(kind: str, request: pytest.FixtureRequest,
                                                    tmp_path: Path) -> None:
    request.getfixturevalue(kind)
    cluster = request.getfixturevalue("bare_cluster")
    start(cluster, f'[sites.{kind}]\nkind = "{kind}"\nmode = "pilot"\nslots = 2\nmax_pilots = 2\n'
                   f'pilot_walltime = "10m"\nidle_timeout = "3s"\npoll_interval = "0.5s"\n'
                   f'spool = "{tmp_path / "spool"}"\n')
    job = submit(cluster, "--site", kind, "--queue", "40", "--", "true")
    end = wait_end(cluster, job, 180)
    assert end["done"] == 40
    row = sites(cluster)[kind]
    submits = row["commands"][{"slurm": "sbatch", "sge": "qsub"}[kind]]  # type: ignore[index]
    assert 1 <= submits <= 2  # a handful of submissions for forty tasks, never past max_pilots
    workers = json.loads(cluster.cli("workers", "--json").stdout)
    assert workers and all(w["name"].startswith(f"{kind}.") for w in workers)
    # idle pilots leave by themselves, and the site notices
    wait_until(lambda: sites(cluster)[kind]["batch_jobs"] == 0, 60, "idle pilots to leave")


@pytest.mark.parametrize("kind", ["slurm", "sge", "local"])
def test_the_workers_a_site_starts_have_its_tags(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """A job requiring a site's tag is placed there, so the workers the site starts for it must have the tag."""
    if kind != "local":
        request.getfixturevalue(kind)
    cluster = request.getfixturevalue("bare_cluster")
    start(cluster, f'[sites.{kind}]\nkind = "{kind}"\nmode = "pilot"\ntags = ["bio", "x.1"]\nslots = 2\n'
                   f'max_pilots = 1\npilot_walltime = "10m"\nidle_timeout = "3s"\npoll_interval = "0.5s"\n'
                   f'spool = "{tmp_path / "spool"}"\n')
    job = submit(cluster, "--requires", "bio", "--queue", "4", "--", "true")  # not pinned: placed by its tag
    assert wait_end(cluster, job, 90)["done"] == 4, cluster.cli("explain", str(job)).stdout
    workers = json.loads(cluster.cli("workers", "--json").stdout)
    assert workers and all(w["name"].startswith(f"{kind}.") for w in workers)
    assert all(w["tags"] == ["bio", "x.1"] for w in workers), workers
    assert {r["worker"] for r in results(cluster, job)} <= {w["id"] for w in workers}


def test_one_submission_runs_where_it_fits_and_too_big_is_refused(slurm: None, sge: None,  # noqa: F811
                                                                  bare_cluster: Cluster, tmp_path: Path) -> None:
    cluster = bare_cluster
    start(cluster, '[sites.pool]\nmax_cpus = 2\n\n'
                   f'[sites.slurm]\nkind = "slurm"\npoll_interval = "0.5s"\nmax_cpus = 4\ntags = ["gpu"]\n'
                   f'spool = "{tmp_path / "s1"}"\n\n'
                   f'[sites.sge]\nkind = "sge"\npoll_interval = "0.5s"\nmax_cpus = 1\nspool = "{tmp_path / "s2"}"\n')
    listed = sites(cluster)
    assert list(listed) == ["pool", "slurm", "sge"]
    job = submit(cluster, "--requires", "gpu", "--queue", "2", "--", "true")
    assert wait_end(cluster, job)["done"] == 2
    assert {r["worker"] for r in results(cluster, job)} == {"site:slurm"}
    job = submit(cluster, "--cpus", "2", "--queue", "2", "--", "true")
    assert wait_end(cluster, job)["done"] == 2
    assert {r["worker"] for r in results(cluster, job)} == {"site:slurm"}
    big = cluster.cli("submit", "--cpus", "64", "--", "true")
    assert big.returncode == 2
    assert "job: a task needing 64 core(s) fits no site" in big.stderr and "slurm allows 4 core(s)" in big.stderr
    assert "pool allows 2" in big.stderr and "sge allows 1" in big.stderr


def test_a_site_whose_commands_are_missing_degrades_and_its_work_runs_elsewhere(bare_cluster: Cluster,
                                                                                 tmp_path: Path) -> None:
    cluster = bare_cluster
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    start(cluster, f'[sites.hpc]\nkind = "lsf"\npoll_interval = "0.5s"\nretries = 0\n'
                   f'spool = "{tmp_path / "spool"}"\n')
    cluster.start_worker("--slots", "2", env={"PATH": f"{empty}:{os.environ['PATH']}"})
    job = submit(cluster, "--queue", "4", "--", "true")
    end = wait_end(cluster, job)
    assert end["done"] == 4
    row = sites(cluster)["hpc"]
    assert row["state"] == "degraded"
    assert "bsub: command not found" in str(row["last_error"])
    pinned = submit(cluster, "--site", "hpc", "--", "true")  # accepted: it waits for the site to work again
    time.sleep(3)  # six polls of the degraded site
    with cluster.client() as c:
        j = c.job(pinned)
        assert not j.finished and j.data["done"] == 0 and j.data["failed"] == 0, (j.data, list(j.results()))
        assert list(j.results()) == []  # never handed to the degraded site: no attempt was made and lost


@pytest.mark.parametrize("kind", ["pbs", "lsf", "htcondor"])
def test_fake_batch_systems_run_the_whole_adapter_path(kind: str, bare_cluster: Cluster, tmp_path: Path) -> None:
    cluster = bare_cluster
    os.environ["FAKEBATCH_STATE"] = str(tmp_path / "fakebatch.json")
    start(cluster, f'[sites.{kind}]\nkind = "{kind}"\npoll_interval = "0.5s"\npath = ["{FAKES}"]\n'
                   f'spool = "{tmp_path / "spool"}"\npython = "{sys.executable}"\n')
    job = submit(cluster, "--site", kind, "--queue", "4", "--no-index", "--", "sh", "-c", TASK)
    end = wait_end(cluster, job)
    assert end["done"] == 3 and end["failed"] == 1
    rows = results(cluster, job)
    assert all(r["stdout"].strip() == f"out {r['index']}" for r in rows)
    long = submit(cluster, "--site", kind, "--queue", "3", "--", "sleep", "300")
    wait_until(lambda: sites(cluster)[kind]["batch_jobs"] == 1, 30, "the array to be submitted")
    assert cluster.cli("cancel", str(long)).returncode == 0
    assert wait_end(cluster, long)["cancelled"] == 3
    cancel_cmd = {"pbs": "qdel", "lsf": "bkill", "htcondor": "condor_rm"}[kind]
    wait_until(lambda: sites(cluster)[kind]["commands"].get(cancel_cmd), 30, "the cancel command")


def test_native_arrays_survive_a_manager_crash(slurm: None, bare_cluster: Cluster, tmp_path: Path) -> None:  # noqa: F811
    """kill -9 of the manager while elements run in Slurm: the restarted manager finds its arrays again
    and every task settles exactly once, from its first attempt."""
    cluster = bare_cluster
    start(cluster, f'[sites.slurm]\nkind = "slurm"\npoll_interval = "0.5s"\nspool = "{tmp_path / "spool"}"\n')
    job = submit(cluster, "--site", "slurm", "--queue", "8", "--", "sh", "-c", "sleep 3; echo done $0")
    wait_until(lambda: sites(cluster)["slurm"]["batch_jobs"] == 1, 30, "the array to be submitted")
    cluster.kill_manager()
    cluster.start_manager("--config", str(cluster.root / "tiercel.toml"))
    end = wait_end(cluster, job)
    assert end["done"] == 8
    rows = results(cluster, job)
    assert sorted(r["index"] for r in rows) == list(range(8))
    assert {r["attempt"] for r in rows} == {1}
    assert sites(cluster)["slurm"]["commands"].get("sbatch", 0) == 0  # nothing submitted twice


def test_a_local_site_starts_workers_on_the_managers_machine(bare_cluster: Cluster, tmp_path: Path) -> None:
    cluster = bare_cluster
    start(cluster, f'[sites.here]\nkind = "local"\nslots = 2\nmax_pilots = 1\nidle_timeout = "8s"\n'
                   f'poll_interval = "0.5s"\nspool = "{tmp_path / "spool"}"\n')
    job = submit(cluster, "--queue", "6", "--", "true")
    assert wait_end(cluster, job)["done"] == 6
    row = sites(cluster)["here"]  # its one worker, idle: all its slots free, and no more than it has
    assert (row["batch_jobs"], row["slots_total"], row["slots_free"]) == (1, 2, 2), row
    workers = json.loads(cluster.cli("workers", "--json").stdout)
    assert workers and all(w["name"].startswith("here.") for w in workers)
    assert {r["worker"] for r in results(cluster, job)} <= {w["id"] for w in workers}
    wait_until(lambda: sites(cluster)["here"]["batch_jobs"] == 0, 30, "the idle local worker to leave")


@pytest.mark.parametrize(("config", "words"), [
    ('[sites.hpc]\nkind = "torque"\n', "line 2: sites.hpc.kind: 'torque' is not allowed"),
    ('[sites.hpc]\nkind = "slurm"\nspool = "/proc/no/such/dir"\n', "sites.hpc.spool: '/proc/no/such/dir/hpc' cannot"),
])
def test_a_bad_site_config_stops_the_manager_with_one_line(config: str, words: str, tmp_path: Path) -> None:
    path = tmp_path / "tiercel.toml"
    path.write_text(config)
    out = subprocess.run([sys.executable, "-m", "tiercel", "manager", "--listen", "127.0.0.1:0", "--state-dir",
                          str(tmp_path / "state"), "--config", str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert words in out.stderr
    assert "Traceback" not in out.stderr


def test_a_jobs_cap_on_running_tasks_holds_on_real_slurm_in_native_mode(slurm: None, bare_cluster: Cluster,  # noqa: F811
                                                                      tmp_path: Path) -> None:
    start(bare_cluster, f'[sites.slurm]\nkind = "slurm"\nmode = "native"\npoll_interval = "0.3s"\n'
                        f'spool = "{tmp_path / "spool"}"\n')
    job = submit(bare_cluster, "--site", "slurm", "--queue", "6", "--max-running", "2", "--no-index", "--",
                 "sh", "-c", 'echo "$(date +%s.%N)"; sleep 1; echo "$(date +%s.%N)"')
    end = wait_end(bare_cluster, job, timeout=180)
    assert end["done"] == 6
    spans = [tuple(float(x) for x in str(r["stdout"]).split()) for r in results(bare_cluster, job)]
    most = max(sum(1 for a, b in spans if a <= t < b) for t, _ in spans)
    assert most <= 2, spans  # never more than its cap at once, though Slurm had slots for all six
    assert sites(bare_cluster)["slurm"]["commands"]["sbatch"] >= 3  # type: ignore[index]
