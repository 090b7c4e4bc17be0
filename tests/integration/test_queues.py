"""Queues with policy chains in a live manager: fair share, throttle, plug-ins, explain."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.integration.conftest import Cluster, wait_until

pytestmark = pytest.mark.integration

CONFIG = """
[queues.fair]
policies = ["fairshare"]
default = true

[queues.fair.fairshare]
half_life = 86400

[queues.short]
policies = ["shortest-first"]
max_running_per_user = 1
"""


@pytest.fixture
def queued(tmp_path: Path) -> Cluster:
    config = tmp_path / "tiercel.toml"
    config.write_text(CONFIG)
    c = Cluster(tmp_path)
    c.start_manager("--config", str(config))
    yield c
    c.stop()


def starts(c: Cluster, job: int) -> list[float]:
    with c.client() as cl:
        return sorted(a["started"] for a in cl.json("GET", f"/v1/jobs/{job}/tasks"))


def test_fair_share_lets_the_light_user_go_first(queued: Cluster) -> None:
    with queued.client() as admin:
        bob = admin.json("POST", "/v1/tokens", json={"user": "bob"})["token"]
    queued.start_worker("--slots", "1", "--prefetch", "0")
    with queued.client() as alice, queued.client(bob) as bobc:
        heavy = alice.submit("sleep 0.3", queue=8, append_index=False)
        wait_until(lambda: alice.job(heavy.id).data["done"] >= 2, 30, "alice to build up usage")
        later_alice = alice.submit("sleep 0.1", queue=2, append_index=False)
        time.sleep(0.05)
        light_bob = bobc.submit("sleep 0.1", queue=2, append_index=False)
        for j in (heavy, later_alice, light_bob):
            queued.wait_job(j, 60)
    # bob's tasks, submitted last, ran before alice's later ones and before the rest of her first job
    assert max(starts(queued, light_bob.id)) < min(starts(queued, later_alice.id))
    assert max(starts(queued, light_bob.id)) < max(starts(queued, heavy.id))


def test_queues_listing_unknown_queue_and_the_plugin_queue(queued: Cluster) -> None:
    out = queued.cli("queues", "--json")
    rows = {q["name"]: q for q in json.loads(out.stdout)}
    assert rows["fair"]["default"] and rows["fair"]["policies"] == ["requirements", "fairshare", "fcfs"]
    assert rows["short"]["limits"] == {"per_user": 1}
    table = queued.cli("queues").stdout
    assert "fair (default)" in table and "shortest-first" in table
    bad = queued.cli("submit", "--queue-name", "nope", "--", "true")
    assert bad.returncode == 2 and "queue_name: 'nope' is not a queue here (queues: fair, short" in bad.stderr
    # the example plug-in orders the short queue by walltime estimate
    queued.start_worker("--slots", "1", "--prefetch", "0", name="solo")
    with queued.client() as c:
        blocker = c.submit("sleep 1", queue=1, queue_name="short", walltime="1m", append_index=False)
        wait_until(lambda: c.job(blocker.id).data["running"] == 1, what="the blocker to run")
        long = c.submit("true", queue=1, queue_name="short", walltime="1h")
        short = c.submit("true", queue=1, queue_name="short", walltime="10s")
        for j in (blocker, long, short):
            queued.wait_job(j, 60)
    assert starts(queued, short.id)[0] < starts(queued, long.id)[0]


def test_explain_names_the_policy_and_the_workers(queued: Cluster) -> None:
    queued.start_worker("--slots", "1", "--prefetch", "0", "--tags", "bio", name="biobox")
    with queued.client() as c:
        wait_until(lambda: c.workers(), what="a worker")
        gpu = c.submit("true", queue=1, requires=["gpu"])
        first = c.submit("sleep 30", queue=1, queue_name="short", append_index=False)
        wait_until(lambda: c.job(first.id).data["running"] == 1, what="the first short job to run")
        second = c.submit("true", queue=1, queue_name="short")
        time.sleep(0.3)
        text = queued.cli("explain", str(gpu.id)).stdout
        assert "queue fair" in text and "biobox lacks tag(s) gpu" in text
        data = json.loads(queued.cli("explain", str(second.id), "--json").stdout)
        assert data["verdict"]["policy"] == "throttle"
        assert "already runs the most tasks allowed (1)" in data["verdict"]["reason"]
        done = queued.cli("explain", str(first.id))
        assert "nothing holds it" in done.stdout
        first.cancel(), second.cancel(), gpu.cancel()


def test_a_bad_config_refuses_to_start_naming_the_key(tmp_path: Path) -> None:
    import subprocess
    import sys

    config = tmp_path / "bad.toml"
    config.write_text('[queues.q]\npolicies = ["fairshare", "nope"]\n')
    out = subprocess.run([sys.executable, "-m", "tiercel", "manager", "--config", str(config), "--state-dir",
                          str(tmp_path / "s"), "--listen", "127.0.0.1:0"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "queues.q.policies: 'nope' is not a known policy" in out.stderr
    assert not (tmp_path / "s" / "manager.json").exists()
