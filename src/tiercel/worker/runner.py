"""Running one task as a subprocess, with its output captured and its walltime enforced.

Each task runs in its own session (process group), so a walltime or a cancel
kills everything the task started, not only the shell that started it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field

from tiercel.core.model import JobSpec, Outcome, Report, TaskRef

KILL_GRACE = 3.0  # seconds between SIGTERM and SIGKILL when a task is cancelled
TRUNCATED = b"\n[tiercel: output truncated]\n"


@dataclass
class Handle:
    """Lets another thread cancel a running task."""

    proc: subprocess.Popen[bytes] | None = None
    cancelled: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def cancel(self) -> None:
        with self.lock:
            self.cancelled = True
            proc = self.proc
        if proc is not None and proc.poll() is None:
            _signal_group(proc.pid, signal.SIGTERM)
            timer = threading.Timer(KILL_GRACE, _signal_group, (proc.pid, signal.SIGKILL))
            timer.daemon = True
            timer.start()


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def task_argv(spec: JobSpec, index: int) -> list[str]:
    if spec.shell:
        script = spec.command[0] + (' "$@"' if spec.append_index else "")
        return ["/bin/sh", "-c", script, "tiercel-task"] + ([str(index)] if spec.append_index else [])
    argv = [os.path.expanduser(spec.command[0]), *spec.command[1:]]
    return [*argv, str(index)] if spec.append_index else argv


def task_env(base: dict[str, str], spec: JobSpec, ref: TaskRef) -> dict[str, str]:
    env = dict(base)
    env.update(spec.env)
    env["TIERCEL_JOB_ID"] = str(ref.job)
    env["TIERCEL_TASK_INDEX"] = str(ref.index)
    env["TIERCEL_ATTEMPT"] = str(ref.attempt)
    return env


def _cap(data: bytes, limit: int) -> bytes:
    return data if len(data) <= limit else data[:limit] + TRUNCATED


def run_task(spec: JobSpec, ref: TaskRef, handle: Handle, *, base_env: dict[str, str],
             max_output: int, default_cwd: str | None = None) -> Report:
    started = time.time()
    cwd = os.path.expanduser(spec.cwd) if spec.cwd else default_cwd
    try:
        with handle.lock:
            if handle.cancelled:
                return Report(ref.job, ref.index, ref.attempt, Outcome.CANCELLED, None, started, started)
            proc = subprocess.Popen(
                task_argv(spec, ref.index), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, cwd=cwd, env=task_env(base_env, spec, ref), start_new_session=True,
            )
            handle.proc = proc
    except OSError as exc:
        msg = f"tiercel: cannot start {spec.command[0]!r}: {exc.strerror or exc}\n".encode()
        return Report(ref.job, ref.index, ref.attempt, Outcome.FAILED, 127, started, time.time(), b"", msg)
    outcome = None
    try:
        out, err = proc.communicate(timeout=spec.walltime)
    except subprocess.TimeoutExpired:
        _signal_group(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        outcome = Outcome.TIMEOUT
        err += f"\ntiercel: killed after its walltime of {spec.walltime:g}s\n".encode()
    ended = time.time()
    code = proc.returncode
    if outcome is None:
        outcome = Outcome.CANCELLED if handle.cancelled else Outcome.DONE if code == 0 else Outcome.FAILED
    return Report(ref.job, ref.index, ref.attempt, outcome, code, started, ended,
                  _cap(out, max_output), _cap(err, max_output))


def run_cleanup(command: str, job: int, spec_env: tuple[tuple[str, str], ...], cwd: str | None,
                base_env: dict[str, str], timeout: float = 600.0) -> int | None:
    env = dict(base_env)
    env.update(spec_env)
    env["TIERCEL_JOB_ID"] = str(job)
    try:
        done = subprocess.run(["/bin/sh", "-c", command], env=env, cwd=os.path.expanduser(cwd) if cwd else None,
                              stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout,
                              start_new_session=True)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.returncode
