"""XMPP settings and JID links that would stop or endanger the manager: refused with one line, nothing half-done."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tiercel.core.problems import Problem, SetupError
from tiercel.gateways.xmpp.config import parse
from tiercel.gateways.xmpp.jids import JidDirectory


@pytest.mark.parametrize(("server", "ok"), [("127.0.0.1", True), ("localhost", True), ("::1", True),
                                            ("xmpp.example.org", False), ("10.0.0.5", False)])
def test_plain_xmpp_only_on_loopback(server: str, ok: bool) -> None:
    found = parse({"xmpp": {"jid": "tiercel@example.org", "password": "x", "server": server, "tls": "plain"}})
    if ok:
        assert not isinstance(found, Problem)
    else:
        assert isinstance(found, Problem)
        assert "sends the password in clear" in found.message()


def test_a_password_file_that_is_not_text_is_one_problem(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_bytes(b"\xff\xfe\x00bad")
    secret.chmod(0o600)
    found = parse({"xmpp": {"jid": "tiercel@localhost", "password_file": str(secret)}})
    assert isinstance(found, Problem)
    assert "xmpp.password_file" in found.message() and "cannot be read" in found.message()


def test_a_damaged_links_file_is_a_setup_error(tmp_path: Path) -> None:
    (tmp_path / "xmpp-jids.json").write_text("{not json")
    with pytest.raises(SetupError, match="fix or remove it"):
        JidDirectory(tmp_path)


def test_a_link_that_cannot_be_written_is_not_made(tmp_path: Path) -> None:
    jids = JidDirectory(tmp_path)
    jids.link("ann@example.org", "ann")
    (tmp_path / "xmpp-jids.tmp").mkdir()  # the write of the next change fails
    with pytest.raises(OSError):
        jids.link("bob@example.org", "bob")
    with pytest.raises(OSError):
        jids.unlink("ann@example.org")
    assert jids.user_of("bob@example.org") is None
    assert jids.user_of("ann@example.org") == "ann"


@pytest.mark.integration
def test_the_manager_refuses_to_start_on_a_damaged_links_file(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "xmpp-jids.json").write_text("[1, 2")
    out = subprocess.run([sys.executable, "-m", "tiercel", "manager", "--listen", "127.0.0.1:0", "--state-dir",
                          str(state)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "xmpp-jids.json: cannot be read" in out.stderr and "Traceback" not in out.stderr
