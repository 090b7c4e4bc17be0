"""Running one task as a subprocess, with its output captured and its walltime enforced.

Each task runs in its own session (process group), so a walltime or a cancel
kills everything the task started, not only the shell that started it.

Tasks are started with ``posix_spawn`` (vfork and exec in one call) and their
output is read with ``poll``, capped as it arrives: for the short tasks of large
arrays this costs the worker about a third less CPU than ``subprocess.Popen`` and
``communicate``.

A job with ``stdout``/``stderr`` file patterns also gets its output in files, whole
(the manager's copy stays capped): a task's own file (``out/{index}.txt``) is
written as the output arrives; the job's one file (no ``{index}``) gets each
task's output appended in one block when it ends, after a header line, under a
lock (in this process, and ``lockf`` for other processes on the file).
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import select
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field

from tiercel.core.model import JobSpec, Outcome, Report, TaskRef
from tiercel.jobspec.values import fill_output, output_parts, per_task
from tiercel.worker.spawn import Spawner

KILL_GRACE = 3.0  # seconds between SIGTERM and SIGKILL when a task is cancelled
TRUNCATED = b"\n[tiercel: output truncated]\n"
_READ = 65536


@dataclass
class Handle:
    """Lets another thread cancel a running task."""

    pid: int | None = None
    exited: bool = False
    cancelled: bool = False
    signalled: bool = False  # a signal was actually sent to a running task
    lock: threading.Lock = field(default_factory=threading.Lock)

    def cancel(self) -> None:
        with self.lock:
            self.cancelled = True
            pid = None if self.exited else self.pid
            self.signalled = pid is not None
        if pid is not None:
            _signal_group(pid, signal.SIGTERM)
            timer = threading.Timer(KILL_GRACE, self._kill_if_alive, (pid,))
            timer.daemon = True
            timer.start()

    def _kill_if_alive(self, pid: int) -> None:
        with self.lock:
            if not self.exited:
                _signal_group(pid, signal.SIGKILL)


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


# A command line that is more than one simple command, or that already uses its arguments.
_COMPOUND = re.compile(r"[;&|<>\n()`{}]|\$\(|\$[0-9@*#]|\$\{[0-9@*#]|\b(?:then|do|done|fi|esac)\b")


def task_argv(spec: JobSpec, index: int, entry: str | None = None) -> list[str]:
    """The argv of one task.

    The index goes last on the command line (Kestrel's ``~/runtask.sh 17``). A shell
    command line gets it appended when it is one simple command; in a compound one
    (``cd x && ./run.sh``) appending would reach only the last command, so there it
    is ``$1`` instead. ``TIERCEL_TASK_INDEX`` holds it in every case. A task of a
    sweep over data gets its entry there instead of its index.
    """
    arg = str(index) if entry is None else entry
    if spec.shell:
        script = spec.command[0]
        if not spec.append_index:
            return ["/bin/sh", "-c", script]
        if not _COMPOUND.search(script):
            script += ' "$@"'
        return ["/bin/sh", "-c", script, "tiercel-task", arg]
    argv = [os.path.expanduser(spec.command[0]), *spec.command[1:]]
    return [*argv, arg] if spec.append_index else argv


_TASK_VARS = ("TIERCEL_JOB_ID", "TIERCEL_TASK_INDEX", "TIERCEL_ATTEMPT", "TIERCEL_ENTRY")


def job_env(base: dict[str, str], spec: JobSpec) -> dict[str, str]:
    """What every task of the job sees: the worker's environment, the job's over it."""
    env = dict(base)
    env.update(spec.env)
    for name in _TASK_VARS:
        env.pop(name, None)
    return env


def task_vars(ref: TaskRef) -> dict[str, str]:
    """What is the task's own: its job, index, attempt (and entry), over the job's environment."""
    own = {"TIERCEL_JOB_ID": str(ref.job), "TIERCEL_TASK_INDEX": str(ref.index), "TIERCEL_ATTEMPT": str(ref.attempt)}
    if ref.entry is not None:
        own["TIERCEL_ENTRY"] = ref.entry
    return own


def task_env(base: dict[str, str], spec: JobSpec, ref: TaskRef) -> dict[str, str]:
    return {**job_env(base, spec), **task_vars(ref)}


_APPEND = threading.Lock()  # lockf locks are the process's: the slots of one worker take turns here


@dataclass
class OutputFile:
    """Where a stream's copy goes: the task's own file, written as the output arrives; or, for the
    job's one file (``job_fd``), a temporary file appended to it whole when the task ends."""

    path: str  # as the pattern made it, for messages
    fd: int
    job_fd: int | None = None
    error: str | None = None

    def write(self, data: bytes) -> None:
        if self.error is None:
            try:
                _write_all(self.fd, data)
            except OSError as exc:
                self.error = exc.strerror or str(exc)

    def append_to_job(self, ref: TaskRef, outcome: Outcome, code: int | None) -> None:
        """The task's block: a header line, then its output, ending with a newline."""
        if self.job_fd is None or self.error is not None:
            return
        header = f"==> task {ref.index} (attempt {ref.attempt}, {outcome.value}, exit {code}) <==\n".encode()
        try:
            with _APPEND:
                fcntl.lockf(self.job_fd, fcntl.LOCK_EX)
                try:
                    _write_all(self.job_fd, header)
                    os.lseek(self.fd, 0, os.SEEK_SET)
                    last = b"\n"
                    while chunk := os.read(self.fd, _READ * 16):
                        _write_all(self.job_fd, chunk)
                        last = chunk[-1:]
                    if last != b"\n":
                        _write_all(self.job_fd, b"\n")
                finally:
                    fcntl.lockf(self.job_fd, fcntl.LOCK_UN)
        except OSError as exc:
            self.error = exc.strerror or str(exc)

    def close(self) -> None:
        for fd in (self.fd, self.job_fd):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def open_outputs(spec: JobSpec, ref: TaskRef, cwd: str | None) -> dict[str, OutputFile] | str:
    """The files a task's stdout and stderr also go to (none unless its job asks), or why one cannot
    be opened. Relative paths are under the task's directory; missing directories are made."""
    files: dict[str, OutputFile] = {}
    for stream, pattern in (("stdout", spec.stdout), ("stderr", spec.stderr)):
        if pattern is None:
            continue
        if stream == "stderr" and pattern == spec.stdout:
            files[stream] = files["stdout"]  # both streams in one file
            continue
        parts = output_parts(pattern)
        path = pattern if isinstance(parts, str) else fill_output(parts, ref.job, ref.index)
        try:
            if isinstance(parts, str):
                raise ValueError(parts)
            full = os.path.join(cwd or os.getcwd(), os.path.expanduser(path))
            os.makedirs(os.path.dirname(full), exist_ok=True)
            if per_task(parts):
                files[stream] = OutputFile(path, os.open(full, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666))
            else:
                job_fd = os.open(full, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
                try:
                    fd, temp = tempfile.mkstemp(prefix="tiercel-output-")
                    os.unlink(temp)
                except OSError:
                    os.close(job_fd)
                    raise
                files[stream] = OutputFile(path, fd, job_fd)
        except (OSError, ValueError) as exc:
            _close(files)
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            return f"cannot write its {stream} to {path!r}: {why}"
    return files


class _Capture:
    """Reads a child's stdout and stderr until both close, keeping at most ``limit`` bytes of each
    (and copying all of it to the stream's output file, if it has one)."""

    def __init__(self, out_fd: int, err_fd: int, limit: int, files: dict[str, OutputFile] | None = None) -> None:
        self.fds = {out_fd: bytearray(), err_fd: bytearray()}
        self.out_fd, self.err_fd, self.limit = out_fd, err_fd, limit
        self.over = {out_fd: False, err_fd: False}
        files = files or {}
        self.files = {fd: files[stream] for fd, stream in ((out_fd, "stdout"), (err_fd, "stderr")) if stream in files}

    def pump(self, deadline: float | None) -> bool:
        """Read until both pipes close (True) or the deadline passes (False)."""
        poller = select.poll()
        for fd in self.fds:
            poller.register(fd, select.POLLIN)
        open_fds = set(self.fds)
        while open_fds:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic()) * 1000
            if wait is not None and wait <= 0:
                return False
            for fd, _ in poller.poll(wait):
                chunk = os.read(fd, _READ)
                if not chunk:
                    poller.unregister(fd)
                    open_fds.discard(fd)
                    continue
                copy = self.files.get(fd)
                if copy is not None:
                    copy.write(chunk)
                buf = self.fds[fd]
                if len(buf) <= self.limit:
                    buf += chunk
                else:
                    self.over[fd] = True
        return True

    def result(self, fd: int) -> bytes:
        data = bytes(self.fds[fd])
        return data[: self.limit] + TRUNCATED if self.over[fd] or len(data) > self.limit else data

    def close(self) -> None:
        for fd in self.fds:
            try:
                os.close(fd)
            except OSError:
                pass


_THREAD = threading.local()


def _spawner() -> Spawner:
    """This thread's spawner (a slot thread passes its own; others, e.g. tests, get one here)."""
    sp: Spawner | None = getattr(_THREAD, "spawner", None)
    if sp is None:
        sp = _THREAD.spawner = Spawner()
    return sp


def _failed(ref: TaskRef, started: float, code: int, message: str) -> Report:
    return Report(ref.job, ref.index, ref.attempt, Outcome.FAILED, code, started, time.time(), b"",
                  f"tiercel: {message}\n".encode())


def run_task(spec: JobSpec, ref: TaskRef, handle: Handle, *, base_env: dict[str, str],
             max_output: int, default_cwd: str | None = None, data_node: str | None = None,
             spawner: Spawner | None = None) -> Report:
    if not (spec.inputs or spec.outputs):
        return _run_task(spec, ref, handle, base_env=base_env, max_output=max_output, default_cwd=default_cwd,
                         spawner=spawner)
    from tiercel.core.data import wrote_line
    from tiercel.worker.staging import Staged

    started = time.time()
    staged = Staged(spec, ref)
    try:
        why = staged.fetch(data_node)
        if why is not None:  # given back, to run where its input can be read
            return Report(ref.job, ref.index, ref.attempt, Outcome.LOST, None, started, time.time(), b"",
                          f"tiercel: {why}\n".encode())
        report = _run_task(spec, ref, handle, base_env={**base_env, **staged.env(data_node)},
                           max_output=max_output, default_cwd=staged.dir,
                           spawner=spawner)  # the task runs among its files, unless it has a cwd
        if report.outcome is Outcome.DONE and spec.outputs:
            why = staged.put(data_node)
            if why is not None:
                report.outcome = Outcome.FAILED
                report.stderr += f"tiercel: {why}\n".encode()
            else:  # what it wrote, for 'tiercel logs --stderr'
                report.stderr += "".join(wrote_line(p, data_node) for p, _ in staged.outputs).encode()
        return report
    finally:
        staged.close()


def _run_task(spec: JobSpec, ref: TaskRef, handle: Handle, *, base_env: dict[str, str],
              max_output: int, default_cwd: str | None = None, spawner: Spawner | None = None) -> Report:
    started = time.time()
    argv = task_argv(spec, ref.index, ref.entry)
    cwd = os.path.expanduser(spec.cwd) if spec.cwd else default_cwd
    if cwd is not None:
        if not os.path.isdir(cwd):
            return _failed(ref, started, 127, f"cannot start {spec.command[0]!r}: no directory {cwd!r}")
        # posix_spawn cannot change directory on Python 3.11: a shell does, then becomes the task.
        argv = ["/bin/sh", "-c", 'cd -- "$0" && exec "$@"', cwd, *argv]
    with handle.lock:
        if handle.cancelled:
            return Report(ref.job, ref.index, ref.attempt, Outcome.CANCELLED, None, started, started)
        files = open_outputs(spec, ref, cwd) if spec.stdout is not None or spec.stderr is not None else {}
        if isinstance(files, str):
            return _failed(ref, started, 127, f"cannot start {spec.command[0]!r}: {files}")
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        try:
            sp = spawner or _spawner()
            handle.pid = sp.spawn(argv, sp.job_env(base_env, spec, job_env), task_vars(ref), out_w, err_w)
        except BaseException as exc:
            for fd in (out_r, out_w, err_r, err_w):
                os.close(fd)
            _close(files)
            if isinstance(exc, OSError):
                code = 126 if exc.errno in (errno.EACCES, errno.ENOEXEC) else 127
                return _failed(ref, started, code, f"cannot start {spec.command[0]!r}: {exc.strerror or exc}")
            if isinstance(exc, ValueError):  # e.g. a NUL byte in an argument or the environment
                return _failed(ref, started, 127, f"cannot start {spec.command[0]!r}: {exc}")
            raise
        os.close(out_w)
        os.close(err_w)
    pid = handle.pid
    capture = _Capture(out_r, err_r, max_output, files)
    deadline = None if spec.walltime is None else time.monotonic() + spec.walltime
    timed_out = False
    try:
        if not capture.pump(deadline):
            timed_out = True
            _signal_group(pid, signal.SIGKILL)
            capture.pump(time.monotonic() + 5)  # what it wrote before it was killed
        _, status, usage = os.wait4(pid, 0)  # the task's CPU time, its children's it waited for included
    finally:
        with handle.lock:
            handle.exited = True
        capture.close()
    ended = time.time()
    code = os.waitstatus_to_exitcode(status)
    err = capture.result(err_r)
    if timed_out:
        outcome = Outcome.TIMEOUT
        err += f"\ntiercel: killed after its walltime of {spec.walltime:g}s\n".encode()
    elif handle.signalled and code != 0:  # a task that finished just as the cancel came is done
        outcome = Outcome.CANCELLED
    else:
        outcome = Outcome.DONE if code == 0 else Outcome.FAILED
    if files:
        outcome, err = _finish_outputs(files, ref, outcome, code, err)
    return Report(ref.job, ref.index, ref.attempt, outcome, code, started, ended, capture.result(out_r), err,
                  cpu=round(usage.ru_utime + usage.ru_stime, 6))


def _finish_outputs(files: dict[str, OutputFile], ref: TaskRef, outcome: Outcome, code: int | None,
                    err: bytes) -> tuple[Outcome, bytes]:
    """Append to the job's files, close them all; a task whose output could not be written fails."""
    for stream, f in _each(files):
        f.append_to_job(ref, outcome, code)
        if f.error is not None:
            err += f"\ntiercel: could not write the {stream} to {f.path!r}: {f.error}\n".encode()
            if outcome is Outcome.DONE:
                outcome = Outcome.FAILED
    _close(files)
    return outcome, err


def _each(files: dict[str, OutputFile]) -> list[tuple[str, OutputFile]]:
    """Each file once: stdout and stderr may share one."""
    return [(stream, f) for stream, f in files.items() if stream == "stdout" or f is not files.get("stdout")]


def _close(files: dict[str, OutputFile]) -> None:
    for _, f in _each(files):
        f.close()


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
