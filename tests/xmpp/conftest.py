"""A real Prosody for the session, managers configured against it, chat users in their own processes."""

from __future__ import annotations

import json
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import Cluster
from tests.prosody import Prosody, start_or_skip

MANAGER = "tiercel@localhost"
ACCOUNTS = {"tiercel": "tierpass", "alice": "alicepass", "bob": "bobpass", "carol": "carolpass",
            "mallory": "mallorypass", "w1": "w1pass", "w2": "w2pass", "w3": "w3pass"}
CHAT_CLIENT = Path(__file__).with_name("chat_client.py")


@pytest.fixture(scope="session")
def prosody() -> Iterator[Prosody]:
    server = start_or_skip(Prosody(ACCOUNTS))
    try:
        yield server
    finally:
        server.cleanup()


def write_config(prosody: Prosody, root: Path, **extra: Any) -> Path:
    """The manager's --config: [xmpp] against this Prosody; alice and bob may chat, w1..w3 may work."""
    (root / "xmpp.password").write_text(prosody.accounts["tiercel"] + "\n")
    (root / "xmpp.password").chmod(0o600)
    settings = {"jid": MANAGER, "password_file": "xmpp.password", "server": "127.0.0.1", "port": prosody.c2s,
                "tls": "starttls", "ca_file": str(prosody.ca), "workers": ["w1@localhost", "w2@localhost",
                                                                             "w3@localhost"],
                "rate_burst": 30, "rate_per_minute": 60, "ping_interval": 1, "ping_timeout": 2, **extra}
    lines = ["[xmpp]"] + [f"{k} = {json.dumps(v)}" for k, v in settings.items()]
    lines += ["", "[xmpp.users]", '"alice@localhost" = "alice"', '"bob@localhost" = "bob"', ""]
    path = root / "tiercel.toml"
    path.write_text("\n".join(lines))
    return path


class XmppCluster(Cluster):
    """A Cluster whose manager logs in to Prosody, and which can start XMPP workers."""

    prosody: Prosody

    def wait_online(self) -> None:
        log = self.logs / "manager.log"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if "XMPP gateway online" in log.read_text(errors="replace"):
                return
            time.sleep(0.05)
        raise AssertionError("the manager did not log in to Prosody\n" + self.dump_logs())

    def start_xmpp_worker(self, account: str, *args: str, name: str = "xw") -> subprocess.Popen[bytes]:
        pw = self.root / f"{account}.password"
        pw.write_text(self.prosody.accounts[account] + "\n")
        pw.chmod(0o600)
        log = open(self.logs / f"xmpp-worker-{name}-{len(self.workers)}.log", "ab")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "tiercel", "worker", "--xmpp", f"{account}@localhost", "--password-file", str(pw),
             "--manager-jid", MANAGER, "--xmpp-server", f"127.0.0.1:{self.prosody.c2s}", "--xmpp-ca",
             str(self.prosody.ca), "--name", name, "-v", *args],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        self.workers.append(proc)
        return proc


@pytest.fixture
def xmpp_cluster(prosody: Prosody, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[XmppCluster]:
    c = XmppCluster(tmp_path)
    c.prosody = prosody
    extra = getattr(request, "param", {})
    c.start_manager("--config", str(write_config(prosody, tmp_path, **extra.get("xmpp", {}))),
                    *extra.get("args", ()))
    try:
        c.wait_online()
        yield c
    finally:
        c.stop()
        rep = getattr(request.node, "rep_call", None)
        if rep is not None and rep.failed:
            print(c.dump_logs())
            print(prosody.log())


class ChatUser:
    """A chat client process, driven line by line, as a person at Gajim would."""

    def __init__(self, prosody: Prosody, account: str, resource: str = "chat") -> None:
        self.jid = f"{account}@localhost"
        self.proc = subprocess.Popen(
            [sys.executable, str(CHAT_CLIENT), f"{self.jid}/{resource}", prosody.accounts[account], "127.0.0.1",
             str(prosody.c2s), str(prosody.ca)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        threading.Thread(target=self._read, daemon=True).start()
        self.expect(lambda e: e["event"] == "ready", what="the chat client to log in")

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.events.put(json.loads(line))

    def command(self, **cmd: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()

    def say(self, body: str) -> None:
        self.command(op="send", to=MANAGER, body=body)

    def expect(self, pred: Callable[[dict[str, Any]], bool], timeout: float = 60, what: str = "an event"
               ) -> dict[str, Any]:
        """The first event not yet taken that matches; the others stay for later expectations."""
        for i, event in enumerate(self.seen):
            if pred(event):
                return self.seen.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{self.jid}: timed out waiting for {what}; unclaimed events: {self.seen}")
            try:
                event = self.events.get(timeout=left)
            except queue.Empty:
                continue
            if pred(event):
                return event
            self.seen.append(event)

    def reply(self, pattern: str = "", what: str = "") -> str:
        """The next message from the manager whose body matches ``pattern`` (a regex)."""
        event = self.expect(lambda e: e["event"] == "message" and e["from"].startswith(MANAGER)
                            and re.search(pattern, e["body"]) is not None, what=what or f"a reply like {pattern!r}")
        return str(event["body"])

    def received(self, wait: float) -> list[str]:
        """Bodies of the messages from the manager not yet taken, and of those arriving within ``wait`` s."""
        deadline = time.monotonic() + wait
        while (left := deadline - time.monotonic()) > 0:
            try:
                self.seen.append(self.events.get(timeout=left))
            except queue.Empty:
                break
        return [str(e["body"]) for e in self.seen if e["event"] == "message" and e["from"].startswith(MANAGER)]

    def ask(self, body: str, pattern: str = "") -> str:
        self.say(body)
        return self.reply(pattern, what=f"the answer to {body!r}")

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.command(op="quit")
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def chat(prosody: Prosody) -> Iterator[Callable[..., ChatUser]]:
    users: list[ChatUser] = []

    def open_chat(account: str, resource: str = "chat") -> ChatUser:
        user = ChatUser(prosody, account, resource)
        users.append(user)
        return user

    try:
        yield open_chat
    finally:
        for u in users:
            u.close()


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    rep = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, "rep_" + rep.when, rep)
