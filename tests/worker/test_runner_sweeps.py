"""The task runner with a sweep's entries (TIERCEL_ENTRY, the argument) and output files, against real processes."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from tiercel.core.model import JobId, JobSpec, Outcome, Report, TaskRef
from tiercel.core.ranges import IndexRanges
from tiercel.worker.runner import Handle, run_task, task_argv

ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
JOB = JobId(7)


def spec(command: str | tuple[str, ...], **kw: object) -> JobSpec:
    argv = (command,) if isinstance(command, str) else command
    return JobSpec(command=argv, indexes=IndexRanges.of_size(100), shell=isinstance(command, str),
                   **kw)  # type: ignore[arg-type]


def run(s: JobSpec, index: int = 3, entry: str | None = None, attempt: int = 1, max_output: int = 1 << 20) -> Report:
    return run_task(s, TaskRef(JOB, index, attempt, b"", entry), Handle(), base_env=ENV, max_output=max_output)


# ---- entries -------------------------------------------------------------------------------------


def test_the_entry_is_in_the_environment_and_where_the_index_would_go() -> None:
    entry = "it's a \"line\" with $HOME and  spaces\t"
    r = run(spec('printf "%s|%s|%s" "$1" "$TIERCEL_ENTRY" "$TIERCEL_TASK_INDEX"'), entry=entry)
    assert r.outcome is Outcome.DONE and r.stdout.decode() == f"{entry}|{entry}|3"
    argv = run(spec(("printf", "%s|")), entry="a b")
    assert argv.stdout == b"a b|"
    compound = run(spec('echo start; echo "$1"'), entry='{"x":1}')
    assert compound.stdout == b'start\n{"x":1}\n'
    # --no-index: the entry only in the environment
    quiet = run(spec('echo "$# $TIERCEL_ENTRY"', append_index=False), entry="e")
    assert quiet.stdout == b"0 e\n"


def test_without_an_entry_the_index_is_the_argument_and_no_entry_variable() -> None:
    r = run(spec('echo "$1 ${TIERCEL_ENTRY-unset}"'))
    assert r.stdout == b"3 unset\n"
    assert task_argv(spec(("run",)), 5, "") == ["run", ""]  # an empty entry is an empty argument


# ---- output files --------------------------------------------------------------------------------


def test_a_file_per_task_relative_to_the_task_directory_made_as_needed(tmp_path: Path) -> None:
    s = spec('echo "out $1"; echo "err $1" >&2', cwd=str(tmp_path), stdout="out/{index:03}.txt",
             stderr="err/{job}-{index}.txt")
    for index in (3, 12):
        r = run(s, index)
        assert r.outcome is Outcome.DONE
        assert r.stdout == f"out {index}\n".encode() and r.stderr == f"err {index}\n".encode()  # the manager's copy
    assert (tmp_path / "out" / "003.txt").read_text() == "out 3\n"
    assert (tmp_path / "out" / "012.txt").read_text() == "out 12\n"
    assert (tmp_path / "err" / "7-12.txt").read_text() == "err 12\n"
    # a retry writes its task's file afresh
    run(spec("echo again", cwd=str(tmp_path), stdout="out/{index:03}.txt"), 3, attempt=2)
    assert (tmp_path / "out" / "003.txt").read_text() == "again 3\n"


def test_the_file_has_all_of_the_output_where_the_manager_keeps_the_first_part(tmp_path: Path) -> None:
    s = spec("head -c 300000 /dev/zero | tr '\\0' x", append_index=False, cwd=str(tmp_path), stdout="big.{index}")
    r = run(s, max_output=1000)
    assert r.outcome is Outcome.DONE
    assert len(r.stdout) < 1100 and r.stdout.startswith(b"x" * 1000) and b"truncated" in r.stdout
    assert (tmp_path / "big.3").read_bytes() == b"x" * 300000


def test_absolute_and_home_paths(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    run(spec("echo a", stdout=str(tmp_path / "abs" / "{index}.out")))
    assert (tmp_path / "abs" / "3.out").read_text() == "a 3\n"
    old = os.environ.get("HOME")
    os.environ["HOME"] = str(home)
    try:
        run(spec("echo h", stdout="~/h/{index}"))
    finally:
        if old is None:
            del os.environ["HOME"]
        else:
            os.environ["HOME"] = old
    assert (home / "h" / "3").read_text() == "h 3\n"


def test_one_file_per_job_gets_a_block_per_task_in_the_order_they_end(tmp_path: Path) -> None:
    s = spec('printf "out %s" "$1"; [ "$1" = 2 ] && exit 4; true', cwd=str(tmp_path), stdout="job-{job}.log")
    for index in (5, 2, 9):
        run(s, index)
    assert (tmp_path / "job-7.log").read_text() == (
        "==> task 5 (attempt 1, done, exit 0) <==\nout 5\n"
        "==> task 2 (attempt 1, failed, exit 4) <==\nout 2\n"
        "==> task 9 (attempt 1, done, exit 0) <==\nout 9\n")


def test_both_streams_in_one_file_when_the_patterns_are_the_same(tmp_path: Path) -> None:
    s = spec("echo one; echo two >&2; echo three", append_index=False, cwd=str(tmp_path),
             stdout="both/{index}", stderr="both/{index}")
    r = run(s)
    assert (r.stdout, r.stderr) == (b"one\nthree\n", b"two\n")
    assert sorted((tmp_path / "both" / "3").read_text().splitlines()) == ["one", "three", "two"]
    s = spec("echo one; echo two >&2", append_index=False, cwd=str(tmp_path), stdout="all.log", stderr="all.log")
    run(s, 4)
    text = (tmp_path / "all.log").read_text()
    assert text.startswith("==> task 4 (attempt 1, done, exit 0) <==\n") and text.count("==>") == 1
    assert sorted(text.splitlines()[1:]) == ["one", "two"]


def test_concurrent_tasks_never_interleave_their_blocks(tmp_path: Path) -> None:
    s = spec('i=0; while [ $i -lt 200 ]; do echo "line $1 $i"; i=$((i+1)); done', cwd=str(tmp_path),
             stdout="all.log")
    threads = [threading.Thread(target=run, args=(s, index)) for index in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    blocks = (tmp_path / "all.log").read_text().split("==> task ")[1:]
    assert len(blocks) == 8
    for block in blocks:
        head, *lines = block.rstrip("\n").split("\n")
        index = head.split()[0]
        assert lines == [f"line {index} {i}" for i in range(200)]


def test_a_file_that_cannot_be_opened_fails_the_task_before_it_starts(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("a file, not a directory")
    marker = tmp_path / "ran"
    r = run(spec(f"touch {marker}", cwd=str(tmp_path), stdout="taken/{index}.txt"))
    assert r.outcome is Outcome.FAILED and not marker.exists()
    assert b"cannot write its stdout to 'taken/3.txt'" in r.stderr


@pytest.mark.skipif(not Path("/dev/full").exists() and not os.environ.get("CI"),  # in CI: run, or fail
                    reason="needs /dev/full")
def test_a_write_that_fails_fails_the_task_and_says_why(tmp_path: Path) -> None:
    r = run(spec("echo lost", stdout="/dev/full"))  # one file for the job: appended at the end
    assert r.outcome is Outcome.FAILED and r.exit_code == 0 and r.stdout == b"lost 3\n"
    assert b"could not write the stdout to '/dev/full'" in r.stderr
