"""The XMPP pieces that need no server: configuration, rate limits, frames, JID links, presence rules."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import msgpack
import pytest
import slixmpp
from click.testing import CliRunner
from slixmpp.stanza import Message

from tiercel.cli.main import cli
from tiercel.core.problems import Problem
from tiercel.gateways.xmpp.config import XmppConfig, parse
from tiercel.gateways.xmpp.jids import JidDirectory
from tiercel.gateways.xmpp.link import CHUNK, Assembler, _pieces
from tiercel.gateways.xmpp.ratelimit import RateLimits
from tiercel.gateways.xmpp.workers import XmppWorkers
from tiercel.wire.messages import PROTOCOL_VERSION


def config(**table: Any) -> XmppConfig | Problem | None:
    return parse({"xmpp": {"jid": "tiercel@example.org", "password": "pw", **table}, "queues": {}})


def test_a_minimal_table_and_its_defaults() -> None:
    c = config()
    assert isinstance(c, XmppConfig)
    assert c.jid == "tiercel@example.org/tiercel" and c.bare == "tiercel@example.org"
    assert c.endpoint().host is None and c.endpoint().tls == "starttls"
    assert parse({"queues": {}}) is None  # no [xmpp]: no gateway, and other tables are not its business
    direct = config(server="xmpp.example.org", tls="direct")
    assert isinstance(direct, XmppConfig) and direct.endpoint().port == 5223


def test_users_and_workers_are_normalised() -> None:
    c = config(users={"Alice@Example.org": "alice"}, workers=["node1@example.org", "*@workers.example.org"])
    assert isinstance(c, XmppConfig)
    assert c.users == {"alice@example.org": "alice"}
    assert c.may_work("node1@example.org") and c.may_work("n7@workers.example.org")
    assert not c.may_work("alice@example.org")


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"tls": "ssl"}, "xmpp.tls: 'ssl' is not allowed: choose starttls, direct or plain"),
        ({"port": 70000}, "xmpp.port: 70000 is not allowed: Input should be less than or equal to 65535"),
        ({"jid": "no user here"}, "xmpp.jid: 'no user here' is not a JID"),
        ({"jid": "example.org"}, "xmpp.jid: 'example.org' must have a user part"),
        ({"password_file": "/nonexistent"}, "xmpp: give exactly one of password and password_file"),
        ({"colour": "blue"}, "xmpp.colour: is not an [xmpp] setting (allowed: jid, password"),
        ({"users": {"alice": "alice"}}, "xmpp.users: {'alice': 'alice'} key 'alice' must be a bare JID"),
        ({"users": {"a@b.org": "x y"}}, "a user name is 1 to 64 letters"),
        ({"workers": ["a@b/c"]}, "xmpp.workers: ['a@b/c'] 'a@b/c' must be a bare JID"),
        ({"rate_burst": 0}, "xmpp.rate_burst: 0 is not allowed: Input should be greater than or equal to 1"),
    ],
)
def test_bad_tables_name_the_key_the_value_and_what_is_allowed(table: dict[str, Any], message: str) -> None:
    found = config(**table)
    assert isinstance(found, Problem)
    assert found.message().startswith(message) or message in found.message(), found.message()


def test_password_file_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("secret\n")
    (tmp_path / "pw").chmod(0o600)
    c = parse({"xmpp": {"jid": "t@example.org", "password_file": "pw"}}, tmp_path)
    assert isinstance(c, XmppConfig) and c.secret() == "secret"
    missing = parse({"xmpp": {"jid": "t@example.org", "password_file": "nope"}}, tmp_path)
    assert isinstance(missing, Problem) and missing.message() == f"xmpp.password_file: '{tmp_path}/nope' is not " \
                                                                  "a readable file"
    (tmp_path / "empty").write_text("\n")
    (tmp_path / "empty").chmod(0o600)
    empty = parse({"xmpp": {"jid": "t@example.org", "password_file": "empty"}}, tmp_path)
    assert isinstance(empty, Problem) and "is empty" in empty.message()


def test_rate_limits_burst_then_refill_and_warn_once() -> None:
    limits = RateLimits(burst=3, per_minute=60)
    assert [limits.take("a@x", 0.0) for _ in range(6)] == ["ok", "ok", "ok", "warn", "drop", "drop"]
    assert limits.take("b@x", 0.0) == "ok"  # each sender has its own bucket
    assert limits.take("a@x", 1.0) == "ok"  # one a second comes back
    assert limits.take("a@x", 1.0) == "warn"


def frame_message(piece: bytes, more: bool) -> Message:
    msg = Message()
    msg["tiercel_frame"].xml.text = base64.b64encode(piece).decode()
    if more:
        msg["tiercel_frame"]["more"] = "1"
    return msg


@pytest.mark.parametrize("size", [0, 10, CHUNK, CHUNK + 1, 5 * CHUNK + 7])
def test_frames_are_cut_and_joined(size: int) -> None:
    frame = bytes(i % 251 for i in range(size))
    pieces = list(_pieces(frame))
    assert all(len(p) <= CHUNK for p, _ in pieces) and [m for _, m in pieces][-1] is False
    asm = Assembler()
    out = [asm.feed("w@x/1", frame_message(p, more)) for p, more in pieces]
    assert out[-1] == frame and all(o is None for o in out[:-1])


def test_a_frame_that_is_not_base64_is_dropped() -> None:
    msg = Message()
    msg["tiercel_frame"].xml.text = "***"
    assert Assembler().feed("w@x/1", msg) is None


def test_unfinished_frames_are_bounded_in_all_and_forgotten() -> None:
    asm = Assembler(limit=3 * CHUNK)
    piece = bytes(CHUNK)
    for sender in ("w@x/1", "w@x/2", "w@x/3"):
        assert asm.feed(sender, frame_message(piece, True)) is None
    assert asm.held == 3 * CHUNK and len(asm.partial) == 3
    assert asm.feed("w@x/4", frame_message(piece, True)) is None  # over the limit: this one is dropped
    assert "w@x/4" not in asm.partial and asm.held == 3 * CHUNK
    assert asm.feed("w@x/4", frame_message(b"tail", False)) is None  # the rest of it is skipped, not joined
    assert asm.feed("w@x/4", frame_message(b"next", False)) == b"next"  # its next frame is whole again
    asm.forget("w@x/1")  # it went offline halfway
    assert asm.held == 2 * CHUNK
    assert asm.feed("w@x/2", frame_message(b"end", False)) == piece + b"end"
    assert asm.held == CHUNK and list(asm.partial) == ["w@x/3"]
    assert asm.feed("w@x/5", frame_message(b"whole", False)) == b"whole" and asm.held == CHUNK


def test_jid_links_persist_and_override_the_config(tmp_path: Path) -> None:
    d = JidDirectory(tmp_path, {"alice@x.org": "alice", "dave@x.org": "dave"})
    assert d.jids_of("dave") == ["dave@x.org"]  # from the table alone
    d.link("carol@x.org", "carol")
    d.link("alice@x.org", "alice2")
    again = JidDirectory(tmp_path, {"alice@x.org": "alice"})
    assert again.user_of("carol@x.org") == "carol" and again.user_of("alice@x.org") == "alice2"
    assert again.jids_of("carol") == ["carol@x.org"] and again.user_of("eve@x.org") is None
    assert again.unlink("alice@x.org") and again.user_of("alice@x.org") == "alice"
    assert not again.unlink("alice@x.org")


class Drains:
    """The shell's drain command, recorded."""

    def __init__(self) -> None:
        self.drained: list[str] = []

    def drain(self, worker: str) -> None:
        self.drained.append(worker)


