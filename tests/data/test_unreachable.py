"""Gfarm's metadata server out of reach (gfmd stopped, its metadata kept): jobs with Gfarm inputs
wait with the reason in ``tiercel explain``, the others run, and the waiting ones run once it is back."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from tests.data.conftest import DataCluster
from tests.gfarm import Gfarm
from tests.integration.conftest import wait_until

pytestmark = pytest.mark.integration


def test_jobs_with_inputs_wait_for_an_unreachable_metadata_server_with_the_reason_and_others_run(
        data_cluster: DataCluster, gfarm: Gfarm) -> None:
    folder = gfarm.workdir()
    gfarm.put(f"{folder}/in", b"sample\n", "gfnode1")
    data_cluster.start_node_worker("gfnode1")
    client = data_cluster.client()
    wait_until(lambda: len(client.workers()) == 1, 30, "the worker")

    def explain(job_id: int, *args: str) -> str:
        out = subprocess.run([sys.executable, "-m", "tiercel", "explain", str(job_id), *args],
                             env=data_cluster.env(), capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return out.stdout

    with gfarm.metadata_stopped():
        with_inputs = client.submit('cat "$TIERCEL_INPUTS"', inputs=[f"gfarm://{folder}/in"], append_index=False)
        without = client.submit("echo plain", append_index=False)
        done = data_cluster.wait_job(without, timeout=60)
        assert done.data["state"] == "done"  # the job that reads nothing from Gfarm ran meanwhile
        # the node watch finds gfmd out of reach once gfsched -M has not answered within its time-out
        def out_of_reach() -> dict[str, Any] | None:
            found: dict[str, Any] = client.json("GET", f"/v1/jobs/{with_inputs.id}/explain")
            return found if found["data"]["reachable"] is False else None

        wait_until(out_of_reach, 60, "explain to say gfmd is out of reach")
        waiting = json.loads(explain(with_inputs.id, "--json"))
        assert waiting["data"]["reachable"] is False
        assert waiting["job"]["state"] == "queued" and waiting["job"]["done"] == 0, waiting
        assert waiting["data"]["reason"].startswith("Gfarm's metadata server is unreachable"), waiting["data"]
        assert "data: Gfarm's metadata server is unreachable" in explain(with_inputs.id)
        assert with_inputs.refresh().data["state"] == "queued"
    ran = data_cluster.wait_job(with_inputs, timeout=120)  # back: it runs, reading its input
    assert ran.data["state"] == "done", [o.stderr for o in ran.outputs()]
    assert [o.stdout for o in ran.outputs()] == [b"sample\n"]
