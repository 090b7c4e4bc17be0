"""Advance reservations honoured with real workers."""

from __future__ import annotations

import json

import pytest

from tests.integration.conftest import Cluster, wait_until

pytestmark = pytest.mark.integration


def test_reserved_slots_go_only_to_the_reservation(cluster: Cluster) -> None:
    with cluster.client() as admin:
        bob = admin.json("POST", "/v1/tokens", json={"user": "bob"})["token"]
        alice = admin.json("POST", "/v1/tokens", json={"user": "alice"})["token"]
    cluster.start_worker("--slots", "2", "--prefetch", "0")
    with cluster.client() as admin:
        wait_until(lambda: admin.workers(), what="the worker")
    out = cluster.cli("reserve", "create", "--slots", "1", "--start", "now", "--end", "+1h", "--users", "bob",
                      "--name", "course", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["users"] == ["bob"]
    listing = cluster.cli("reserve", "list")
    assert "course" in listing.stdout and "bob" in listing.stdout

    with cluster.client(alice) as a, cluster.client(bob) as b:
        busy = a.submit("sleep 30", queue=4, append_index=False)
        wait_until(lambda: a.job(busy.id).data["running"] == 1, what="alice's first task")
        # the second slot stays free for the reservation
        assert a.job(busy.id).data["running"] == 1
        explained = json.loads(cluster.cli("explain", str(busy.id), "--json", token=alice).stdout)
        assert explained["verdict"]["policy"] == "reservations"
        assert "reserved (course)" in explained["verdict"]["reason"]
        nowall = cluster.cli("submit", "--reservation", "course", "--", "true", token=bob)
        assert nowall.returncode == 2 and "walltime: is required with a reservation" in nowall.stderr
        mine = b.submit("true", queue=3, reservation="course", walltime="1m")
        assert cluster.wait_job(mine, 30).state == "done"
        refused = cluster.cli("submit", "--reservation", "course", "--walltime", "1m", "--", "true", token=alice)
        assert refused.returncode == 2 and "reservation: 'course' is not open to alice" in refused.stderr
        overlapping = cluster.cli("reserve", "create", "--slots", "2", "--start", "+10m", "--end", "+1h")
        assert overlapping.returncode == 2 and "would oversubscribe site pool" in overlapping.stderr
        too_big = cluster.cli("reserve", "create", "--slots", "5", "--start", "now", "--end", "+1h")
        assert "slots: 5 is more than site pool has (2)" in too_big.stderr
        past = cluster.cli("reserve", "create", "--slots", "1", "--start", "2020-01-01T00:00", "--end", "+1h")
        assert past.returncode == 2 and "start" in past.stderr and "in the past" in past.stderr
        not_admin = cluster.cli("reserve", "create", "--slots", "1", "--start", "now", "--end", "+1h", token=bob)
        assert "only an admin may create reservations" in not_admin.stderr
        # deleting the reservation frees the slot for alice
        assert cluster.cli("reserve", "delete", "course").returncode == 0
        wait_until(lambda: a.job(busy.id).data["running"] == 2, 20, "alice to get the freed slot")
        a.job(busy.id).cancel()


def test_reservations_survive_a_restart(cluster: Cluster) -> None:
    import signal

    cluster.start_worker("--slots", "2")
    with cluster.client() as c:
        wait_until(lambda: c.workers(), what="the worker")
    assert cluster.cli("reserve", "create", "--slots", "2", "--start", "+1h", "--end", "+2h",
                       "--name", "later").returncode == 0
    cluster.kill_manager(signal.SIGKILL)
    cluster.start_manager()
    rows = json.loads(cluster.cli("reserve", "list", "--json").stdout)
    assert [r["name"] for r in rows] == ["later"]
    assert rows[0]["end"] - rows[0]["start"] == pytest.approx(7200)  # --end +2h counts from the start
