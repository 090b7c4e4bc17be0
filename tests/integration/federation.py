"""Several managers on loopback, each with its own state dir, store, port and workers, joined as peers.

``Federation.start(["A", "B", "C"])`` starts the managers one after the other: each makes a peer
token for every manager started before it, which then connects out to it, so every pair has one
link (the later manager listens, the earlier one connects out, as a manager behind NAT would).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from tests.integration.conftest import Cluster, wait_until


class Federation:
    def __init__(self, root: Path, **peer_options: Any) -> None:
        self.root = root
        self.managers: dict[str, Cluster] = {}
        self.options = {"timeout": "3s", "start_timeout": "60s", "summary_interval": "0.3s", **peer_options}
        self.urls: dict[str, str] = {}  # what a manager's peers connect to (a proxy's address, in some tests)

    def config(self, name: str, later: dict[str, Path]) -> Path:
        """The config of manager ``name``: a [peers.X] for every other; with url for those in ``later``."""
        lines = []
        for other in self.names:
            if other == name:
                continue
            lines.append(f"[peers.{other}]")
            lines.append(f'user = "fed-{other.lower()}"')
            for k, v in self.options.items():
                lines.append(f"{k} = {v!r}".replace("'", '"'))
            if other in later:
                lines.append(f'url = "{self.urls[other]}"')
                lines.append(f'token_file = "{later[other]}"')
            lines.append("")
        path = self.root / f"{name}.toml"
        path.write_text("\n".join(lines))
        return path

    def start(self, names: list[str], *, url_of: Any = None) -> None:
        """Start the managers, the last first; each earlier one connects out to every later one."""
        self.names = names
        tokens: dict[str, dict[str, Path]] = {n: {} for n in names}  # who -> {peer it connects to: token file}
        for i, name in enumerate(reversed(names)):
            c = self.managers[name] = Cluster(self._dir(name))
            later = tokens[name]
            c.start_manager("--config", str(self.config(name, later)))
            self.urls[name] = url_of(name, c) if url_of is not None else c.url
            for earlier in names[:len(names) - 1 - i]:
                made = c.cli("token", "create", "--role", "peer", "--user", earlier)
                assert made.returncode == 0, made.stderr
                path = self.root / f"{earlier}-to-{name}.token"
                path.write_text(made.stdout.strip() + "\n")
                tokens[earlier][name] = path
        self.tokens = tokens

    def restart(self, name: str) -> None:
        c = self.managers[name]
        c.start_manager("--config", str(self.root / f"{name}.toml"))

    def _dir(self, name: str) -> Path:
        d = self.root / name
        d.mkdir()
        return d

    def peers(self, name: str) -> list[dict[str, Any]]:
        return list(self.managers[name].client().json("GET", "/v1/peers"))

    def wait_linked(self, timeout: float = 60) -> None:
        """Every manager has every link up and a summary from each peer."""
        def linked() -> bool:
            for name in self.names:
                rows = self.peers(name)
                if len(rows) != len(self.names) - 1 or not all(r["state"] == "up" and r["summary_at"]
                                                                for r in rows):
                    return False
            return True
        wait_until(linked, timeout, "every peer link to be up")

    def stop(self) -> None:
        for c in self.managers.values():
            c.stop()

    def dump_logs(self) -> str:
        return "\n".join(f"===== {n}\n{c.dump_logs()}" for n, c in self.managers.items())


def cli_ok(c: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    out = c.cli(*args)
    assert out.returncode == 0, out.stderr
    return out
