"""/v1/workers: real workers and native sites' virtual workers, as the API reports them."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from tests.integration.conftest import Cluster, wait_until

pytestmark = pytest.mark.integration
FAKES = Path(__file__).resolve().parents[1] / "fixtures" / "fakebatch"


def test_a_native_sites_virtual_worker_has_no_last_seen(
        bare_cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A native site's virtual worker is no process that reports in: its last_seen is null, not 0
    (which 'tiercel workers' showed as decades ago); a real worker's is a recent time."""
    from tiercel.core.sites import site_of_worker

    monkeypatch.setenv("FAKEBATCH_STATE", str(tmp_path / "fakebatch.json"))
    config = tmp_path / "tiercel.toml"
    config.write_text(f'[sites.pbs]\nkind = "pbs"\npoll_interval = "0.5s"\npath = ["{FAKES}"]\n'
                      f'spool = "{tmp_path / "spool"}"\npython = "{sys.executable}"\n')
    bare_cluster.start_manager("--config", str(config))
    bare_cluster.start_worker("--slots", "1", name="real")
    with bare_cluster.client() as c:
        rows = wait_until(lambda: (rs := c.workers()) and len(rs) == 2 and rs, 30, "both workers")
    by_site = {site_of_worker(r["id"]): r for r in rows}
    assert by_site["pbs"]["last_seen"] is None and by_site["pbs"]["link"] == "site"
    assert abs(by_site[None]["last_seen"] - time.time()) < 60
    with bare_cluster.client() as c:
        schema = c.json("GET", "/openapi.json")["components"]["schemas"]["WorkerRow"]["properties"]["last_seen"]
    assert {"type": "null"} in schema["anyOf"] and "null" in schema["description"]
