"""The native-array element script, run by the real /bin/sh, and the reading of its results."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tiercel.core.model import JobId, JobSpec, Outcome, TaskRef
from tiercel.core.ranges import IndexRanges
from tiercel.sites.shim import element_script, read_result, result_files
from tiercel.worker.runner import TRUNCATED

JOB = JobId(7)


def spec(command: tuple[str, ...], **kw: object) -> JobSpec:
    return JobSpec(command=command, indexes=IndexRanges.of_size(100), **kw)  # type: ignore[arg-type]


def refs(pairs: list[tuple[int, int]]) -> dict[int, TaskRef]:
    return {n: TaskRef(JOB, i, a) for n, (i, a) in enumerate(pairs, start=1)}


def run(tmp_path: Path, s: JobSpec, elements: dict[int, TaskRef], element: int,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "run.sh"
    script.write_text(element_script(s, JOB, elements, tmp_path))
    return subprocess.run(["/bin/sh", str(script)], env={**os.environ, **(env or {}), "TIERCEL_ELEMENT": str(element)},
                          capture_output=True, text=True, timeout=60)


def test_each_element_runs_its_own_task_with_index_last_and_the_variables(tmp_path: Path) -> None:
    s = spec(("/bin/sh", "-c", 'echo "$TIERCEL_JOB_ID $TIERCEL_TASK_INDEX $TIERCEL_ATTEMPT $0 $FOO"'),
             env=(("FOO", "it's \"quoted\" $HOME"),))
    # two runs of consecutive indexes, then a retried task (attempt 2) on its own
    elements = refs([(10, 1), (11, 1), (12, 1), (40, 1), (41, 1), (5, 2)])
    for n, ref in elements.items():
        assert run(tmp_path, s, elements, n).returncode == 0
        r = read_result(tmp_path, n, ref)
        assert r is not None and r.outcome is Outcome.DONE and r.exit_code == 0
        assert r.stdout.decode() == f"7 {ref.index} {ref.attempt} {ref.index} it's \"quoted\" $HOME\n"
        assert (r.job, r.index, r.attempt) == (JOB, ref.index, ref.attempt)
        assert r.ended >= r.started > 0
    assert result_files(tmp_path) == set(elements)
    script = element_script(s, JOB, elements, tmp_path)
    assert script.count("elif") == 2  # three runs, not six arms


def test_shell_command_lines_get_the_index_as_for_pool_workers(tmp_path: Path) -> None:
    elements = refs([(3, 1)])
    run(tmp_path, spec(("echo task",), shell=True), elements, 1)
    assert read_result(tmp_path, 1, elements[1]).stdout == b"task 3\n"  # type: ignore[union-attr]
    run(tmp_path, spec(("echo a; echo b $1",), shell=True), elements, 1)
    assert read_result(tmp_path, 1, elements[1]).stdout == b"a\nb 3\n"  # type: ignore[union-attr]
    run(tmp_path, spec(("echo none",), shell=True, append_index=False), elements, 1)
    assert read_result(tmp_path, 1, elements[1]).stdout == b"none\n"  # type: ignore[union-attr]


def test_exit_status_stderr_and_a_missing_command(tmp_path: Path) -> None:
    elements = refs([(1, 1)])
    run(tmp_path, spec(("/bin/sh", "-c", "echo oops >&2; exit 3"), append_index=False), elements, 1)
    r = read_result(tmp_path, 1, elements[1])
    assert r is not None and r.outcome is Outcome.FAILED and r.exit_code == 3 and r.stderr == b"oops\n"
    run(tmp_path, spec(("/no/such/program",)), elements, 1)
    r = read_result(tmp_path, 1, elements[1])
    assert r is not None and r.outcome is Outcome.FAILED and r.exit_code == 127 and b"/no/such/program" in r.stderr


def test_directory_home_and_odd_environment_names(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "work dir").mkdir(parents=True)
    elements = refs([(2, 1)])
    s = spec(("pwd",), append_index=False, cwd="~/work dir")
    run(tmp_path, s, elements, 1, env={"HOME": str(home)})
    r = read_result(tmp_path, 1, elements[1])
    assert r is not None and r.stdout.decode() == f"{home / 'work dir'}\n"
    # a name sh cannot assign still reaches the task (dash would drop it from a shell's children: run env itself)
    run(tmp_path, spec(("env",), append_index=False, env=(("odd-name", "x y"), ("PLAIN", "p"))), elements, 1)
    r = read_result(tmp_path, 1, elements[1])
    assert r is not None and {"odd-name=x y", "PLAIN=p"} <= set(r.stdout.decode().splitlines())
    run(tmp_path, spec(("true",), cwd=str(tmp_path / "absent")), elements, 1)
    r = read_result(tmp_path, 1, elements[1])
    assert r is not None and r.exit_code == 127 and b"no directory" in r.stderr


def test_walltime_is_enforced_and_a_task_exiting_124_by_itself_is_not_a_timeout(tmp_path: Path) -> None:
    elements = refs([(1, 1)])
    run(tmp_path, spec(("sleep", "30"), append_index=False, walltime=0.5), elements, 1)
    r = read_result(tmp_path, 1, elements[1], walltime=0.5)
    assert r is not None and r.outcome is Outcome.TIMEOUT and b"walltime of 0.5s" in r.stderr
    assert r.ended - r.started < 10
    # a task deaf to SIGTERM is killed a few seconds later, and that is a timeout too
    run(tmp_path, spec(("/bin/sh", "-c", "trap '' TERM; sleep 30"), append_index=False, walltime=0.5), elements, 1)
    r = read_result(tmp_path, 1, elements[1], walltime=0.5)
    assert r is not None and r.outcome is Outcome.TIMEOUT and r.exit_code == 137
    run(tmp_path, spec(("/bin/sh", "-c", "exit 124"), append_index=False, walltime=20), elements, 1)
    r = read_result(tmp_path, 1, elements[1], walltime=20)
    assert r is not None and r.outcome is Outcome.FAILED and r.exit_code == 124


def test_an_element_outside_the_array_fails_without_writing_a_result(tmp_path: Path) -> None:
    elements = refs([(1, 1), (2, 1)])
    for bad in ("0", "3", "x"):
        done = subprocess.run(["/bin/sh", "-c", element_script(spec(("true",)), JOB, elements, tmp_path)],
                              env={**os.environ, "TIERCEL_ELEMENT": bad}, capture_output=True, text=True)
        assert done.returncode == 2 and "not in this array" in done.stderr
    assert result_files(tmp_path) == set()


def test_output_is_capped_when_read(tmp_path: Path) -> None:
    elements = refs([(1, 1)])
    run(tmp_path, spec(("/bin/sh", "-c", "head -c 5000 /dev/zero"), append_index=False), elements, 1)
    r = read_result(tmp_path, 1, elements[1], max_output=1000)
    assert r is not None and r.stdout == b"\0" * 1000 + TRUNCATED


@pytest.mark.parametrize("line, finished", [("", False), ("0 1.5 2.5 0", False), ("0 1.5 2.5\n", True),
                                            ("zero 1 2 0\n", True), ("0 17%N 18.%N 0\n", True)])
def test_result_lines_being_written_or_damaged(tmp_path: Path, line: str, finished: bool) -> None:
    (tmp_path / "1.end").write_text(line)
    r = read_result(tmp_path, 1, TaskRef(JOB, 1, 1))
    if not finished:
        assert r is None  # no newline yet: still being written
        return
    assert r is not None
    if line.startswith("0 17"):  # date without %N: whole seconds
        assert r.outcome is Outcome.DONE and (r.started, r.ended) == (17.0, 18.0)
    else:
        assert r.outcome is Outcome.FAILED and b"unreadable result" in r.stderr
