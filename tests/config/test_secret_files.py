"""A file that holds a secret — a peer's token, the store's or an XMPP account's password — is refused
while other accounts can read or write it, by name and with the command that mends it; once private
it is read as before."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from tiercel.cli.main import cli
from tiercel.config import ConfigError, load
from tiercel.secretfiles import exposed

TABLES = {
    "peers.B.token_file": ('[peers.B]\nurl = "http://b:8750/"\ntoken_file = "secret"\nuser = "fed-b"\n'),
    "store.password_file": ('[store]\nurl = "postgresql://tiercel@db:5433/tiercel"\npassword_file = "secret"\n'),
    "xmpp.password_file": ('[xmpp]\njid = "t@example.org"\npassword_file = "secret"\n'),
}


@pytest.mark.parametrize("key", sorted(TABLES))
@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620])
def test_a_secret_file_others_can_reach_is_refused_by_name(tmp_path: Path, key: str, mode: int) -> None:
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    secret.chmod(mode)
    config = tmp_path / "tiercel.toml"
    config.write_text(TABLES[key])
    with pytest.raises(ConfigError) as refused:
        load(config)
    said = str(refused.value)
    assert key.rsplit(".", 1)[-1] in said and str(secret) in said, said
    assert f"mode {mode:04o}" in said and f"chmod 600 {secret}" in said, said
    secret.chmod(0o600)
    load(config)  # private: read as before


def test_an_xmpp_workers_password_file_others_can_read_is_refused(tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text("pw\n")
    pw.chmod(0o644)
    out = CliRunner().invoke(cli, ["worker", "--xmpp", "w1@example.org", "--password-file", str(pw)])
    assert out.exit_code == 2, out.output
    assert "password-file:" in out.output and "chmod 600" in out.output and "Traceback" not in out.output


def test_only_the_owners_bits_make_a_file_private(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_text("x")
    for mode in (0o600, 0o400, 0o700):
        f.chmod(mode)
        assert exposed(f) is None
    for mode in (0o601, 0o610, 0o660, 0o644):
        f.chmod(mode)
        assert exposed(f) is not None
    assert exposed(tmp_path / "missing") is None  # said by the caller as a missing file


def test_a_workers_token_file_others_can_read_is_refused(tmp_path: Path) -> None:
    token = tmp_path / "worker.token"
    token.write_text("tc_x\n")
    token.chmod(0o644)
    out = CliRunner().invoke(cli, ["worker", "--manager", "http://127.0.0.1:1", "--token-file", str(token)])
    assert out.exit_code == 2, out.output
    assert "token-file:" in out.output and f"chmod 600 {token}" in out.output and "Traceback" not in out.output
