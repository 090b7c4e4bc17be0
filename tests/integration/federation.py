"""Several managers on loopback, each with its own state dir, store, port and workers, joined as peers.

``Federation.start(["A", "B", "C"])`` starts the managers one after the other: each makes a peer
token for every manager started before it, which then connects out to it, so every pair has one
link (the later manager listens, the earlier one connects out, as a manager behind NAT would).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.integration.conftest import Cluster, _read_json, wait_until
from tests.netns import Netns


class NsCluster(Cluster):
    """A manager and its workers inside a network namespace, listening on the namespace's address."""

    def __init__(self, root: Path, ns: Netns) -> None:
        super().__init__(root)
        self.ns = ns

    def start_manager(self, *extra: str) -> None:
        (self.state / "manager.json").unlink(missing_ok=True)
        log = open(self.logs / "manager.log", "ab")  # noqa: SIM115  (the child keeps it)
        self.manager = subprocess.Popen(
            [*self.ns.prefix(), sys.executable, "-m", "tiercel", "manager", "--listen", f"0.0.0.0:{self.port}",
             "--state-dir", str(self.state), "--worker-timeout", "2", "--heartbeat", "0.5",
             "--reconnect-grace", "5", "-v", *extra],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        info = wait_until(lambda: _read_json(self.state / "manager.json"), 30, "the manager to listen")
        self.port = int(info["url"].rsplit(":", 1)[1])
        self.url = f"http://{self.ns.ip}:{self.port}"  # from the host; its workers use the namespace's loopback

    def start_worker(self, *args: str, name: str = "w", env: dict[str, str] | None = None
                     ) -> subprocess.Popen[bytes]:
        log = open(self.logs / f"worker-{name}-{len(self.workers)}.log", "ab")  # noqa: SIM115
        proc = subprocess.Popen(
            [*self.ns.prefix(), sys.executable, "-m", "tiercel", "worker", "--manager", f"http://127.0.0.1:{self.port}",
             "--name", name,
             "--token-file", str(self.state / "worker.token"), "-v", *args],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        self.workers.append(proc)
        return proc


class Proxy:
    """tests/netem_proxy.py in a process of its own: a fixed delay each way between two addresses."""

    def __init__(self, root: Path, to: str, delay: float) -> None:
        self.port_file = root / f"proxy-{to.replace(':', '-')}.port"
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.netem_proxy", "--listen", "127.0.0.1:0",
                                      "--to", to, "--delay", str(delay), "--port-file", str(self.port_file)],
                                     start_new_session=True)
        self.port = int(wait_until(lambda: self.port_file.exists() and self.port_file.read_text(), 30,
                                   "the proxy to listen"))
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


class Federation:
    def __init__(self, root: Path, **peer_options: Any) -> None:
        self.root = root
        self.managers: dict[str, Cluster] = {}
        self.namespaces: dict[str, Netns] = {}  # managers that run in a namespace of their own
        self.proxies: list[Proxy] = []
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
            ns = self.namespaces.get(name)
            c = self.managers[name] = NsCluster(self._dir(name), ns) if ns is not None else Cluster(self._dir(name))
            later = tokens[name]
            c.start_manager("--config", str(self.config(name, later)))
            self.urls[name] = url_of(name, c) if url_of is not None else c.url
            for earlier in names[:len(names) - 1 - i]:
                made = c.cli("token", "create", "--role", "peer", "--user", earlier)
                assert made.returncode == 0, made.stderr
                path = self.root / f"{earlier}-to-{name}.token"
                path.write_text(made.stdout.strip() + "\n")
                path.chmod(0o600)
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
        for p in self.proxies:
            p.stop()

    def dump_logs(self) -> str:
        return "\n".join(f"===== {n}\n{c.dump_logs()}" for n, c in self.managers.items())


def cli_ok(c: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    out = c.cli(*args)
    assert out.returncode == 0, out.stderr
    return out
