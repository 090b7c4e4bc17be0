"""The manager's state directory: private to its owner, and with room to write.

It holds every user's job descriptions, environments (secrets passed with --env among
them) and outputs, and the tokens. So the directory is 0700 and every file in it 0600,
whatever the umask; a directory made by an older version, or by hand, is mended at
start-up and the mending said once. SQLite gives its WAL and shared-memory files the
mode of the database file, so creating that file 0600 first keeps them private too.
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import stat
from pathlib import Path

log = logging.getLogger("tiercel.manager")

DIR_MODE = 0o700
FILE_MODE = 0o600
# Below this much free space new work is refused: what is accepted must still find room
# for its results, and the store needs some to start at all.
DISK_RESERVE = 8 * 1024 * 1024


def secure(state_dir: Path) -> list[str]:
    """Make ``state_dir`` (created if missing) and what is directly in it private; what was mended."""
    state_dir.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    mended: list[str] = []
    _mend(state_dir, DIR_MODE, mended)
    for entry in os.scandir(state_dir):
        if entry.is_symlink():
            continue
        if entry.is_dir():
            _mend(Path(entry.path), DIR_MODE, mended)
        elif entry.is_file():
            _mend(Path(entry.path), FILE_MODE, mended)
    db = state_dir / "tiercel.db"
    if not db.exists():
        os.close(os.open(db, os.O_WRONLY | os.O_CREAT, FILE_MODE))
    if mended:
        log.warning("state dir %s was readable by other accounts; made private (0700, files 0600): %s",
                    state_dir, ", ".join(mended))
    return mended


def _mend(path: Path, mode: int, mended: list[str]) -> None:
    current = stat.S_IMODE(path.stat().st_mode)
    if current & 0o077:
        os.chmod(path, mode)
        mended.append(f"{path.name} was {current:o}")


def disk_full(state_dir: Path) -> str | None:
    """Why no new work can be accepted for lack of space, or None."""
    try:
        st = os.statvfs(state_dir)
    except OSError:
        return None
    free = st.f_bavail * st.f_frsize
    if free >= DISK_RESERVE:
        return None
    return (f"the manager's disk is full: {free // 1024} KiB free where its state lives ({state_dir}), "
            f"at least {DISK_RESERVE // (1024 * 1024)} MiB are needed; free some space there and try again")


def state_dir_in_use(state_dir: Path) -> bool:
    """Whether a manager holds this state dir now (without taking it)."""
    try:
        with open(state_dir / "manager.lock") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(f, fcntl.LOCK_UN)
    except FileNotFoundError:
        pass
    return False


def bind(host: str, port: int) -> socket.socket:
    """Bind the listening socket up front, so a busy port is a clear error before anything starts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit this: without it a response written in two pieces waits
    # for the client's delayed ACK (40 ms a request).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock
