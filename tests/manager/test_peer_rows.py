"""What a token sees of the manager's peers: an admin everything, a user the links and offers only."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from tiercel.manager.queries import PEER_PUBLIC, Queries

ROW: dict[str, Any] = {
    "name": "B", "url": "https://b.example.org:8750", "state": "up", "link": "out", "why": None, "rtt_ms": 3.2,
    "last_exchange": 1000.0, "offer": {"slots_free": 4, "slots_total": 8, "sites": 1},
    "sites": [{"name": "B/pool", "kind": "pool", "free": 4, "total": 8, "tags": []}],
    "sent": {"ranges": 3, "tasks": 300}, "received": {"ranges": 1, "tasks": 10},
    "refusals": [{"at": 999.0, "what": "results for range 17 of alice's job 4, not given to B"}],
}


def queries() -> Queries:
    shell = SimpleNamespace(peers=SimpleNamespace(rows=lambda: [dict(ROW)]))
    return Queries(shell)  # type: ignore[arg-type]


def test_an_admin_sees_every_field_of_a_peer() -> None:
    assert queries().peers(admin=True) == [ROW]


def test_a_user_sees_a_peer_s_link_and_offer_but_not_its_work_refusals_or_url() -> None:
    (row,) = queries().peers(admin=False)
    assert set(row) == set(PEER_PUBLIC) and row["sites"] == ROW["sites"]
    assert not {"url", "sent", "received", "refusals"} & set(row)
