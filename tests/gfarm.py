"""A real Gfarm file system on loopback for the data tests, started by scripts/services/gfarm_up.sh.

One metadata server and three file-system nodes (gfnode1..3, three hosts to Gfarm) serve a whole
test session; each test works in a directory of its own in Gfarm (``workdir``). In CI (``CI`` set)
a Gfarm that cannot be installed or started fails the tests; elsewhere they are skipped, saying why.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ROOT / "scripts" / "services"
NODES = ("gfnode1", "gfnode2", "gfnode3")


class GfarmUnavailable(Exception):
    pass


def _free_port(base: int) -> int:
    """A port from ``base`` up that nothing listens on, with the three after it free too (the gfsds)."""
    for port in range(base, base + 400, 10):
        try:
            for p in range(port, port + 4):
                with socket.socket() as s:
                    s.bind(("0.0.0.0", p))
        except OSError:
            continue
        return port
    raise GfarmUnavailable(f"no free ports from {base} to {base + 400}")


class Gfarm:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="tiercel-gfarm-"))
        self.dir.chmod(0o755)
        self.port = _free_port(10601)
        self.node_port = _free_port(self.port + 10)
        self.nodes = NODES

    def env(self) -> dict[str, str]:
        return {**os.environ, "GF_DIR": str(self.dir), "GF_PORT": str(self.port),
                "GF_NODE_PORT": str(self.node_port), "GF_NODES": str(len(self.nodes)),
                "GFARM_CONFIG_FILE": str(self.dir / "etc" / "gfarm2.conf")}

    def start(self) -> None:
        if os.geteuid() != 0:
            raise GfarmUnavailable("starting Gfarm needs root (gfsd switches to each authenticated user)")
        try:
            out = subprocess.run(["bash", str(SERVICES / "gfarm_up.sh")], env=self.env(), capture_output=True,
                                 text=True, timeout=900)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise GfarmUnavailable(f"gfarm_up.sh did not run: {exc}") from None
        if out.returncode != 0:
            raise GfarmUnavailable(f"gfarm_up.sh failed ({out.returncode}): {(out.stdout + out.stderr)[-2000:]}")

    def cleanup(self) -> None:
        subprocess.run(["bash", str(SERVICES / "gfarm_down.sh"), "--purge"], env=self.env(), capture_output=True,
                       timeout=120)
        shutil.rmtree(self.dir, ignore_errors=True)

    def run(self, *argv: str, check: bool = True, input: bytes | None = None) -> subprocess.CompletedProcess[str]:
        out = subprocess.run(list(argv), env=self.env(), capture_output=True, text=True, timeout=120,
                             input=None if input is None else input.decode())
        if check and out.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} failed ({out.returncode}): {out.stderr}")
        return out

    def node(self, action: str, n: int) -> None:
        """Start, stop or kill (a crash) node n's gfsd."""
        self.run("bash", str(SERVICES / "gfarm_node.sh"), action, str(n))

    @contextlib.contextmanager
    def metadata_stopped(self) -> Iterator[None]:
        """gfmd out of reach, its metadata kept: stopped (SIGSTOP, by its PID) inside, going on after (SIGCONT).
        Its port still accepts connections; nothing answers on them."""
        pid = int((self.dir / "run" / "gfmd.pid").read_text().split()[0])
        os.kill(pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(pid, signal.SIGCONT)

    def put(self, path: str, data: bytes, *nodes: str) -> None:
        """Register ``data`` as the Gfarm file ``path`` on the first node, replicated to the others."""
        with tempfile.NamedTemporaryFile() as f:
            f.write(data)
            f.flush()
            self.run("gfreg", "-h", nodes[0], f.name, path)
        for node in nodes[1:]:
            self.run("gfrep", "-q", "-D", node, path)

    def where(self, *paths: str) -> dict[str, set[str]]:
        """Each path's replica hosts, by gfwhere."""
        from tiercel.data.gfarm import parse_where

        out = self.run("gfwhere", *paths, check=False)
        return {p: set(h) for p, h in parse_where(out.stdout, list(paths)).items()}

    def read(self, path: str) -> bytes:
        out = subprocess.run(["gfexport", path], env=self.env(), capture_output=True, timeout=60)
        if out.returncode != 0:
            raise AssertionError(f"gfexport {path} failed: {out.stderr.decode(errors='replace')}")
        return out.stdout

    def workdir(self) -> str:
        """A new directory of one test's own, writable by all (tasks run as whoever runs the worker)."""
        path = f"/t/{uuid.uuid4().hex[:12]}"
        self.run("gfmkdir", "-p", path)
        self.run("gfchmod", "1777", path)
        return path


def start_or_skip(gfarm: Gfarm) -> Gfarm:
    """Start it; without Gfarm the tests fail in CI and are skipped elsewhere, saying why."""
    try:
        gfarm.start()
    except GfarmUnavailable as exc:
        gfarm.cleanup()
        if os.environ.get("CI"):
            pytest.fail(f"Gfarm is required in CI and could not be started: {exc}", pytrace=False)
        pytest.skip(f"Gfarm is not available here: {exc}")
    return gfarm


def gfarm_command_exists() -> bool:
    return shutil.which("gfwhere") is not None
