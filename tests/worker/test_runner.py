"""The task runner, against real processes."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from tiercel.core.model import JobId, JobSpec, Outcome, TaskRef
from tiercel.core.ranges import IndexRanges
from tiercel.worker import runner, spawn
from tiercel.worker.runner import Handle, run_task, task_argv

REF = TaskRef(JobId(7), 3, 2)
ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}


def spec(command: str, **kw: object) -> JobSpec:
    return JobSpec(command=(command,), indexes=IndexRanges.of_size(10), shell=True, **kw)  # type: ignore[arg-type]


def run(s: JobSpec, handle: Handle | None = None,
        max_output: int = 1 << 20) -> tuple[Outcome, int | None, bytes, bytes]:
    r = run_task(s, REF, handle or Handle(), base_env=ENV, max_output=max_output)
    return r.outcome, r.exit_code, r.stdout, r.stderr


def test_output_environment_and_index_argument() -> None:
    outcome, code, out, err = run(spec('echo "$1 $TIERCEL_JOB_ID $TIERCEL_TASK_INDEX $TIERCEL_ATTEMPT $X"; echo e >&2',
                                       env=(("X", "x"),)))
    assert (outcome, code, out, err) == (Outcome.DONE, 0, b"3 7 3 2 x\n", b"e\n")


@pytest.mark.parametrize(
    ("command", "argv_tail"),
    [
        ("~/runtask.sh", ["~/runtask.sh \"$@\"", "tiercel-task", "3"]),
        ("python sim.py --fast", ["python sim.py --fast \"$@\"", "tiercel-task", "3"]),
        ("cd /x && ./run.sh", ["cd /x && ./run.sh", "tiercel-task", "3"]),
        ("./run.sh $1 > out.$1", ["./run.sh $1 > out.$1", "tiercel-task", "3"]),
    ],
)
def test_index_is_appended_only_to_a_simple_shell_command(command: str, argv_tail: list[str]) -> None:
    assert task_argv(spec(command), 3) == ["/bin/sh", "-c", *argv_tail]


def test_argv_without_shell_and_without_index() -> None:
    s = JobSpec(command=("printf", "%s|", "a b"), indexes=IndexRanges.of_size(1), append_index=False)
    assert run(s)[2] == b"a b|"


def test_exit_status_is_kept() -> None:
    assert run(spec("exit 5"))[:2] == (Outcome.FAILED, 5)


def test_missing_program() -> None:
    s = JobSpec(command=("/no/such/program",), indexes=IndexRanges.of_size(1))
    outcome, code, _, err = run(s)
    assert (outcome, code) == (Outcome.FAILED, 127) and b"cannot start '/no/such/program'" in err


def test_walltime_kills_the_whole_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "child"
    started = time.monotonic()
    outcome, _, out, err = run(spec(f"sleep 30 & echo $! > {pidfile}; echo before; wait", walltime=0.5))
    assert outcome is Outcome.TIMEOUT and out == b"before\n" and b"walltime of 0.5s" in err
    assert time.monotonic() - started < 10
    child = int(pidfile.read_text())
    time.sleep(0.2)
    assert not alive(child)  # the background sleep died with its group


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")  # a zombie waiting to be reaped is dead


def test_cancel_from_another_thread() -> None:
    handle = Handle()
    threading.Timer(0.3, handle.cancel).start()
    outcome, _, _, _ = run(spec("sleep 30"), handle)
    assert outcome is Outcome.CANCELLED


def test_cancelled_before_start_never_runs(tmp_path: Path) -> None:
    handle = Handle()
    handle.cancel()
    assert run(spec(f"touch {tmp_path}/ran"), handle)[0] is Outcome.CANCELLED
    assert not (tmp_path / "ran").exists()


def test_large_output_on_both_streams_is_capped_without_deadlock() -> None:
    outcome, _, out, err = run(spec("head -c 3000000 /dev/zero; head -c 3000000 /dev/zero >&2"), max_output=1000)
    assert outcome is Outcome.DONE
    assert out.startswith(b"\0" * 1000) and out.endswith(b"[tiercel: output truncated]\n") and len(out) < 1100
    assert len(err) < 1100


def test_working_directory(tmp_path: Path) -> None:
    assert run(spec("pwd", cwd=str(tmp_path)))[2] == f"{tmp_path}\n".encode()
    outcome, code, _, err = run(spec("pwd", cwd=str(tmp_path / "missing")))
    assert (outcome, code) == (Outcome.FAILED, 127) and b"cannot start" in err


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_no_descriptor_leaks_on_any_path() -> None:
    runner._spawner()  # this thread's spawner keeps three descriptors for its life
    before = open_fds()
    for _ in range(20):
        cancelled = Handle()
        cancelled.cancel()
        run(spec("true"), cancelled)
        run(spec("true", env=(("A", "x\0y"),)))  # refused by posix_spawn
        run(JobSpec(command=("/no/such",), indexes=IndexRanges.of_size(1)))
        run(spec("echo hi"))
    assert open_fds() == before


def test_nul_in_the_environment_is_a_failed_task_not_a_crash() -> None:
    outcome, code, _, err = run(spec("true", env=(("A", "x\0y"),)))
    assert (outcome, code) == (Outcome.FAILED, 127) and b"cannot start" in err


@pytest.fixture(params=["libc", "os"])
def spawner(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> spawn.Spawner:
    """A spawner calling the C library without the GIL, and one on os.posix_spawnp (where it cannot)."""
    if request.param == "os":
        monkeypatch.setattr(spawn, "_LIBC", None)
    elif spawn._LIBC is None:
        why = "this C library cannot be called through ctypes here (tasks start through os.posix_spawnp)"
        if os.environ.get("CI"):
            pytest.fail(f"{why}; CI runs on glibc, where it must", pytrace=False)
        pytest.skip(why)
    s = spawn.Spawner()
    request.addfinalizer(s.close)
    return s


def run_with(sp: spawn.Spawner, s: JobSpec) -> tuple[Outcome, int | None, bytes, bytes]:
    r = run_task(s, REF, Handle(), base_env=ENV, max_output=1 << 20, spawner=sp)
    return r.outcome, r.exit_code, r.stdout, r.stderr


def test_a_task_starts_with_sigpipe_and_sigxfsz_at_their_defaults(spawner: spawn.Spawner) -> None:
    # Python ignores both; a task that inherited that would see `yes | head -1` complain of a broken pipe
    outcome, _, out, err = run_with(spawner, spec("grep -E '^Sig(Ign|Blk)' /proc/self/status; yes | head -1"))
    fields = dict(line.split(":\t") for line in out.decode().splitlines() if ":\t" in line)
    ignored, blocked = int(fields["SigIgn"], 16), int(fields["SigBlk"], 16)
    assert outcome == Outcome.DONE and b"Broken pipe" not in err and err == b""
    assert not ignored & (1 << (13 - 1)) and not ignored & (1 << (25 - 1)) and blocked == 0


def test_each_spawner_runs_tasks_alike(spawner: spawn.Spawner) -> None:
    assert run_with(spawner, spec("echo $TIERCEL_TASK_INDEX $A; echo err >&2; exit 3", env=(("A", "a b"),))) == (
        Outcome.FAILED, 3, b"3 a b\n", b"err\n")
    outcome, code, _, err = run_with(spawner, JobSpec(command=("/no/such",), indexes=IndexRanges.of_size(1)))
    assert (outcome, code) == (Outcome.FAILED, 127) and b"/no/such" in err
    for env in ((("A", "x\0y"),), (("A=B", "x"),)):
        outcome, code, _, err = run_with(spawner, spec("true", env=env))
        assert (outcome, code) == (Outcome.FAILED, 127) and b"cannot start" in err
    # the job's environment is encoded once and reused: a task's own variables do not stay behind
    two = [run_task(spec("echo $TIERCEL_TASK_INDEX-${TIERCEL_ENTRY:-none}"), ref, Handle(), base_env=ENV,
                    max_output=1024, spawner=spawner).stdout
           for ref in (TaskRef(JobId(7), 1, 1, entry="e1"), TaskRef(JobId(7), 2, 1))]
    assert two == [b"1-e1\n", b"2-none\n"]
