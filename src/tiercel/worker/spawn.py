"""Starting a task's process: ``posix_spawnp`` from the C library, called without the GIL.

Python 3.11's ``os.posix_spawnp`` (and ``subprocess``) hold the GIL while the child is made and
until it has called ``exec``: the calling thread waits there (vfork), and so does every other
thread of the worker, the other slots and the event loop among them. With short tasks on a few
slots that is a large share of the time (a slot starting a task stalls the slot whose task just
ended). Called through ctypes, the C function runs with the GIL released.

One ``Spawner`` per slot thread builds its file actions once (stdin from /dev/null, stdout and
stderr from two descriptors of its own) and its attributes once (a new session; SIGPIPE and
SIGXFSZ back to their defaults, which Python ignores and a task must not inherit: ``yes | head``
would complain; no signal blocked). Each task puts its pipes' write ends on the slot's two
descriptors (``dup2``) and makes one C call.

Where the C library cannot be loaded this way (not glibc), ``os.posix_spawnp`` does the same work
with the GIL held.
"""

from __future__ import annotations

import ctypes
import os
import signal
import threading
from collections.abc import Callable, Sequence
from typing import Any

# Generous sizes for glibc's opaque posix_spawn types (80 and 336 bytes on x86-64 and arm64).
_FILE_ACTIONS_SIZE = 1024
_ATTR_SIZE = 1024
_SIGSET_SIZE = 128
# glibc's flags (spawn.h)
_SETSIGDEF = 0x04
_SETSIGMASK = 0x08
_SETSID = 0x80

_RESTORED = (signal.SIGPIPE, signal.SIGXFSZ)  # what Python ignores and subprocess restores
_OWN_MAX = 8  # room for a task's own variables after the job's environment


def _libc() -> ctypes.CDLL | None:
    # The C library the interpreter runs on (find_library would run ldconfig, a process, to find it)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if not hasattr(libc, "posix_spawn_file_actions_addopen") or not hasattr(libc, "gnu_get_libc_version"):
            return None
    except (OSError, TypeError):
        return None
    p, c, v = ctypes.POINTER, ctypes.c_char_p, ctypes.c_void_p
    libc.posix_spawnp.argtypes = [p(ctypes.c_int), c, v, v, p(c), p(c)]
    libc.posix_spawnp.restype = ctypes.c_int
    return libc


_LIBC = _libc()