class FakeClient:
    def __init__(self) -> None:
        self.presences: list[str] = []
        self.frames: list[tuple[str, dict[str, Any]]] = []

    def send_presence(self, pto: Any = None, **_: Any) -> None:
        self.presences.append(str(pto))


def presence(sender: str, kind: str = "available", show: str = "") -> dict[str, Any]:
    return {"from": slixmpp.JID(sender), "type": kind, "show": show}


def test_presence_away_is_busy_available_resumes_unavailable_is_gone(monkeypatch: pytest.MonkeyPatch) -> None:
    left: list[str] = []
    drains = Drains()
    manager = SimpleNamespace(drain=drains.drain, worker_left=left.append, clock=lambda: 0.0,
                              settings=SimpleNamespace(heartbeat=5.0), worker_connected=lambda conn, msg: True)
    cfg = config(workers=["w1@example.org"])
    assert isinstance(cfg, XmppConfig)
    client = FakeClient()
    sent: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr("tiercel.gateways.xmpp.workers.send_frame",
                        lambda c, to, frame: sent.append((str(to), msgpack.unpackb(frame))))
    workers = XmppWorkers(manager, client, cfg)  # type: ignore[arg-type]
    full = "w1@example.org/node"

    def kinds() -> list[str]:
        return [x["t"] for _, m in sent for x in (m["m"] if m["t"] == "batch" else [m])]

    async def scenario() -> None:
        workers.on_presence(presence(full))
        assert client.presences == [full]  # found: answered with directed presence
        workers.on_presence(presence("eve@example.org/x"))
        assert client.presences == [full]  # not a worker: no answer at all
        hello = {"t": "hello", "v": PROTOCOL_VERSION, "id": "abc", "name": "node", "slots": 2}
        workers.on_frame(slixmpp.JID(full), msgpack.packb(hello))
        await asyncio.sleep(0)
        assert "abc" in workers.worker_ids() and kinds() == ["welcome"]
        workers.on_presence(presence(full, show="dnd"))
        assert drains.drained == ["abc"]
        workers.on_presence(presence(full))  # available again: it starts over with a fresh hello
        await asyncio.sleep(0)
        assert kinds() == ["welcome", "reconnect"]
        workers.on_presence(presence(full, "unavailable"))
        assert left == ["abc"] and not workers.peers
        workers.on_frame(slixmpp.JID("eve@example.org/x"), msgpack.packb(hello))
        assert sent[-1] == ("eve@example.org/x", {"t": "error", "msg": "eve@example.org is not allowed to run "
                                                                       "tasks here: add it to workers in the "
                                                                       "manager's [xmpp] table"})

    asyncio.run(scenario())


