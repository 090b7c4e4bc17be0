"""Gfarm's client commands, batched, and parsers of what they print (tested with real output).

One ``gfwhere`` and one ``gfls`` over many paths learn where a batch of files is and how big it is
(one process per file costs ~6 ms each here; a batch of 1,000 ~0.2 s). Each call has a time-out;
``GfarmError`` says why a call failed, ``Unreachable`` that the metadata server did not answer.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Sequence

BATCH = 500  # paths per command line
TIMEOUT = 60.0
WATCH_TIMEOUT = 10.0  # gfsched -M answers in milliseconds: a metadata server this slow is out of reach


class GfarmError(Exception):
    pass


class Unreachable(GfarmError):
    """The metadata server did not answer."""


def parse_where(text: str, paths: Sequence[str]) -> dict[str, list[str]]:
    """``gfwhere [-d -F] p1 p2`` → {path: hosts}; down hosts keep their ``-`` mark. One path prints its
    hosts alone; several print ``path:`` then the hosts, a blank line between. Paths gfwhere could not
    find are left out (it names them on stderr)."""
    lines = text.splitlines()
    if len(paths) == 1:
        hosts = lines[0].split() if lines and lines[0].strip() else None
        return {paths[0]: hosts} if hosts is not None else {}
    out: dict[str, list[str]] = {}
    current: str | None = None
    wanted = set(paths)
    for line in lines:
        if line.endswith(":") and line[:-1] in wanted:
            current = line[:-1]
            out[current] = []
        elif current is not None and line.strip():
            out[current] = line.split()
            current = None
    return out


def parse_sizes(text: str) -> dict[str, int]:
    """``gfls -ld p1 p2`` → {path: bytes}: mode, links, user, group, size, month, day, time, path."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split(None, 8)
        if len(parts) == 9 and parts[4].isdigit():
            out[parts[8]] = int(parts[4])
    return out


def parse_up(text: str) -> set[str]:
    """``gfsched -M``: the file-system nodes the metadata server sees up, one a line."""
    return {line.strip() for line in text.splitlines() if line.strip()}


def _run(argv: list[str], timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=os.environ.copy())
    except FileNotFoundError:
        raise GfarmError(f"{argv[0]} is not installed (Debian package gfarm-client)") from None
    except subprocess.TimeoutExpired:
        raise Unreachable(f"{argv[0]} did not answer within {timeout:g}s") from None
    err = out.stderr.strip()
    if out.returncode != 0 and ("metadata" in err or "connection refused" in err.lower() or "gfmd" in err
                                or "gfarm2.conf" in err or "authentication" in err):
        raise Unreachable(err.splitlines()[-1] if err else f"{argv[0]} failed ({out.returncode})")
    return out


def locate(paths: Sequence[str]) -> tuple[dict[str, tuple[frozenset[str], frozenset[str]]], dict[str, int]]:
    """Each path's replica hosts (all, and those on nodes that are down) and sizes, batched.

    A path left out does not exist."""
    where: dict[str, tuple[frozenset[str], frozenset[str]]] = {}
    sizes: dict[str, int] = {}
    for start in range(0, len(paths), BATCH):
        chunk = list(paths[start:start + BATCH])
        hosts = parse_where(_run(["gfwhere", "-d", "-F", *chunk]).stdout, chunk)
        for p, hs in hosts.items():
            every = frozenset(h.rstrip("-?") for h in hs if not h.endswith("?"))
            where[p] = (every, frozenset(h[:-1] for h in hs if h.endswith("-")))
        sizes.update(parse_sizes(_run(["gfls", "-ld", *[p for p in chunk if p in hosts]]).stdout) if hosts else {})
    return where, sizes


def nodes_up() -> set[str]:
    out = _run(["gfsched", "-M"], timeout=WATCH_TIMEOUT)
    if out.returncode != 0:
        raise Unreachable(out.stderr.strip() or "gfsched -M failed")
    return parse_up(out.stdout)


def replicate(path: str, node: str, size: int, rate: float | None = None) -> bool:
    """Make a replica of ``path`` on ``node``, and check it is there (gfrep exits 0 even when it copied
    nothing). With ``rate`` (bytes/s) the copy takes at least size/rate seconds: a bandwidth limit."""
    started = time.monotonic()
    _run(["gfrep", "-q", "-D", node, path], timeout=max(TIMEOUT, size / 1e6))
    if rate:
        time.sleep(max(0.0, size / rate - (time.monotonic() - started)))
    where, _ = locate([path])
    every, down = where.get(path, (frozenset(), frozenset()))
    return node in every and node not in down


def fetch(path: str, local: str, node: str | None) -> str | None:
    """Read ``path`` into the file ``local``, from ``node``'s replica when given; None, or why not."""
    argv = ["gfexport", *(["-h", node] if node else []), path]
    try:
        with open(local, "wb") as f:
            out = subprocess.run(argv, stdout=f, stderr=subprocess.PIPE, timeout=3600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot read gfarm://{path}: {exc}"
    if out.returncode != 0:
        why = out.stderr.decode(errors="replace").strip().splitlines()
        return f"cannot read gfarm://{path}{' on ' + node if node else ''}: {why[-1] if why else out.returncode}"
    return None


def store(local: str, path: str, node: str | None) -> str | None:
    """Put the file ``local`` into Gfarm as ``path`` (replacing it), on ``node`` when given; None, or why not."""
    subprocess.run(["gfrm", "-f", path], capture_output=True, timeout=TIMEOUT)
    argv = ["gfreg", *(["-h", node] if node else []), local, path]
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=3600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot write gfarm://{path}: {exc}"
    if out.returncode != 0:
        return f"cannot write gfarm://{path}: {out.stderr.strip() or out.returncode}"
    return None


def parse_hosts(text: str) -> set[str]:
    """``gfhost -l``: load, auth, arch, ncpu, HOST, port, ... → the hosts' names."""
    return {parts[4] for parts in (line.split() for line in text.splitlines()) if len(parts) >= 6}


def local_node() -> str | None:
    """This host's file-system node, when Gfarm knows one by this host's name (None without Gfarm)."""
    import shutil
    import socket

    if shutil.which("gfhost") is None:
        return None
    try:
        out = _run(["gfhost", "-l"], timeout=5)
    except GfarmError:
        return None
    hosts = parse_hosts(out.stdout)
    for name in (socket.gethostname(), socket.getfqdn()):
        if name in hosts:
            return name
    return None
