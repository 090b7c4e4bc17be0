"""A real Prosody on loopback for the XMPP tests, started by scripts/services/prosody_up.sh.

Each instance has its own directory and ports, so a test may stop and restart its own
server while the session's shared one keeps running. In CI (``CI`` set) a Prosody that
cannot be installed or started fails the tests; elsewhere they are skipped with the reason.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UP = ROOT / "scripts" / "services" / "prosody_up.sh"
DOWN = ROOT / "scripts" / "services" / "prosody_down.sh"


class ProsodyUnavailable(Exception):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Prosody:
    def __init__(self, accounts: dict[str, str]) -> None:
        # Prosody runs as user prosody: its directory must be reachable, so not under pytest's 0700 tmp.
        self.dir = Path(tempfile.mkdtemp(prefix="tiercel-prosody-"))
        self.dir.chmod(0o755)
        self.c2s = free_port()
        self.tls = free_port()
        self.accounts = dict(accounts)
        self.domain = "localhost"

    @property
    def ca(self) -> Path:
        return self.dir / "certs" / "localhost.crt"

    @property
    def config(self) -> Path:
        return self.dir / "prosody.cfg.lua"

    def env(self) -> dict[str, str]:
        return {**os.environ, "PROSODY_DIR": str(self.dir), "PROSODY_C2S_PORT": str(self.c2s),
                "PROSODY_TLS_PORT": str(self.tls), "PROSODY_SMACKS": "0",
                "PROSODY_ACCOUNTS": " ".join(f"{u}:{p}" for u, p in self.accounts.items())}

    def start(self) -> None:
        if os.geteuid() != 0 and shutil.which("prosodyctl") is None:
            raise ProsodyUnavailable("prosody is not installed and installing it needs root")
        try:
            out = subprocess.run(["bash", str(UP)], env=self.env(), capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ProsodyUnavailable(f"{UP.name} did not run: {exc}") from None
        if out.returncode != 0:
            raise ProsodyUnavailable(f"{UP.name} failed ({out.returncode}): {(out.stdout + out.stderr)[-2000:]}")

    def stop(self) -> None:
        subprocess.run(["bash", str(DOWN)], env=self.env(), capture_output=True, timeout=60)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def register(self, user: str, password: str) -> None:
        subprocess.run(["prosodyctl", "--config", str(self.config), "register", user, self.domain, password],
                       capture_output=True, timeout=60, check=True)
        self.accounts[user] = password

    def log(self) -> str:
        parts = []
        for name in ("prosody.err", "prosody.log"):
            path = self.dir / "run" / name
            if path.exists():
                parts.append(f"--- {name}\n{path.read_text(errors='replace')[-3000:]}")
        return "\n".join(parts)


def start_or_skip(prosody: Prosody) -> Prosody:
    """Start it; without Prosody the tests fail in CI and are skipped elsewhere, saying why."""
    try:
        prosody.start()
    except ProsodyUnavailable as exc:
        prosody.cleanup()
        if os.environ.get("CI"):
            pytest.fail(f"Prosody is required in CI and could not be started: {exc}", pytrace=False)
        pytest.skip(f"Prosody is not available here: {exc}")
    return prosody
