"""Federation on loopback: three managers, each with its own state dir, store, port and workers.

A job array submitted to one manager spreads over its peers as ranges and every index settles
exactly once at the origin, through a peer's kill -9, the origin's kill -9 and restart, and a
cancel; a peer token does nothing but peer; abuse is refused, said, and loses nothing.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.integration.conftest import wait_until
from tests.integration.federation import Federation, Proxy
from tests.netns import Netns, need_netns
from tiercel.core.federation import SiteSummary
from tiercel.core.model import Outcome
from tiercel.wire import peer as wire

pytestmark = pytest.mark.integration

ECHO = ["sh", "-c", "echo task $TIERCEL_TASK_INDEX"]


@pytest.fixture
def fed(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Federation]:
    f = Federation(tmp_path)
    try:
        yield f
    finally:
        f.stop()
        rep = getattr(request.node, "rep_call", None)
        if rep is not None and rep.failed:
            print(f.dump_logs())


def settled_once(job: Any, size: int) -> collections.Counter[str]:
    """Every index has exactly one final attempt, done, with its own output; where they ran."""
    finals = job.client.json("GET", f"/v1/jobs/{job.id}/tasks", params={"final": "true"})
    indexes = collections.Counter(t["index"] for t in finals)
    assert len(indexes) == size, f"{len(indexes)} of {size} indexes settled"
    assert max(indexes.values()) == 1, [i for i, n in indexes.items() if n > 1][:10]
    assert {t["outcome"] for t in finals} == {"done"}
    return collections.Counter(t["worker"] for t in finals)


def outputs_correct(job: Any, size: int) -> None:
    out = b"".join(job.logs("stdout")).decode()
    lines = [x for x in out.splitlines() if x.startswith("task ")]
    assert sorted(int(x.split()[1]) for x in lines) == list(range(size))


def _events(ws: Any, quiet: float = 1.0) -> list[dict[str, Any]]:
    """The job events a stream carried, read until it has been quiet for ``quiet`` seconds; then closed."""
    out = []
    while True:
        try:
            out.append(json.loads(ws.recv(timeout=quiet)))
        except TimeoutError:
            break
    ws.close()
    return [e for e in out if e.get("event", "").startswith("job_")]


def peer_jobs(f: Federation, name: str) -> list[dict[str, Any]]:
    return list(f.managers[name].client().json("GET", "/v1/jobs", params={"all": "true", "limit": 10_000}))


# ---- roles ------------------------------------------------------------------------------


def test_a_peer_token_exchanges_work_and_nothing_else(fed: Federation) -> None:
    fed.start(["A", "B"])
    b = fed.managers["B"]
    with b.client() as admin:
        alice = admin.json("POST", "/v1/tokens", json={"user": "alice", "role": "user"})["token"]
        peer_a = fed.tokens["A"]["B"].read_text().strip()
        stranger = admin.json("POST", "/v1/tokens", json={"user": "Z", "role": "peer"})["token"]
    with b.client(alice) as c:
        job = c.submit("sleep 30", queue=2).id
    routes = [("GET", "/v1/jobs"), ("GET", "/v1/jobs?all=true"), ("GET", f"/v1/jobs/{job}"),
              ("GET", f"/v1/jobs/{job}/tasks"), ("GET", f"/v1/jobs/{job}/logs"), ("GET", f"/v1/jobs/{job}/explain"),
              ("POST", f"/v1/jobs/{job}/cancel"), ("POST", "/v1/jobs/cancel"), ("GET", "/v1/peers")]
    with httpx.Client(base_url=b.url, headers={"Authorization": f"Bearer {peer_a}"}) as http:
        for method, path in routes:
            r = http.request(method, path)
            assert r.status_code == 403, (method, path, r.status_code, r.text)
            assert "a peer token exchanges summaries" in r.json()["error"]
        r = http.post("/v1/jobs", json={"command": "true"})
        assert r.status_code == 403 and "cannot submit" in r.json()["error"]
    ws = b.url.replace("http://", "ws://")
    for path in ("/v1/events", "/v1/worker"):
        with pytest.raises(InvalidStatus):
            connect(ws + path, additional_headers={"Authorization": f"Bearer {peer_a}"}, open_timeout=10).close()
    # a peer token whose user has no [peers.NAME], an unknown token, a user token: no link
    for token, status, said in ((stranger, 403, b"no [peers.Z] table"), ("tc_nonsense", 401, b"peer token"),
                                (alice, 403, b"peer token is required")):
        with pytest.raises(InvalidStatus) as refused:
            connect(ws + "/v1/peer", additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=10).close()
        assert refused.value.response.status_code == status
        assert said in (refused.value.response.body or b""), refused.value.response.body
    # alice's job is untouched
    with b.client(alice) as c:
        assert c.job(job).state in ("queued", "running")
    # revoked at B, A's token ends its link, and A's next try is refused, which A says
    fed.wait_linked()
    tokens = b.client().json("GET", "/v1/tokens")
    tid = next(t["id"] for t in tokens if t["user"] == "A" and t["role"] == "peer")
    assert b.cli("token", "revoke", tid).returncode == 0
    wait_until(lambda: {r["name"]: r for r in fed.peers("A")}["B"]["state"] == "refused", 30, "A to be refused")
    row = {r["name"]: r for r in fed.peers("A")}["B"]
    assert "HTTP 401" in row["why"], row


# ---- a three-manager federation -------------------------------------------------------------


def test_an_array_spreads_over_three_managers_and_settles_once(fed: Federation) -> None:
    fed.start(["A", "B", "C"])
    for name in "ABC":
        fed.managers[name].start_worker("--slots", "2", name=f"w{name.lower()}")
    fed.wait_linked()
    a = fed.managers["A"]
    opened = contextlib.ExitStack()
    streams = {name: opened.enter_context(connect(
        fed.managers[name].url.replace("http://", "ws://") + "/v1/events", open_timeout=10,
        additional_headers={"Authorization": f"Bearer {fed.managers[name].admin_token}"})) for name in "ABC"}
    size = 10_000
    job = a.client().submit(ECHO, array=f"0-{size - 1}")
    job = job.wait(timeout=600, poll=0.5)
    assert job.state == "done" and job.data["done"] == size
    where = settled_once(job, size)
    assert where["peer:B"] > 0 and where["peer:C"] > 0, where
    assert sum(n for w, n in where.items() if not w.startswith("peer:")) > 0, where
    outputs_correct(job, size)
    status = a.cli("status", str(job.id))
    assert status.returncode == 0 and "done" in status.stdout
    # at B and C the ranges ran as jobs of the user mapped from A, and ended
    for name in "BC":
        ran = peer_jobs(fed, name)
        assert ran and {j["owner"] for j in ran} == {"fed-a"} and {j["state"] for j in ran} == {"done"}
        assert sum(j["done"] for j in ran) == where[f"peer:{name}"]
    # one job for the user: its events fire once, at the origin, and never at the peers that ran its ranges
    with opened:
        events = {name: _events(ws) for name, ws in streams.items()}
    assert [e["job"]["id"] for e in events["A"] if e["event"] == "job_finished"] == [job.id]
    assert [e["job"]["id"] for e in events["A"] if e["event"] == "job_submitted"] == [job.id]
    assert events["B"] == [] and events["C"] == [], events
    rows = {r["name"]: r for r in fed.peers("A")}
    assert rows["B"]["forwarded_tasks"] > 0 and rows["B"]["refused"] == 0
    # ranges, not tasks: far fewer messages than tasks went to the peers
    sent = sum(r["messages_out"] for r in rows.values())
    forwarded = sum(r["forwarded_tasks"] for r in rows.values())
    assert sent < forwarded / 2, (sent, forwarded)


def test_kill_9_of_a_peer_mid_job_loses_and_repeats_nothing(fed: Federation) -> None:
    fed.start(["A", "B", "C"])
    for name in "ABC":
        fed.managers[name].start_worker("--slots", "2", name=f"w{name.lower()}")
    fed.wait_linked()
    a, b = fed.managers["A"], fed.managers["B"]
    size = 600
    job = a.client().submit(["sh", "-c", "echo task $TIERCEL_TASK_INDEX; sleep 0.1"], array=f"0-{size - 1}")
    wait_until(lambda: sum(j["done"] for j in peer_jobs(fed, "B")) > 5, 120, "B to run some of the array")
    b.kill_manager(signal.SIGKILL)
    job = job.wait(timeout=300, poll=0.5)
    where = settled_once(job, size)
    outputs_correct(job, size)
    assert where["peer:C"] > 0
    rows = {r["name"]: r for r in fed.peers("A")}
    assert any("taken back" in r["what"] for r in rows["B"]["refusals"]), rows["B"]["refusals"]
    # B comes back and reports what it ran: nothing settles twice
    fed.restart("B")
    wait_until(lambda: {r["name"]: r for r in fed.peers("A")}["B"]["state"] == "up", 60, "B to be back")
    time.sleep(2)
    settled_once(a.client().job(job.id), size)
    assert a.client().job(job.id).data["done"] == size


def test_kill_9_of_the_origin_and_restart_resumes_its_ranges(fed: Federation) -> None:
    fed.start(["A", "B"])
    fed.managers["B"].start_worker("--slots", "4", name="wb")
    fed.wait_linked()
    a = fed.managers["A"]  # no worker at A: every task runs at B
    size = 400
    job = a.client().submit(["sh", "-c", "echo task $TIERCEL_TASK_INDEX; sleep 0.05"], array=f"0-{size - 1}")
    wait_until(lambda: a.client().job(job.id).data["done"] > 20, 120, "some results back at A")
    a.kill_manager(signal.SIGKILL)
    fed.restart("A")
    job = a.client().job(job.id).wait(timeout=300, poll=0.5)
    assert job.state == "done"
    where = settled_once(job, size)
    assert set(where) == {"peer:B"}
    outputs_correct(job, size)
    ran = peer_jobs(fed, "B")
    assert sum(j["done"] for j in ran) >= size  # a range re-sent may run twice at B: it never settles twice at A


def test_cancel_at_the_origin_stops_the_tasks_at_the_peers(fed: Federation) -> None:
    fed.start(["A", "B", "C"])
    for name in "BC":
        fed.managers[name].start_worker("--slots", "2", name=f"w{name.lower()}")
    fed.wait_linked()
    a = fed.managers["A"]
    job = a.client().submit("sleep 300", array="0-19")
    wait_until(lambda: all(any(j["running"] for j in peer_jobs(fed, n)) for n in "BC"), 120, "tasks at B and C")
    explained = a.cli("explain", str(job.id))
    assert explained.returncode == 0, explained.stderr
    for name in "BC":
        assert f"forwarded to peer {name}: no local site can run it" in explained.stdout or \
            f"forwarded to peer {name}: local sites full" in explained.stdout, explained.stdout
    cancelled = a.cli("cancel", str(job.id))
    assert cancelled.returncode == 0, cancelled.stderr
    for name in "BC":
        wait_until(lambda name=name: all(j["state"] == "cancelled" for j in peer_jobs(fed, name)), 60,
                   f"the ranges at {name} to be cancelled")
        workers = fed.managers[name].client().json("GET", "/v1/workers")
        wait_until(lambda name=name: all(w["busy"] == 0 for w in
                                         fed.managers[name].client().json("GET", "/v1/workers")), 60,
                   f"{name}'s workers to be idle")
        assert workers
    assert a.client().job(job.id).state == "cancelled"


# ---- a link cut and healed --------------------------------------------------------------------


def test_a_link_cut_for_30s_mid_job_heals_without_duplicates(fed: Federation) -> None:
    """C runs in a network namespace behind a veth pair, reached through the latency proxy; its link is
    cut for 30 s while it holds ranges: they are taken back and run elsewhere, and what C ran
    meanwhile comes back when the link heals, settling nothing twice."""
    need_netns()
    ns = Netns(20 + os.getpid() % 200).up()
    try:
        fed.namespaces["C"] = ns

        def url_of(name: str, c: Any) -> str:
            if name != "C":
                return str(c.url)
            proxy = Proxy(fed.root, f"{ns.ip}:{c.port}", 0.005)
            fed.proxies.append(proxy)
            return proxy.url

        fed.start(["A", "B", "C"], url_of=url_of)
        for name in "ABC":
            fed.managers[name].start_worker("--slots", "2", name=f"w{name.lower()}")
        fed.wait_linked()
        a, c = fed.managers["A"], fed.managers["C"]
        size = 2000  # A and B alone take longer than the cut: the job still runs when C comes back
        job = a.client().submit(["sh", "-c", "echo task $TIERCEL_TASK_INDEX; sleep 0.1"], array=f"0-{size - 1}")
        wait_until(lambda: sum(j["done"] for j in peer_jobs(fed, "C")) > 5, 120, "C to run some of the array")
        ns.cut()
        cut_at = time.monotonic()
        wait_until(lambda: any("taken back" in r["what"] for r in {x["name"]: x for x in fed.peers("A")}["C"]
                               ["refusals"]), 60, "A to take C's ranges back")
        time.sleep(max(0.0, 30 - (time.monotonic() - cut_at)))
        ns.heal()
        wait_until(lambda: {r["name"]: r for r in fed.peers("A")}["C"]["state"] == "up", 60, "the link to heal")
        job = a.client().job(job.id).wait(timeout=300, poll=0.5)
        assert job.state == "done"
        wait_until(lambda: {r["name"]: r for r in fed.peers("C")}["A"]["tasks_here"] == 0 and
                   not [j for j in peer_jobs(fed, "C") if j["state"] in ("queued", "running")], 60,
                   "C to hand in what it ran during the cut")
        where = settled_once(a.client().job(job.id), size)
        outputs_correct(a.client().job(job.id), size)
        assert where["peer:C"] > 0 and where["peer:B"] > 0, where
        assert c.cli("status").returncode == 0  # C serves again
    finally:
        fed.stop()
        ns.remove()


# ---- abuse ----------------------------------------------------------------------------------


def _frames(ws: Any, until: float) -> list[Any]:
    """What the manager sends until ``until``; a ping every half second, as a live peer is never silent."""
    out: list[Any] = []
    pinged = 0.0
    while time.monotonic() < until:
        if time.monotonic() - pinged > 0.5:
            ws.send(wire.pack([wire.Ping(time.time())]))
            pinged = time.monotonic()
        try:
            frame = ws.recv(timeout=max(0.05, min(0.5, until - time.monotonic())))
        except TimeoutError:
            continue
        out += [wire.decode(m) for m in wire.unpack(frame)]
    return out


def test_abuse_from_a_peer_is_refused_said_and_loses_nothing(fed: Federation) -> None:
    fed.start(["A", "B"])
    b = fed.managers["B"]
    b.start_worker("--slots", "2", name="wb")
    fed.wait_linked()
    a = fed.managers["A"]
    a.kill_manager(signal.SIGKILL)  # A's token is now held by a forger
    token = fed.tokens["A"]["B"].read_text().strip()
    url = b.url.replace("http://", "ws://") + "/v1/peer"
    with connect(url, additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=10) as ws:
        ws.send(wire.pack([wire.PeerHello("f0rged", "forger")]))
        hello = _frames(ws, time.monotonic() + 2)[0]
        assert isinstance(hello, wire.PeerHello)
        b_id = hello.manager
        spec = {"command": ["echo", "hi"], "indexes": [[0, 3]]}
        ws.send(wire.pack([
            wire.Summary((SiteSummary("pool", "pool", 4, 9),)),  # 9 free of 4
            wire.PeerResults("7.1.0", 1, (wire.PeerResult(0, Outcome.DONE, 0, 0.0, 0.0, b"", b""),)),
            wire.Forward("loop.1.0", 1, 1, ((0, 3),), spec, ("f0rged", b_id)),
        ]))
        ws.send(b"not msgpack at all")
        ws.send(wire.pack([wire.Forward("ok.1.0", 1, 1, ((0, 3),), spec, ("f0rged",))]))
        got = _frames(ws, time.monotonic() + 5)
    refused = [m for m in got if isinstance(m, wire.Refused)]
    assert [m.lease for m in refused] == ["loop.1.0"] and "forwarding loop" in refused[0].reason
    acks = [m for m in got if isinstance(m, wire.ResultsAck)]
    assert acks and acks[0].refused.startswith("results for a range it was not given")
    assert any(isinstance(m, wire.Accepted) and m.lease == "ok.1.0" for m in got)
    rows = {r["name"]: r for r in b.client().json("GET", "/v1/peers")}
    said = " | ".join(r["what"] for r in rows["A"]["refusals"])
    for words in ("nonsense values", "forwarding loop", "not msgpack"):
        assert words in said, said
    out = b.cli("peers")
    assert out.returncode == 0 and "A" in out.stdout
    # B keeps serving its own users
    assert b.client().submit("true").wait(timeout=60).state == "done"


def test_a_peer_that_accepts_and_never_starts_loses_the_range(bare_cluster: Any) -> None:
    """A peer F (here the test itself) accepts a range and starts none of it: after its start_timeout the
    origin takes the range back, cancels it there, and runs it elsewhere; every task settles once."""
    a = bare_cluster
    config = a.root / "a.toml"
    config.write_text('[peers.F]\nuser = "fed-f"\nstart_timeout = "2s"\ntimeout = "60s"\n')
    a.start_manager("--config", str(config))
    token = a.cli("token", "create", "--role", "peer", "--user", "F").stdout.strip()
    url = a.url.replace("http://", "ws://") + "/v1/peer"
    summary = wire.Summary((SiteSummary("pool", "pool", 4, 4),))
    got: list[Any] = []
    with connect(url, additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=10) as ws:
        ws.send(wire.pack([wire.PeerHello("f00d", "idle peer"), summary]))
        wait_until(lambda: {r["name"]: r for r in a.client().json("GET", "/v1/peers")}["F"]["summary_at"], 30,
                   "A to hear F's summary")
        job = a.client().submit(ECHO, array="0-3")
        deadline = time.monotonic() + 60
        while not any(isinstance(m, wire.Forward) for m in got):
            assert time.monotonic() < deadline, got
            got += _frames(ws, time.monotonic() + 0.3)
            ws.send(wire.pack([summary]))
        forward = next(m for m in got if isinstance(m, wire.Forward))
        ws.send(wire.pack([wire.Accepted(forward.lease, 1)]))
        a.start_worker("--slots", "2", name="wa")  # home gets a worker: the range comes back and runs here
        deadline = time.monotonic() + 60
        while not any(isinstance(m, wire.Cancel) and m.lease == forward.lease for m in got):
            assert time.monotonic() < deadline, got
            got += _frames(ws, time.monotonic() + 0.3)
            ws.send(wire.pack([summary]))  # alive, never starting anything
        done = a.client().job(job.id).wait(timeout=60, poll=0.2)
    assert done.state == "done"
    where = settled_once(done, 4)
    assert not any(w.startswith("peer:") for w in where)
    row = {r["name"]: r for r in a.client().json("GET", "/v1/peers")}["F"]
    assert any("accepted and started none of it in 2s" in r["what"] for r in row["refusals"]), row["refusals"]
