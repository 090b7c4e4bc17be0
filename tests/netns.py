"""Network namespaces joined to this host by veth pairs, made and removed by the test that uses them.

A link is cut inside the namespace (its end of the pair set down), never by removing the host's
address or route: an ``unreachable`` route for the whole test subnet, added first, keeps the
test's traffic from falling through to the default route while a link is down. Everything made
is removed by name at the end. In CI (``CI`` set) a machine without ``ip`` or root fails the tests;
elsewhere they are skipped, saying why.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

SUBNET = "10.250.0.0/16"


def need_netns() -> None:
    why = None
    if shutil.which("ip") is None:
        why = "the 'ip' command (iproute2) is not installed: apt-get install iproute2"
    elif os.geteuid() != 0:
        why = "network namespaces need root"
    if why is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{why} (CI is set: the federation's cut-link tests must run)", pytrace=False)
    pytest.skip(why)


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=30)


class Netns:
    """One namespace ``tcfed{n}`` with one veth pair: the host's end 10.250.n.1, the namespace's 10.250.n.2."""

    def __init__(self, n: int) -> None:
        self.name = f"tcfed{n}"
        self.host_if, self.ns_if = f"tcf{n}h", f"tcf{n}n"
        self.host_ip, self.ip = f"10.250.{n}.1", f"10.250.{n}.2"
        self._route_added = False

    def up(self) -> Netns:
        if SUBNET not in _ip("route", "show", "type", "unreachable").stdout:
            _ip("route", "add", "unreachable", SUBNET, "metric", "4096")
            self._route_added = True
        self.down()  # left over from an interrupted run
        _ip("netns", "add", self.name)
        _ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if)
        _ip("link", "set", self.ns_if, "netns", self.name)
        _ip("addr", "add", f"{self.host_ip}/30", "dev", self.host_if)
        _ip("link", "set", self.host_if, "up")
        self.exec_ip("addr", "add", f"{self.ip}/30", "dev", self.ns_if)
        self.exec_ip("link", "set", self.ns_if, "up")
        self.exec_ip("link", "set", "lo", "up")
        return self

    def exec_ip(self, *args: str) -> None:
        _ip("netns", "exec", self.name, "ip", *args)

    def prefix(self) -> list[str]:
        """What runs a command inside the namespace."""
        return ["ip", "netns", "exec", self.name]

    def cut(self) -> None:
        self.exec_ip("link", "set", self.ns_if, "down")

    def heal(self) -> None:
        self.exec_ip("link", "set", self.ns_if, "up")

    def down(self) -> None:
        _ip("netns", "del", self.name, check=False)
        _ip("link", "del", self.host_if, check=False)

    def remove(self) -> None:
        self.down()
        if self._route_added:
            _ip("route", "del", "unreachable", SUBNET, check=False)
