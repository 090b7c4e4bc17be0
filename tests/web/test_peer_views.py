"""The dashboard's peers: table tests of the peers page's rows (what an admin and a user each see), the
pool's change mark, a job's forwarded ranges, and the pages rendered with hostile text, escaped."""

from __future__ import annotations

from typing import Any

import pytest

from tiercel.core.model import UserName
from tiercel.gateways.web import views
from tiercel.gateways.web.render import page
from tiercel.manager.auth import Identity

NOW = 10_000.0
ALICE = Identity(UserName("alice"), "user")
ADMIN = Identity(UserName("root"), "admin")
HOSTILE = '<script>alert("x")</script>'


def peer(name: str = "B", **changed: Any) -> dict[str, Any]:
    """A row of `tiercel peers` (federation.service.Federation.rows)."""
    row: dict[str, Any] = {
        "name": name, "url": "http://127.0.0.1:9001", "user": f"fed-{name.lower()}", "manager": "a1b2",
        "state": "up", "why": None, "link": "out", "rtt_ms": 1.5, "last_exchange": NOW - 3, "summary_at": NOW - 3,
        "offer": {"sites": 2, "slots_total": 12, "slots_free": 5, "tags": ["cpu", "gpu"]},
        "sites": [{"name": "pool", "kind": "pool", "slots_total": 4, "slots_free": 1, "tags": ["cpu"]},
                  {"name": "hpc", "kind": "slurm", "slots_total": 8, "slots_free": 4, "tags": ["cpu", "gpu"]}],
        "forwarding": True, "forwarded_tasks": 300, "ranges": 2, "tasks_there": 40, "ranges_here": 1,
        "tasks_here": 7, "messages_in": 90, "messages_out": 80, "refused": 1, "refused_by_it": 0,
        "refusals": [{"at": NOW - 600, "what": "range 3.1.0: silent; taken back"},
                     {"at": NOW - 60, "what": "a second hello on one link; dropped"}]}
    return {**row, **changed}


WORK = ("url", "user", "manager", "forwarded_tasks", "ranges", "tasks_there", "ranges_here", "tasks_here",
        "messages_in", "messages_out", "refused", "refused_by_it", "refusals")


def test_an_admin_sees_each_peers_link_offer_work_and_refusals_newest_first() -> None:
    [row] = views.peer_rows([peer()], admin=True, now=NOW)
    assert (row["name"], row["state"], row["rtt"], row["heard"]) == ("B", "up", "1.5 ms", "3s")
    assert row["offer_text"] == "5 of 12 slots free at 2 site(s)"
    assert [(s["name"], s["kind"], s["slots_free"], s["slots_total"], s["tags"]) for s in row["sites"]] == [
        ("pool", "pool", 1, 4, "cpu"), ("hpc", "slurm", 4, 8, "cpu, gpu")]
    assert (row["forwarded_tasks"], row["tasks_there"], row["tasks_here"], row["refused"]) == (300, 40, 7, 1)
    assert [(x["age"], x["what"]) for x in row["refusals"]] == [
        ("60s", "a second hello on one link; dropped"), ("10m", "range 3.1.0: silent; taken back")]


def test_a_user_sees_the_peers_links_and_offers_but_not_the_work_they_hold_or_their_refusals() -> None:
    [row] = views.peer_rows([peer()], admin=False, now=NOW)
    assert (row["name"], row["state"], row["rtt"], row["offer_text"]) == ("B", "up", "1.5 ms",
                                                                            "5 of 12 slots free at 2 site(s)")
    assert [s["name"] for s in row["sites"]] == ["pool", "hpc"]
    assert set(WORK) & set(row) == set(), "everyone's work and refusals are for admins"


@pytest.mark.parametrize(("changed", "rtt", "heard", "offer"), [
    ({}, "1.5 ms", "3s", "5 of 12 slots free at 2 site(s)"),
    ({"state": "connecting", "rtt_ms": None, "last_exchange": None, "summary_at": None, "sites": [],
      "offer": {"sites": 0, "slots_total": 0, "slots_free": 0, "tags": []}}, "", None, "nothing yet"),
    ({"rtt_ms": 250.0, "last_exchange": NOW - 7200}, "250 ms", "2h", "5 of 12 slots free at 2 site(s)"),
])
def test_round_trip_last_exchange_and_offer_read_at_a_glance_or_blank_before_any(
        changed: dict[str, Any], rtt: str, heard: str | None, offer: str) -> None:
    [row] = views.peer_rows([peer(**changed)], admin=False, now=NOW)
    assert (row["rtt"], row["heard"], row["offer_text"]) == (rtt, heard, offer)


def test_the_pool_mark_ignores_pings_and_sees_a_change_of_state_offer_or_work() -> None:
    base = views.peers_mark([peer()])
    assert views.peers_mark([peer(rtt_ms=3.0, last_exchange=NOW, summary_at=NOW, messages_in=91)]) == base
    for changed in ({"state": "down"}, {"forwarded_tasks": 301}, {"sites": []}, {"refused": 2}):
        assert views.peers_mark([peer(**changed)]) != base, changed


def test_a_jobs_forwarded_ranges_are_listed_by_peer_then_first_index() -> None:
    forwarded = [
        {"peer": "C", "lease": "7.1.0", "indexes": "0-9", "epoch": 1, "state": "accepted", "tasks": 10,
         "settled": 4, "why": "local sites full"},
        {"peer": "B", "lease": "7.1.20", "indexes": "20-29,40", "epoch": 1, "state": "sent", "tasks": 11,
         "settled": 0, "why": "no local site can run it"},
        {"peer": "B", "lease": "7.1.10", "indexes": "10-19", "epoch": 1, "state": "retired", "tasks": 10,
         "settled": 1200, "why": "peer B silent"}]
    rows = views.forwarded_rows(forwarded)
    assert [(r["peer"], r["indexes"], r["state"], r["epoch"], r["settled"], r["why"]) for r in rows] == [
        ("B", "10-19", "retired", 1, "1,200/10", "peer B silent"),
        ("B", "20-29,40", "sent", 1, "0/11", "no local site can run it"),
        ("C", "0-9", "accepted", 1, "4/10", "local sites full")]
    assert views.forwarded_rows([]) == []


def test_the_peers_page_escapes_what_a_peer_said() -> None:
    rows = views.peer_rows([peer(why=HOSTILE, state=HOSTILE, sites=[
        {"name": HOSTILE, "kind": HOSTILE, "slots_total": 1, "slots_free": 1, "tags": [HOSTILE]}],
        refusals=[{"at": NOW, "what": HOSTILE}])], admin=True, now=NOW)
    html = page("peers.html", ADMIN, title="peers", part=False, now_s=NOW, rows=rows).body.decode()
    assert "<script>alert" not in html and "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html


def test_a_manager_without_peers_says_so() -> None:
    html = page("peers.html", ALICE, title="peers", part=True, now_s=NOW, rows=[]).body.decode()
    assert "This manager has no peers" in html and "<table" not in html


def test_a_users_peers_page_shows_no_work_and_says_who_sees_it() -> None:
    rows = views.peer_rows([peer()], admin=False, now=NOW)
    html = page("peers.html", ALICE, title="peers", part=True, now_s=NOW, rows=rows).body.decode()
    assert "tasks sent" not in html and "Refusals" not in html and "silent; taken back" not in html
    assert "shown to admins" in html and "hpc" in html and "cpu, gpu" in html
