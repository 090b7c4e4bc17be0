"""Ad-hoc commands (XEP-0050), listed and run from a chat client's command menu."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from tests.integration.conftest import wait_until
from tests.xmpp.conftest import MANAGER, ChatUser, XmppCluster

pytestmark = pytest.mark.integration

FULL = f"{MANAGER}/tiercel"


def run(user: ChatUser, node: str, **fields: str) -> dict[str, object]:
    user.command(op="execute", to=FULL, node=node, fields=fields)
    return user.expect(lambda e: e["event"] in ("command", "failed"), what=f"the {node} command's result")


def test_commands_listed_and_executed(xmpp_cluster: XmppCluster, chat: Callable[..., ChatUser]) -> None:
    alice = chat("alice")
    alice.command(op="commands", to=FULL)
    listed = alice.expect(lambda e: e["event"] == "commands")
    assert sorted(node for node, _ in listed["items"]) == ["cancel", "pool", "status", "submit"]

    submitted = run(alice, "submit", command="sleep 60", queue="4", name="menu")
    assert submitted["status"] == "completed"
    [[kind, text]] = submitted["notes"]
    m = re.fullmatch(r"\{'type':'job_started', 'job_id': (\d+)\}", str(text))
    assert kind == "info" and m, submitted
    job = int(m.group(1))

    [[_, status]] = run(alice, "status")["notes"]
    assert f"'job_id': {job}, 'name': 'menu', 'state': 'queued', 'total': 4" in str(status)

    xmpp_cluster.start_worker("--slots", "1", name="ws")
    xmpp_cluster.start_xmpp_worker("w1", "--slots", "2", name="xw")
    with xmpp_cluster.client() as c:
        wait_until(lambda: len(c.workers()) == 2, what="both workers to connect")
    [[_, pool]] = run(alice, "pool")["notes"]
    assert str(pool).startswith("{'type':'pool', 'workers': 2, 'xmpp_workers': 1, 'slots': 3, 'busy': ")

    rejected = run(alice, "submit", command="x", queue="-3")
    assert rejected["notes"] == [["error", "{'type':'job_rejected', 'reason': 'queue: -3 must be between 1 and "
                                           "100000000'}"]]

    cancelled = run(alice, "cancel", job_id=str(job))
    assert cancelled["notes"] == [["info", f"{{'type':'cancelled', 'job_id': {job}}}"]]
    assert alice.reply("job_finished") == f"{{'type':'job_finished', 'job_id': {job}}}"


def test_commands_refuse_a_jid_not_allowed(xmpp_cluster: XmppCluster, chat: Callable[..., ChatUser]) -> None:
    mallory = chat("mallory")
    result = run(mallory, "submit", command="true", queue="1")
    assert result["event"] == "failed" and "forbidden" in str(result["error"]), result
    with xmpp_cluster.client() as c:
        assert c.jobs(everyone=True) == []


def test_commands_show_and_cancel_only_ones_own_jobs(xmpp_cluster: XmppCluster,
                                                      chat: Callable[..., ChatUser]) -> None:
    alice, bob, mallory = chat("alice"), chat("bob"), chat("mallory")
    [[_, text]] = run(alice, "submit", command="sleep 60", queue="2", name="hers")["notes"]
    hers = int(re.findall(r"\d+", str(text))[0])
    [[_, text]] = run(bob, "submit", command="sleep 60", queue="1", name="his")["notes"]
    his = int(re.findall(r"\d+", str(text))[0])
    [[_, status]] = run(bob, "status")["notes"]
    assert f"'job_id': {his}" in str(status) and f"'job_id': {hers}" not in str(status)
    # The cancel form lists bob's jobs only; naming alice's job anyway is refused.
    refused = run(bob, "cancel", job_id=str(hers))
    assert refused["notes"] == [["error", f"{{'type':'error', 'reason': \"job_id: {hers} is not a job of yours; "
                                          "send {'type':'status'} to list yours\"}"]]
    huge = run(bob, "cancel", job_id="100000000000000000000")
    assert huge["notes"] == [["error", "{'type':'error', 'reason': \"job_id: '100000000000000000000' must be a job "
                                       "number or all\"}"]]
    with xmpp_cluster.client() as c:
        assert c.job(hers).state == "queued" and c.job(his).state == "queued"
    for node in ("status", "pool", "cancel"):
        result = run(mallory, node)
        assert result["event"] == "failed" and "forbidden" in str(result["error"]), result
    with xmpp_cluster.client() as c:
        assert c.job(hers).state == "queued"


@pytest.mark.parametrize("xmpp_cluster", [{"xmpp": {"rate_burst": 3, "rate_per_minute": 1}}], indirect=True)
def test_commands_count_against_the_rate_limit(xmpp_cluster: XmppCluster, chat: Callable[..., ChatUser]) -> None:
    alice = chat("alice")
    assert [run(alice, "status")["event"] for _ in range(3)] == ["command"] * 3
    limited = run(alice, "status")
    assert limited["event"] == "failed" and "resource-constraint" in str(limited["error"]), limited
    assert "too many messages: at most 3 at once and 1 a minute" in str(limited["error"])
