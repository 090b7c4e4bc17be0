"""The Kestrel chat session against a real Prosody: a chat client process types the manual's messages."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from tests.xmpp.conftest import ChatUser, XmppCluster

pytestmark = pytest.mark.integration

Chat = Callable[..., ChatUser]


def job_id(reply: str) -> int:
    m = re.fullmatch(r"\{'type':'job_started', 'job_id': (\d+)\}", reply)
    assert m, reply
    return int(m.group(1))


def jobs_of(cluster: XmppCluster, owner: str) -> list[dict[str, object]]:
    with cluster.client() as c:
        return [j for j in c.jobs(everyone=True) if j["owner"] == owner]


def test_a_chat_session_as_the_manual_shows(xmpp_cluster: XmppCluster, chat: Chat) -> None:
    alice = chat("alice")
    # Submitting a job: the manual's message, character for character.
    first = job_id(alice.ask("""{'type':'job', 'command':"~/runtask.sh", 'queue':10000}""", "job_started"))
    listed = alice.ask("{'type':'status'}", r"^\{'type':'status', 'jobs'")
    assert f"'job_id': {first}, 'state': 'queued', 'total': 10000" in listed
    one = alice.ask(f"{{'type':'status', 'job_id': {first}}}", rf"^\{{'type':'status', 'job_id': {first},")
    assert "'queued': 10000" in one and "'done': 0" in one
    # Cancelling one job, then the job_finished notification the manual promises.
    # The answer comes first, then the notice of the job's end.
    assert alice.ask(f"{{'type':'cancel', 'job_id': {first}}}") == f"{{'type':'cancelled', 'job_id': {first}}}"
    assert alice.reply() == f"{{'type':'job_finished', 'job_id': {first}}}"
    # Cancelling all of one's jobs.
    a = job_id(alice.ask("{'type':'job', 'command':\"sleep 60\", 'queue':2, 'name':'a'}", "job_started"))
    b = job_id(alice.ask('{"type": "job", "command": "sleep 60", "queue": 3}', "job_started"))  # JSON too
    assert alice.ask("{'type':'cancel'}", "cancelled") == f"{{'type':'cancelled', 'job_ids': [{a}, {b}]}}"
    ended = {alice.reply("job_finished"), alice.reply("job_finished")}
    assert ended == {f"{{'type':'job_finished', 'job_id': {n}}}" for n in (a, b)}
    # A job that runs to the end on a worker: job_finished once every task is done.
    xmpp_cluster.start_worker("--slots", "2")
    done = job_id(alice.ask("{'type':'job', 'command':'true', 'queue':5, 'requires':'', 'cleanup':'true'}",
                            "job_started"))
    assert alice.reply("job_finished") == f"{{'type':'job_finished', 'job_id': {done}}}"
    final = alice.ask(f"{{'type':'status', 'job_id': {done}}}", "'state'")
    assert "'state': 'done', 'total': 5, 'done': 5, 'failed': 0" in final
    # Help, when asked.
    assert "{'type':'status', 'job_id': 317}" in alice.ask("help", "I understand")


def test_job_submitted_over_rest_by_a_linked_user_notifies_their_jid(xmpp_cluster: XmppCluster, chat: Chat) -> None:
    carol = chat("carol")
    refused = carol.ask("{'type':'status'}", "not allowed")
    assert refused.startswith("Sorry, carol@localhost is not allowed")
    out = xmpp_cluster.cli("user", "link-jid", "carol@localhost", "carol")
    assert out.returncode == 0, out.stderr
    listed = xmpp_cluster.cli("user", "jids")
    assert "carol@localhost" in listed.stdout and "linked" in listed.stdout and "alice@localhost" in listed.stdout
    with xmpp_cluster.client() as admin:
        token = admin.json("POST", "/v1/tokens", json={"user": "carol", "role": "user"})["token"]
    xmpp_cluster.start_worker("--slots", "2")
    with xmpp_cluster.client(token) as c:
        job = c.submit("true", queue=3)
    assert carol.reply("job_finished") == f"{{'type':'job_finished', 'job_id': {job.id}}}"
    # Linked, carol now chats as herself and sees her REST job.
    assert f"'job_id': {job.id}, 'state': 'done'" in carol.ask("{'type':'status'}", "'jobs'")
    bad = xmpp_cluster.cli("user", "link-jid", "not a jid", "carol")
    assert bad.returncode == 2 and "jid: 'not a jid'" in bad.stderr and "Traceback" not in bad.stderr
    # A JID from the [xmpp.users] table is told of its user's REST jobs the same way.
    alice = chat("alice")
    with xmpp_cluster.client() as admin:
        token = admin.json("POST", "/v1/tokens", json={"user": "alice", "role": "user"})["token"]
    with xmpp_cluster.client(token) as c:
        hers = c.submit("true", queue=2)
    assert alice.reply("job_finished") == f"{{'type':'job_finished', 'job_id': {hers.id}}}"
    # Unlinked, carol is a stranger again (and, refused a moment ago, gets no second refusal).
    out = xmpp_cluster.cli("user", "unlink-jid", "carol@localhost")
    assert out.returncode == 0, out.stderr
    assert "carol@localhost" not in xmpp_cluster.cli("user", "jids").stdout
    carol.say("{'type':'status'}")
    alice.ask("{'type':'status'}", "'jobs'")
    assert carol.received(2.0) == []


def test_a_jid_not_allowed_gets_a_polite_refusal_and_nothing_else(xmpp_cluster: XmppCluster, chat: Chat) -> None:
    mallory, alice = chat("mallory"), chat("alice")
    answer = mallory.ask("""{'type':'job', 'command':"~/runtask.sh", 'queue':10000}""", "Sorry")
    assert answer.startswith("Sorry, mallory@localhost is not allowed to use this Tiercel manager")
    assert "tiercel user link-jid mallory@localhost USER" in answer
    for text in ("{'type':'cancel'}", "{'type':'status'}", "help"):  # one refusal is enough: then silence
        mallory.say(text)
    # More than a JID's burst of 10: no rate-limit reply either, nothing at all.
    mallory.command(op="flood", to="tiercel@localhost", body="{'type':'status'}", n=15)
    mallory.expect(lambda e: e["event"] == "flooded")
    alice.ask("{'type':'status'}", "'jobs'")
    assert mallory.received(2.0) == []
    with xmpp_cluster.client() as c:
        assert c.jobs(everyone=True) == []
    assert (xmpp_cluster.logs / "manager.log").read_text().count("refused a chat message from mallory") == 1


def test_someone_elses_job_is_neither_shown_nor_cancelled(xmpp_cluster: XmppCluster, chat: Chat) -> None:
    alice, bob = chat("alice"), chat("bob")
    mine = job_id(alice.ask("{'type':'job', 'command':'sleep 60', 'queue':2}", "job_started"))
    for text in (f"{{'type':'status', 'job_id': {mine}}}", f"{{'type':'cancel', 'job_id': {mine}}}"):
        assert bob.ask(text, "error") == (f"{{'type':'error', 'reason': \"job_id: {mine} is not a job of yours; "
                                          "send {'type':'status'} to list yours\"}")
    assert bob.ask("{'type':'cancel'}", "cancelled") == "{'type':'cancelled', 'job_ids': []}"
    huge = bob.ask("{'type':'cancel', 'job_id': 100000000000000000000}", "Sorry")  # beyond any job number
    assert huge.startswith("Sorry, 'job_id' must be a job number such as 317, not 100000000000000000000")
    assert bob.ask("{'type':'status'}", "'jobs'") == "{'type':'status', 'jobs': []}"
    assert "'state': 'queued'" in alice.ask(f"{{'type':'status', 'job_id': {mine}}}", "'state'")


@pytest.mark.parametrize("xmpp_cluster", [{"xmpp": {"rate_burst": 5, "rate_per_minute": 6}}], indirect=True)
def test_malformed_unknown_and_huge_messages_and_a_flood(xmpp_cluster: XmppCluster, chat: Chat) -> None:
    alice = chat("alice")
    cases = [
        ("hello there", "^Sorry, I could not read that as a message"),
        ("{'type':'jobb'}", "^Sorry, I do not know the message type 'jobb'"),
        ("{'type':'job', 'command':'x', 'queue':-5}", r"^\{'type':'job_rejected', 'reason': 'queue: -5 must be"),
        ("{'type':'job', 'command':'x', 'queue':1000000000000}", r"^\{'type':'job_rejected', 'reason': 'queue: 1000"),
        ("{'type':'job', 'command':'x', 'queue':10**12}", "^Sorry, I could not read that"),
        ("{'type':'job', 'command':'x', 'queue':'many'}", r"^\{'type':'job_rejected', 'reason': \"queue: 'many'"),
        ("{'type':'status', 'job_id': 'x'}", "^Sorry, 'job_id' must be a job number"),
        ("x" * 20000, "^Sorry, that message is 20000 characters long; I read at most 4096"),
    ]
    bob = chat("bob")
    for text, pattern in cases[:4]:  # alice: within her burst of 5
        alice.ask(text, pattern)
    for text, pattern in cases[4:]:
        bob.ask(text, pattern)
    with xmpp_cluster.client() as c:
        assert c.jobs(everyone=True) == []  # nothing was submitted by mistake
    # A flood from one JID: the messages within its burst are read, the rest are not, with one reply saying so.
    assert xmpp_cluster.cli("user", "link-jid", "carol@localhost", "carol").returncode == 0
    carol = chat("carol")
    carol.command(op="flood", to="tiercel@localhost", body="{'type':'job', 'command':'true', 'queue':1}", n=60)
    carol.expect(lambda e: e["event"] == "flooded")
    limited = carol.reply("too many messages")
    assert limited.startswith("{'type':'error', 'reason': 'too many messages: at most 5 at once and 6 a minute")
    # Chat messages are answered one at a time in arrival order: once bob has his answer, every
    # message of the flood that was read has been acted on.
    bob.ask("{'type':'status'}", "'jobs'")
    owned = {int(str(j["id"])) for j in jobs_of(xmpp_cluster, "carol")}
    assert 5 <= len(owned) <= 7  # the burst, and what trickled back in at 6 a minute while the flood came in
    assert {job_id(carol.reply("job_started")) for _ in owned} == owned  # each job was acknowledged
    # The gateway is still there and answers.
    assert alice.ask("{'type':'status'}", "'jobs'") == "{'type':'status', 'jobs': []}"
