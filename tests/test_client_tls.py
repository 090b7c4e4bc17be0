"""How the client checks a manager's certificate (tiercel.client._tls_for)."""

from __future__ import annotations

import ssl

from tiercel.client import _tls_for


def test_an_https_manager_is_checked_against_the_systems_authorities() -> None:
    assert _tls_for("https://manager.example:8443") is True


def test_an_http_managers_client_trusts_no_authority_and_reads_no_bundle() -> None:
    ctx = _tls_for("http://127.0.0.1:8000")
    assert isinstance(ctx, ssl.SSLContext)
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname  # it would refuse, not trust
    assert ctx.cert_store_stats()["x509_ca"] == 0