def test_worker_options_are_checked(tmp_path: Path) -> None:
    run = CliRunner().invoke
    out = run(cli, ["worker", "--password-file", str(tmp_path / "x")])
    assert out.exit_code == 2 and "password-file: is only for XMPP workers; add --xmpp JID" in out.output
    out = run(cli, ["worker", "--xmpp", "w1@example.org"])
    assert out.exit_code == 2 and "password-file: is required with --xmpp" in out.output
    (tmp_path / "pw").write_text("pw\n")
    (tmp_path / "pw").chmod(0o600)
    out = run(cli, ["worker", "--xmpp", "w1@example.org", "--password-file", str(tmp_path / "pw"),
                    "--xmpp-server", "host:99999"])
    assert out.exit_code == 2 and "xmpp-server: 'host:99999' must be HOST or HOST:PORT" in out.output
    out = run(cli, ["worker", "--xmpp", "not a jid", "--password-file", str(tmp_path / "pw")])
    assert out.exit_code == 2 and "xmpp: 'not a jid' is not a JID" in out.output
    assert "Traceback" not in out.output


def test_adhoc_sessions_are_forgotten_when_done_or_left_unanswered(monkeypatch: pytest.MonkeyPatch) -> None:
    from tiercel.gateways.xmpp import adhoc

    sessions: dict[str, dict[str, Any]] = {}
    client = SimpleNamespace(plugin={"xep_0050": SimpleNamespace(sessions=sessions)})
    async def status(user: str, job: int | None) -> str:
        return f"status of {user}"

    chat = SimpleNamespace(status=status)
    commands = adhoc.AdHoc(client, chat, lambda bare: "alice" if bare == "alice@x.org" else None,  # type: ignore[arg-type]
                           lambda bare, answer: None, lambda bare: None)
    now = [1000.0]
    monkeypatch.setattr(adhoc.time, "monotonic", lambda: now[0])
    iq = {"from": slixmpp.JID("alice@x.org/pc")}
    done = asyncio.run(commands._status(iq, {"id": "s1"}))
    assert done["notes"] == [("info", "status of alice")] and done["next"] is None
    sessions["s1"] = done  # slixmpp keeps a finished session after answering
    sessions["s2"] = {"id": "s2", "next": print, "tiercel_seen": now[0]}  # a form waiting for its answer
    asyncio.run(commands._status(iq, {"id": "s3"}))
    assert list(sessions) == ["s2"]  # the finished one is gone at the next request, the waiting one stays
    now[0] += adhoc.SESSION_TTL + 1
    asyncio.run(commands._status(iq, {"id": "s4"}))
    assert sessions == {}  # left unanswered too long
    with pytest.raises(slixmpp.exceptions.XMPPError) as refused:
        asyncio.run(commands._status({"from": slixmpp.JID("eve@x.org/pc")}, {"id": "s5"}))
    assert refused.value.condition == "forbidden" and "eve@x.org is not allowed" in str(refused.value.text)


