"""CSF4's two-step flow end to end: tiercel job create/submit/data against a real manager and worker."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import Cluster

pytestmark = pytest.mark.integration


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def work(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


def shell_env(cluster: Cluster, tmp_path: Path, home: Path) -> dict[str, str]:
    """The cluster's environment with a `tiercel` on PATH that runs this interpreter, and a test HOME."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    wrapper = bin_dir / "tiercel"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m tiercel "$@"\n')
    wrapper.chmod(0o755)
    env = cluster.env()
    env.update(PATH=f"{bin_dir}:{env.get('PATH', '/usr/bin:/bin')}", HOME=str(home), USER="zding",
               TIERCEL_JOBS_DIR=str(tmp_path / "jobs"))
    return env


def bash(script: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", script], env=env, cwd=cwd, capture_output=True, text=True, timeout=600)


def test_demo5_loop_creates_submits_and_collects_four_jobs(cluster: Cluster, tmp_path: Path, home: Path,
                                                            work: Path) -> None:
    cluster.start_worker("--slots", "4")
    (work / "job4.rsl").write_text(
        "& (* the seed's Demo 5 job, as a job array of three tasks *)\n"
        "  (executable=/bin/sh)\n"
        '  (arguments=-c "echo task $TIERCEL_TASK_INDEX: $1 in $(pwd)" job4 "this is a globusrun example")\n'
        "  (directory=$(HOME))\n"
        "  (count=3)\n"
    )
    # Demo 5, with tiercel in place of csf-
    demo5 = """
        set -e
        for i in 1 2 3 4; do echo $i; tiercel job create -rsl job4.rsl -name job$i; done
        for i in 1 2 3 4; do echo $i; tiercel job submit job$i; done
        for i in 1 2 3 4; do echo $i; tiercel job data job$i; done
        tiercel status
    """
    out = bash(demo5, shell_env(cluster, tmp_path, home), work)
    assert out.returncode == 0, out.stdout + out.stderr + cluster.dump_logs()
    assert "Traceback" not in out.stderr
    for i in range(1, 5):
        assert f"submitted job{i} as job" in out.stdout
        expected = "".join(f"task {t}: this is a globusrun example in {home}\n" for t in range(3))
        assert (work / f"job{i}.stdout").read_text() == expected  # the tasks' outputs in task order
        assert (work / f"job{i}.stderr").read_text() == ""
    assert out.stdout.count("done: 3 done, 0 failed") == 4
    assert out.stdout.count("stdout written to job") == 4


def test_demo3_rsl_writes_the_named_stdout_and_records_the_job(cluster: Cluster, tmp_path: Path, home: Path,
                                                                work: Path) -> None:
    cluster.start_worker("--slots", "2")
    env = shell_env(cluster, tmp_path, home)
    (work / "job.rsl").write_text('&(executable=/bin/echo)\n (directory=$(HOME))\n'
                                  ' (arguments="this is a globusrun example")\n (stdout=stdout2)\n')
    script = """
        set -e
        tiercel job create --rsl job.rsl --name zding_job2
        tiercel job submit zding_job2 --json > submitted.json
        tiercel job data zding_job2 --quiet
        cat stdout2
    """
    out = bash(script, env, work)
    assert out.returncode == 0, out.stdout + out.stderr + cluster.dump_logs()
    assert out.stdout.endswith("this is a globusrun example\n")
    assert (work / "stdout2").read_text() == "this is a globusrun example\n"
    assert (work / "zding_job2.stderr").read_text() == ""
    submitted = json.loads((work / "submitted.json").read_text())
    assert submitted["name"] == "zding_job2" and submitted["total"] == 1

    shown = json.loads(bash("tiercel job show zding_job2 --json", env, work).stdout)
    assert shown["job_id"] == submitted["id"] and shown["request"]["cwd"] == str(home)
    listed = bash("tiercel job list", env, work)
    assert "zding_job2" in listed.stdout and str(submitted["id"]) in listed.stdout
    again = bash("tiercel job submit zding_job2", env, work)
    assert again.returncode == 2 and f"already submitted as job {submitted['id']}" in again.stderr
    resubmitted = bash("tiercel job submit zding_job2 --again --json", env, work)
    assert resubmitted.returncode == 0, resubmitted.stderr
    assert json.loads(resubmitted.stdout)["id"] != submitted["id"]


def test_demo2_xml_given_with_rsl_option_writes_stdout_under_globus_user_home(cluster: Cluster, tmp_path: Path,
                                                                               home: Path, work: Path) -> None:
    cluster.start_worker("--slots", "2")
    (work / "job.xml").write_text(
        "<job>\n"
        "  <executable>/bin/echo</executable>\n"
        "  <directory>${GLOBUS_USER_HOME}</directory>\n"
        "  <argument>this is an example_string </argument>\n"
        "  <argument>Globus was here</argument>\n"
        "  <stdout>${GLOBUS_USER_HOME}/stdout</stdout>\n"
        "  <stderr>${GLOBUS_USER_HOME}/stderr</stderr>\n"
        "</job>\n"
    )
    # the seed's Demo 2 passes the XML file with -rsl
    script = """
        set -e
        tiercel job create -rsl job.xml -name zding_job1
        tiercel job submit zding_job1
        tiercel job data zding_job1
        cat ~/stdout
    """
    out = bash(script, shell_env(cluster, tmp_path, home), work)
    assert out.returncode == 0, out.stdout + out.stderr + cluster.dump_logs()
    assert (home / "stdout").read_text() == "this is an example_string  Globus was here\n"
    assert (home / "stderr").read_text() == ""
    assert f"stdout written to {home}/stdout" in out.stdout


def test_failed_tasks_still_deliver_their_output_and_exit_1(cluster: Cluster, tmp_path: Path, home: Path,
                                                            work: Path) -> None:
    cluster.start_worker("--slots", "2")
    env = shell_env(cluster, tmp_path, home)
    (work / "bad.rsl").write_text('&(executable=/bin/sh)(arguments=-c "echo out $TIERCEL_TASK_INDEX; '
                                  'echo oops >&2; exit 3")(count=2)(stdout=both)(stderr=both)')
    out = bash("tiercel job create --rsl bad.rsl --name bad && tiercel job submit bad && "
               "tiercel job data bad --quiet", env, work)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "0 done, 2 failed" in out.stdout
    # one file named for both streams: standard output, then standard error
    assert (work / "both").read_text() == "out 0\nout 1\noops\noops\n"


def test_no_wait_and_timeout_on_a_job_nobody_runs(cluster: Cluster, tmp_path: Path, home: Path, work: Path) -> None:
    env = shell_env(cluster, tmp_path, home)
    (work / "idle.rsl").write_text("&(executable=/bin/true)(queue=default)")
    out = bash("tiercel job create --rsl idle.rsl --name idle && tiercel job submit idle", env, work)
    assert out.returncode == 0, out.stderr
    early = bash("tiercel job data idle --no-wait", env, work)
    assert early.returncode == 2
    assert "idle: job 1 is still queued (0 of 1 tasks finished)" in early.stderr
    timed = bash("tiercel job data idle --timeout 0.5 --quiet", env, work)
    assert timed.returncode == 124 and "did not finish within" in timed.stderr
    assert not (work / "idle.stdout").exists()


@pytest.mark.parametrize(
    ("args", "files", "needle"),
    [
        (["create", "--rsl", "h.rsl", "--name", "h"], {"h.rsl": "&(executable=/bin/echo)(hostCount=2)"},
         "h.rsl: hostCount (line 1): is not supported"),
        (["create", "--rsl", "s.rsl", "--name", "s"], {"s.rsl": "&(executable=/bin/echo\n(count=2)"},
         "s.rsl: rsl line 2, column 7: '=' is not expected here: expected ')'"),
        (["create", "--xml", "d.xml", "--name", "d"],
         {"d.xml": '<!DOCTYPE job [<!ENTITY e "x">]><job><executable>&e;</executable></job>'},
         "d.xml: xml: must not declare a DOCTYPE"),
        (["create", "--xml", "r.rsl", "--name", "r"], {"r.rsl": "&(executable=/bin/echo)"},
         "does not start with '<'"),
        (["create", "--rsl", "missing.rsl", "--name", "m"], {}, "missing.rsl: cannot be read"),
        (["create", "--rsl", "ok.rsl", "--name", "../up"], {"ok.rsl": "&(executable=/bin/echo)"},
         "name: '../up' must be 1 to 64 letters"),
        (["create", "--name", "x"], {}, "give the description with --rsl FILE or --xml FILE"),
        (["submit", "nobody"], {}, "name: 'nobody' is not a job description here"),
        (["data", "nobody"], {}, "name: 'nobody' is not a job description here"),
        (["show", "nobody"], {}, "name: 'nobody' is not a job description here"),
    ],
)
def test_bad_input_is_one_line_exit_2(cluster: Cluster, tmp_path: Path, home: Path, work: Path, args: list[str],
                                      files: dict[str, str], needle: str) -> None:
    for name, text in files.items():
        (work / name).write_text(text)
    out = subprocess.run([sys.executable, "-m", "tiercel", "job", *args], env=shell_env(cluster, tmp_path, home),
                         cwd=work, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out.stdout + out.stderr
    assert needle in out.stderr, out.stderr
    assert out.stderr.startswith("error: ") and out.stderr.count("\n") == 1 and "Traceback" not in out.stderr


def test_a_name_is_refused_twice_unless_replaced(cluster: Cluster, tmp_path: Path, home: Path, work: Path) -> None:
    env = shell_env(cluster, tmp_path, home)
    (work / "a.rsl").write_text("&(executable=/bin/echo)(arguments=a)")
    (work / "b.rsl").write_text("&(executable=/bin/echo)(arguments=b)(count=2)")
    assert bash("tiercel job create --rsl a.rsl --name j", env, work).returncode == 0
    twice = bash("tiercel job create --rsl b.rsl --name j", env, work)
    assert twice.returncode == 2 and "already names a job description" in twice.stderr and "--replace" in twice.stderr
    replaced = bash("tiercel job create --rsl b.rsl --name j --replace --json", env, work)
    assert replaced.returncode == 0, replaced.stderr
    assert json.loads(replaced.stdout)["request"]["command"] == ["/bin/echo", "b"]
    assert json.loads(bash("tiercel job show j --json", env, work).stdout)["request"]["queue"] == 2