class Spawner:
    """Starts processes with stdout and stderr on the write ends given; one per thread."""

    def __init__(self) -> None:
        self._null = _null()
        # Two descriptors this slot owns for its life: a task's pipes are put on them for its spawn,
        # /dev/null again after it (so the pipe closes when the task's own copy does).
        self._out = os.dup(self._null)
        self._err = os.dup(self._null)
        self._fa = self._attr = None
        self._spec: object = None
        self._base: dict[str, str] | None = None
        self._job_env: dict[str, str] = {}
        self._env: dict[str, str] | None = None  # the environment self._envp holds, encoded
        self._envp: Any = None
        self._env_len = 0
        if _LIBC is not None:
            self._fa = ctypes.create_string_buffer(_FILE_ACTIONS_SIZE)
            self._attr = ctypes.create_string_buffer(_ATTR_SIZE)
            libc = _LIBC
            _check(libc.posix_spawn_file_actions_init(self._fa))
            _check(libc.posix_spawn_file_actions_addopen(self._fa, 0, os.devnull.encode(), os.O_RDONLY, 0))
            _check(libc.posix_spawn_file_actions_adddup2(self._fa, self._out, 1))
            _check(libc.posix_spawn_file_actions_adddup2(self._fa, self._err, 2))
            _check(libc.posix_spawnattr_init(self._attr))
            default = ctypes.create_string_buffer(_SIGSET_SIZE)
            _check(libc.sigemptyset(default))
            for sig in _RESTORED:
                _check(libc.sigaddset(default, int(sig)))
            _check(libc.posix_spawnattr_setsigdefault(self._attr, default))
            empty = ctypes.create_string_buffer(_SIGSET_SIZE)
            _check(libc.sigemptyset(empty))
            _check(libc.posix_spawnattr_setsigmask(self._attr, empty))
            _check(libc.posix_spawnattr_setflags(self._attr, ctypes.c_short(_SETSID | _SETSIGDEF | _SETSIGMASK)))

    def job_env(self, base: dict[str, str], spec: object, make: Callable[[dict[str, str], Any], dict[str, str]]
                ) -> dict[str, str]:
        """The job's environment, made by ``make`` once for a run of tasks of one job (same object)."""
        if spec is not self._spec or base is not self._base:
            self._spec, self._base, self._job_env = spec, base, make(base, spec)
        return self._job_env

    def spawn(self, argv: Sequence[str], env: dict[str, str], own: dict[str, str], out_w: int, err_w: int) -> int:
        """Start ``argv`` (looked up on PATH) in a new session with ``env`` and the task's ``own`` variables
        over it; its pid. OSError as exec's; ValueError for a NUL byte in an argument or the environment,
        or an '=' in a variable's name. ``env``, the same object for many tasks, is encoded once."""
        if self._fa is None:
            return os.posix_spawnp(argv[0], list(argv), {**env, **own}, setsid=True, setsigdef=_RESTORED,
                                   setsigmask=(),
                                   file_actions=[(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                                                 (os.POSIX_SPAWN_DUP2, out_w, 1), (os.POSIX_SPAWN_DUP2, err_w, 2)])
        if env is not self._env:
            encoded = [_pair(k, v) for k, v in env.items()]
            self._envp = (ctypes.c_char_p * (len(encoded) + _OWN_MAX + 1))(*encoded)
            self._env, self._env_len = env, len(encoded)
        envp, n = self._envp, self._env_len
        if len(own) > _OWN_MAX:
            raise ValueError(f"at most {_OWN_MAX} variables of a task's own")
        for k, v in own.items():
            envp[n] = _pair(k, v)
            n += 1
        envp[n] = None
        args = [os.fsencode(a) for a in argv]
        if any(b"\0" in a for a in args):
            raise ValueError("embedded null byte in an argument")
        c_argv = (ctypes.c_char_p * (len(args) + 1))(*args, None)
        pid = ctypes.c_int()
        os.dup2(out_w, self._out, inheritable=False)
        os.dup2(err_w, self._err, inheritable=False)
        try:
            assert _LIBC is not None
            rc = _LIBC.posix_spawnp(ctypes.byref(pid), args[0], self._fa, self._attr, c_argv, envp)
        finally:
            os.dup2(self._null, self._out, inheritable=False)
            os.dup2(self._null, self._err, inheritable=False)
        if rc:
            raise OSError(rc, os.strerror(rc), argv[0])
        return pid.value

    def close(self) -> None:
        if _LIBC is not None and self._fa is not None and self._attr is not None:
            _LIBC.posix_spawn_file_actions_destroy(self._fa)
            _LIBC.posix_spawnattr_destroy(self._attr)
            self._fa = self._attr = None
        for fd in (self._out, self._err):
            os.close(fd)


_NULL: list[int] = []  # one /dev/null for every spawner of the process
_NULL_LOCK = threading.Lock()


def _null() -> int:
    with _NULL_LOCK:
        if not _NULL:
            _NULL.append(os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC))
        return _NULL[0]


def _pair(name: str, value: str) -> bytes:
    k, v = os.fsencode(name), os.fsencode(value)
    if b"\0" in k or b"\0" in v or b"=" in k or not k:
        raise ValueError(f"environment variable {name!r}: a name without '=' or NUL, a value without NUL")
    return k + b"=" + v


def _check(rc: int) -> None:
    if rc:
        raise OSError(rc, os.strerror(rc))