def test_a_worker_busy_before_its_hello_is_sent_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    hellos: list[dict[str, Any]] = []
    drains = Drains()
    manager = SimpleNamespace(drain=drains.drain, clock=lambda: 0.0, settings=SimpleNamespace(heartbeat=5.0),
                              worker_connected=lambda conn, msg: hellos.append(msg) or True)
    cfg = config(workers=["w1@example.org"])
    assert isinstance(cfg, XmppConfig)
    monkeypatch.setattr("tiercel.gateways.xmpp.workers.send_frame", lambda c, to, frame: None)
    workers = XmppWorkers(manager, FakeClient(), cfg)  # type: ignore[arg-type]
    full = "w1@example.org/node"

    async def scenario() -> None:
        workers.on_presence(presence(full, show="dnd"))  # busy while it looks for the manager
        hello = {"t": "hello", "v": PROTOCOL_VERSION, "id": "abc", "name": "node", "slots": 4, "credit": 4}
        workers.on_frame(slixmpp.JID(full), msgpack.packb(hello))
        await asyncio.sleep(0)

    asyncio.run(scenario())
    assert [h.credit for h in hellos] == [0]  # its free slots are not counted ...
    assert drains.drained == ["abc"] and workers.peers[full].busy  # ... and it stays paused


def test_the_gateway_is_started_again_after_a_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    from tiercel.gateways.xmpp import gateway

    built: list[Any] = []
    tries = [0]

    class Gateway:
        def __init__(self, manager: Any, config: Any, jids: Any) -> None:
            tries[0] += 1
            if tries[0] == 2:
                raise OSError("password file unreadable for a moment")  # failing while being built
            self.submitted_by: dict[int, str] = {}
            self.pending: list[tuple[str, str]] = []
            self.held: list[tuple[str, str]] = []
            self.limits, self.refused = object(), {}
            built.append(self)

        async def run(self) -> None:
            if len(built) == 1:
                self.submitted_by[7] = "alice@x.org"
                self.held.append(("alice@x.org", "notice"))
                raise RuntimeError("a bug")
            if len(built) == 2:
                raise OSError("password file gone")

    monkeypatch.setattr(gateway, "XmppGateway", Gateway)
    monkeypatch.setattr(gateway, "RESTART_DELAY", 0.0)
    from tiercel.gateways.xmpp.handle import GatewayHandle

    handle = GatewayHandle(SimpleNamespace(), SimpleNamespace(), SimpleNamespace())  # type: ignore[arg-type]
    asyncio.run(handle._run(handle.config))  # type: ignore[arg-type]
    assert len(built) == 3 and tries[0] == 4  # failed three times, started again each time, then ran to its end
    assert built[2].submitted_by == {7: "alice@x.org"} and built[2].limits is built[0].limits
    assert built[2].pending == [("alice@x.org", "notice")]  # a notice held back when it failed is sent, once


