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


def _tokens(cluster: Cluster) -> tuple[str, str]:
    with cluster.client() as admin:
        return (admin.json("POST", "/v1/tokens", json={"user": "alice"})["token"],
                admin.json("POST", "/v1/tokens", json={"user": "bob"})["token"])


def test_a_reservation_holds_its_slots_whatever_a_worker_queues_ahead(bare_cluster: Cluster) -> None:
    """A 2-slot reservation for alice on a 4-slot worker that prefetches: bob, who came first, never
    runs more than 2 at once inside the window (the tasks write when they start and end)."""
    import time

    cluster = bare_cluster
    cluster.start_manager("--heartbeat", "30")
    alice, bob = _tokens(cluster)
    cluster.start_worker("--slots", "4")  # default prefetch: it asks for 8
    with cluster.client() as admin:
        wait_until(lambda: admin.workers(), what="the worker")
    opens = time.time() + 3
    out = cluster.cli("reserve", "create", "--slots", "2", "--start", f"{opens:.3f}", "--end", "+1h",
                      "--users", "alice", "--name", "lab")
    assert out.returncode == 0, out.stderr
    stamps = cluster.root / "stamps"
    stamps.mkdir()
    script = f'echo "start $(date +%s.%N)" >> {stamps}/$1; sleep 1; echo "end $(date +%s.%N)" >> {stamps}/$1'
    with cluster.client(bob) as b, cluster.client(alice) as a:
        bobs = b.submit(["sh", "-c", script.replace("$1", "bob-$1"), "sh"], queue=8)
        mine = a.submit(["sh", "-c", script.replace("$1", "alice-$1"), "sh"], queue=4, reservation="lab",
                        walltime="1m")
        assert cluster.wait_job(mine, 60).state == "done" and cluster.wait_job(bobs, 60).state == "done"
    events: list[tuple[float, int]] = []
    first_alice = min(float(line.split()[1]) for f in stamps.glob("alice-*") for line in f.read_text().splitlines()
                      if line.startswith("start"))
    for f in stamps.glob("bob-*"):
        for line in f.read_text().splitlines():
            kind, at = line.split()
            events.append((float(at), 1 if kind == "start" else -1))
    running = peak = 0
    for at, step in sorted(events):
        running += step
        if at >= opens:
            peak = max(peak, running)
    assert peak <= 2, f"bob ran {peak} tasks at once inside alice's 2-slot window"
    assert first_alice >= opens


def test_work_starts_when_its_window_opens_not_at_the_next_heartbeat(bare_cluster: Cluster) -> None:
    import time

    cluster = bare_cluster
    cluster.start_manager("--heartbeat", "300", "--worker-timeout", "1000")  # an idle worker is silent 300 s
    alice, _ = _tokens(cluster)
    cluster.start_worker("--slots", "1")
    with cluster.client() as admin:
        wait_until(lambda: admin.workers(), what="the worker")
    opens = time.time() + 3
    out = cluster.cli("reserve", "create", "--slots", "1", "--start", f"{opens:.3f}", "--end", "+1h",
                      "--users", "alice", "--name", "soon")
    assert out.returncode == 0, out.stderr
    with cluster.client(alice) as a:
        job = a.submit(["sh", "-c", "date +%s.%N"], queue=1, reservation="soon", walltime="1m", append_index=False)
        assert cluster.wait_job(job, 60).state == "done"
        started = float(a.request("GET", f"/v1/jobs/{job.id}/logs").text)
    # placed when the window opened, not when the worker next spoke (300 s)
    assert opens <= started < opens + 10


def test_reservation_work_that_cannot_fit_or_outlives_its_window_is_refused_or_ended(bare_cluster: Cluster) -> None:
    cluster = bare_cluster
    cluster.start_manager("--pool-slots", "2")
    alice, _ = _tokens(cluster)
    out = cluster.cli("reserve", "create", "--slots", "1", "--start", "now", "--end", "+3m", "--users", "alice",
                      "--name", "short")
    assert out.returncode == 0, out.stderr
    long = cluster.cli("submit", "--reservation", "short", "--walltime", "10m", "--", "true", token=alice)
    assert long.returncode == 2
    assert "walltime: '600s' is longer than what is left of reservation short" in long.stderr, long.stderr
    assert cluster.cli("status", "--json", token=alice).stdout.strip() in ("[]", "")
    # no worker: the job waits, then the reservation is deleted and the job ends, saying why
    with cluster.client(alice) as a:
        job = a.submit("true", queue=3, reservation="short", walltime="1m")
        assert cluster.cli("reserve", "delete", "short").returncode == 0
        ended = cluster.wait_job(a.job(job.id), 30)
        assert ended.state == "cancelled" and ended.data["cancelled"] == 3
        assert ended.data["reason"] == "reservation short was deleted before these tasks could start"
    shown = cluster.cli("status", str(job.id), token=alice)
    assert "reservation short was deleted" in shown.stdout, shown.stdout


def test_work_of_a_window_that_ends_ends_with_it_and_says_so(bare_cluster: Cluster) -> None:
    import time

    cluster = bare_cluster
    cluster.start_manager("--pool-slots", "2")
    alice, _ = _tokens(cluster)
    ends = time.time() + 4
    out = cluster.cli("reserve", "create", "--slots", "1", "--start", "now", "--end", f"{ends:.3f}",
                      "--users", "alice", "--name", "brief")
    assert out.returncode == 0, out.stderr
    with cluster.client(alice) as a:
        job = a.submit("true", queue=2, reservation="brief", walltime="1s")  # no worker: it cannot start
        ended = cluster.wait_job(a.job(job.id), 30)
    assert ended.state == "cancelled" and ended.data["reason"].startswith("reservation brief ended at ")
    listed = json.loads(cluster.cli("reserve", "list", "--json").stdout)
    assert [r["name"] for r in listed] == ["brief"]  # still listed; what is said of it agrees that it ended
    late = cluster.cli("submit", "--reservation", "brief", "--walltime", "1s", "--", "true", token=alice)
    assert late.returncode == 2 and "reservation: 'brief' has ended (at " in late.stderr


def test_reservation_messages_speak_in_dates_and_sites_in_real_slots(cluster: Cluster) -> None:
    backwards = cluster.cli("reserve", "create", "--slots", "1", "--start", "2031-05-01T12:00",
                            "--end", "2031-05-01T11:00")
    assert backwards.returncode == 2
    assert "end: '2031-05-01 11:00:00' must be after the start (2031-05-01 12:00:00)" in backwards.stderr
    cluster.start_worker("--slots", "4")  # it asks for more tasks than slots (prefetch)
    with cluster.client() as c:
        wait_until(lambda: c.workers(), what="the worker")
    pool = next(s for s in json.loads(cluster.cli("sites", "--json").stdout) if s["name"] == "pool")
    assert pool["slots_total"] == 4 and pool["slots_free"] == 4