def test_an_adhoc_form_answered_too_late_is_refused_and_the_one_being_answered_is_kept(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from tiercel.gateways.xmpp import adhoc

    sessions: dict[str, dict[str, Any]] = {}
    client = SimpleNamespace(plugin={"xep_0050": SimpleNamespace(sessions=sessions)})
    commands = adhoc.AdHoc(client, SimpleNamespace(), lambda bare: "alice",  # type: ignore[arg-type]
                           lambda bare, answer: None, lambda bare: None)
    now = [1000.0]
    monkeypatch.setattr(adhoc.time, "monotonic", lambda: now[0])
    jid = slixmpp.JID("alice@x.org/pc")
    old = sessions["s1"] = {"id": "s1", "next": print, "tiercel_seen": now[0]}
    now[0] += adhoc.SESSION_TTL + 1
    with pytest.raises(slixmpp.exceptions.XMPPError) as late:
        commands._user(jid, old)
    assert late.value.condition == "not-allowed" and "waited too long" in str(late.value.text)
    # A form being acted on (slixmpp deletes it itself afterwards) is never swept meanwhile.
    busy = sessions["s2"] = {"id": "s2", "next": None, "tiercel_seen": now[0]}
    commands.answering.add("s2")
    commands._user(jid, {"id": "s3"})
    assert sessions == {"s2": busy}


def test_an_adhoc_form_sent_twice_at_once_is_acted_on_once() -> None:
    from tiercel.gateways.xmpp import adhoc

    commands = adhoc.AdHoc(SimpleNamespace(plugin={"xep_0050": SimpleNamespace(sessions={})}),  # type: ignore[arg-type]
                           SimpleNamespace(), lambda bare: "alice", lambda bare, answer: None, lambda bare: None)
    session = {"id": "s1", "from": slixmpp.JID("alice@x.org/pc")}
    commands._answer_once(session)
    with pytest.raises(slixmpp.exceptions.XMPPError) as twice:
        commands._answer_once(session)
    assert twice.value.condition == "bad-request" and "being answered already" in str(twice.value.text)


def test_an_xmpp_worker_settles_only_what_it_was_handed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two allowed worker JIDs on a real manager shell and engine: the second one's results for the
    first one's task, and for a task never handed out, are dropped, unacknowledged and counted; the
    second JID cannot take over the first one's worker id either."""
    from tiercel.core.model import JobSpec, UserName
    from tiercel.core.ranges import IndexRanges
    from tiercel.manager.settings import Settings
    from tiercel.manager.shell import Manager
    from tiercel.store import SqliteStore

    cfg = config(workers=["w1@example.org", "w2@example.org"])
    assert isinstance(cfg, XmppConfig)
    sent: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr("tiercel.gateways.xmpp.workers.send_frame",
                        lambda c, to, frame: sent.append((str(to), msgpack.unpackb(frame))))

    def to(jid: str) -> list[dict[str, Any]]:
        return [x for who, m in sent if who == jid for x in (m["m"] if m["t"] == "batch" else [m])]

    async def scenario() -> None:
        manager = Manager(SqliteStore(tmp_path / "t.db"), Settings(state_dir=tmp_path))
        await manager.start()
        workers = XmppWorkers(manager, FakeClient(), cfg)  # type: ignore[arg-type]
        one, two = "w1@example.org/a", "w2@example.org/b"
        hello = {"t": "hello", "v": PROTOCOL_VERSION, "name": "node", "slots": 1}
        workers.on_frame(slixmpp.JID(one), msgpack.packb({**hello, "id": "one"}))
        workers.on_frame(slixmpp.JID(two), msgpack.packb({**hello, "id": "two", "credit": 0}))
        ran = await manager.submit(UserName("alice"), JobSpec(("true",), IndexRanges.of_size(1)))
        never = await manager.submit(UserName("alice"), JobSpec(("true",), IndexRanges.of_size(1),
                                                                 requires=frozenset({"gpu"})))
        await asyncio.sleep(0.05)
        (task,) = [t for m in to(one) if m["t"] == "tasks" for t in m["tasks"]]
        assert task[:3] == [ran.id, 0, 1]
        forged = [[ran.id, 0, 1, "done", 0, 0.0, 0.0, b"x", b"", task[3]],  # one's seal is not two's
                  [never.id, 0, 1, "done", 0, 0.0, 0.0, b"x", b"", b""]]
        workers.on_frame(slixmpp.JID(two), msgpack.packb({"t": "res", "r": forged, "c": 0}, use_bin_type=True))
        await asyncio.sleep(0.05)
        assert [m for m in to(two) if m["t"] == "ack"] == []
        assert manager.engine.workers["two"].refused == 2
        assert manager.engine.jobs[ran.id].running[0].worker == "one" and never.id in manager.engine.jobs
        workers.on_frame(slixmpp.JID(two), msgpack.packb({**hello, "id": "one"}))  # take over one's id
        await asyncio.sleep(0.05)
        errors = [m["msg"] for m in to(two) if m["t"] == "error"]
        assert len(errors) == 1 and "in use by a worker with other credentials" in errors[0]
        good = [[ran.id, 0, 1, "done", 0, 0.0, 0.0, b"ok", b"", task[3]]]
        workers.on_frame(slixmpp.JID(one), msgpack.packb({"t": "res", "r": good, "c": 1}, use_bin_type=True))
        await asyncio.sleep(0.1)
        assert [m["r"] for m in to(one) if m["t"] == "ack"] == [[[ran.id, 0, 1]]]
        manager.close()

    asyncio.run(scenario())


def test_chat_holds_releases_and_retries_only_its_users_jobs(tmp_path: Path) -> None:
    from tiercel.core.model import UserName
    from tiercel.gateways.xmpp.chat import Chat
    from tiercel.manager.settings import Settings
    from tiercel.manager.shell import Manager
    from tiercel.store import SqliteStore

    async def scenario() -> None:
        manager = Manager(SqliteStore(tmp_path / "t.db"), Settings(state_dir=tmp_path))
        await manager.start()
        try:
            chat = Chat(manager)
            alice, bob = UserName("alice"), UserName("bob")
            started = await chat.answer(alice, "{'type':'job', 'command':'true', 'queue':3, 'hold':True}")
            job = started.submitted
            assert job is not None and manager.engine.jobs[job].spec.held
            assert (await chat.answer(bob, f"{{'type':'release', 'job_id': {job}}}")).text.startswith(
                "{'type':'error'")
            assert (await chat.answer(alice, f"{{'type':'release', 'job_id': {job}}}")).text == \
                f"{{'type':'released', 'job_id': {job}}}"
            assert not manager.engine.jobs[job].spec.held
            assert (await chat.answer(alice, f"{{'type':'hold', 'job_id': {job}}}")).text == \
                f"{{'type':'held', 'job_id': {job}}}"
            nothing = await chat.answer(alice, f"{{'type':'retry', 'job_id': {job}}}")
            assert "has no failed tasks to run again" in nothing.text
        finally:
            manager.close()

    asyncio.run(scenario())
