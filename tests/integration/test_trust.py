"""Trust boundaries against a real manager: what a worker token may settle, whose worker id is
whose, what a malformed hello is told, and that the state directory is private."""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import msgpack
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.integration.conftest import Cluster, wait_until
from tiercel.wire.messages import PROTOCOL_VERSION

pytestmark = pytest.mark.integration


def _messages(frame: bytes) -> list[dict[str, Any]]:
    msg = msgpack.unpackb(frame)
    return list(msg["m"]) if msg["t"] == "batch" else [msg]


async def _hello(ws: Any, wid: str, **extra: Any) -> None:
    await ws.send(msgpack.packb({"t": "hello", "v": PROTOCOL_VERSION, "id": wid, "name": wid, "slots": 1,
                                 "credit": 0, **extra}, use_bin_type=True))


async def _until(ws: Any, kind: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        for m in _messages(await asyncio.wait_for(ws.recv(), max(0.1, deadline - time.monotonic()))):
            if m["t"] == kind:
                return m


def _raw(cluster: Cluster, method: str, path: str, token: str | None = None, **kw: Any) -> httpx.Response:
    """A request whose error answers the test reads itself (the client raises on them)."""
    headers = {"Authorization": f"Bearer {token or cluster.admin_token}"}
    return httpx.request(method, cluster.url + path, headers=headers, timeout=30, **kw)


def _url(cluster: Cluster) -> str:
    return cluster.url.replace("http://", "ws://") + "/v1/worker"


def test_a_worker_token_settles_only_what_it_was_handed(cluster: Cluster) -> None:
    """A worker token's forged results (a job never dispatched, a task running on another worker)
    are dropped, logged with the worker's name, not acknowledged and counted."""
    forger_token = cluster.cli("token", "create", "--user", "w2", "--role", "worker").stdout.strip().split()[-1]
    marker = cluster.root / "marker"
    with cluster.client() as c:
        never = c.submit(["true"], queue=2, requires=["nowhere"])  # no worker has the tag: never handed out
        busy = c.submit(["sh", "-c", f"while [ ! -e {marker} ]; do sleep 0.05; done; echo honest"], queue=1,
                        append_index=False)
    cluster.start_worker("--slots", "1", name="honest")
    with cluster.client() as c:
        wait_until(lambda: c.job(busy.id).data["running"] == 1, what="the honest worker to run its task")

    async def forge() -> list[dict[str, Any]]:
        async with connect(_url(cluster), additional_headers={"Authorization": f"Bearer {forger_token}"}) as ws:
            await _hello(ws, "forger-1")
            await _until(ws, "welcome")
            now = time.time()
            reports = [[never.id, 0, 1, "done", 0, now, now, b"FORGED\n", b"", b""],
                       [busy.id, 0, 1, "done", 0, now, now, b"FORGED\n", b"", b"\x00" * 8],
                       [never.id, 1, 1, "failed", 1, now, now, b"", b"", b"12345678"]]
            await ws.send(msgpack.packb({"t": "res", "r": reports, "c": 0}, use_bin_type=True))
            seen: list[dict[str, Any]] = []
            await asyncio.sleep(0.3)
            # read while the forger is still known: silent past the time-out (2 s here), it is forgotten
            with cluster.client() as c:
                refused.extend(w["refused"] for w in c.workers() if w["name"] == "forger-1")
            with pytest.raises(TimeoutError):  # nothing is acknowledged
                while True:
                    seen += _messages(await asyncio.wait_for(ws.recv(), 1.0))
            return seen

    refused: list[int] = []
    assert [m for m in asyncio.run(forge()) if m["t"] == "ack"] == []
    assert refused == [3]
    with cluster.client() as c:
        assert c.job(never.id).data["queued"] == 2 and c.job(never.id).data["done"] == 0
        assert c.job(busy.id).data["running"] == 1 and c.job(busy.id).data["done"] == 0
        marker.touch()
        done = cluster.wait_job(c.job(busy.id))
        assert done.state == "done"
        assert c.request("GET", f"/v1/jobs/{busy.id}/logs").text == "honest\n"
    log = (cluster.logs / "manager.log").read_text()
    assert "worker forger-1 (forger-1) reported on 3 attempt(s) it was not given, dropped" in log


def test_a_worker_id_belongs_to_the_credentials_that_first_used_it(cluster: Cluster) -> None:
    other = cluster.cli("token", "create", "--user", "w3", "--role", "worker").stdout.strip().split()[-1]

    async def both() -> str:
        headers = {"Authorization": f"Bearer {cluster.worker_token}"}
        async with connect(_url(cluster), additional_headers=headers) as first:
            await _hello(first, "shared-id")
            await _until(first, "welcome")
            async with connect(_url(cluster), additional_headers={"Authorization": f"Bearer {other}"}) as second:
                await _hello(second, "shared-id")
                error = await _until(second, "error")
            await first.send(msgpack.packb({"t": "hb"}))
            with pytest.raises(TimeoutError):  # the first session goes on: no error, no replacement
                await _until(first, "error", timeout=1.0)
            return str(error["msg"])

    assert "worker id 'shared-id' is in use by a worker with other credentials" in asyncio.run(both())


@pytest.mark.parametrize(("frame", "needle"), [
    ("a text frame", "not a text frame"),
    (b"", "the first frame is empty"),
    (b"\xc1", "the first frame is not msgpack"),
    (msgpack.packb([1, 2]), "the first message must be a hello"),
    (msgpack.packb({"t": "hello", "v": 1}), "protocol version '1' is not supported"),
    (msgpack.packb({"t": "hello", "v": PROTOCOL_VERSION, "id": "x", "name": "x", "slots": 1, "cpus": "many"}),
     "cpus: 'many' must be a whole number"),
    (msgpack.packb({"t": "hello", "v": PROTOCOL_VERSION, "id": "site:hpc", "name": "x", "slots": 1}),
     "names a batch site's own place"),
])
def test_a_malformed_hello_is_told_what_is_wrong(cluster: Cluster, frame: bytes | str, needle: str) -> None:
    async def hello() -> str:
        async with connect(_url(cluster), additional_headers={"Authorization": f"Bearer {cluster.worker_token}"}) \
                as ws:
            await ws.send(frame)
            return str((await _until(ws, "error"))["msg"])

    msg = asyncio.run(hello())
    assert msg.startswith("hello: ") and needle in msg, msg


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_state_dir_is_private(cluster: Cluster) -> None:
    with cluster.client() as c:
        c.submit(["true"], queue=1, env={"SECRET": "hunter2"})
    assert _mode(cluster.state) == 0o700
    files = [p for p in cluster.state.iterdir() if p.is_file()]
    assert {p.name for p in files} >= {"tiercel.db", "tiercel.db-wal", "admin.token", "worker.token"}
    assert {p.name: _mode(p) for p in files} == {p.name: 0o600 for p in files}


def test_an_existing_state_dir_is_made_private_and_said_so(bare_cluster: Cluster) -> None:
    state = bare_cluster.state
    state.mkdir(parents=True)
    os.chmod(state, 0o755)
    (state / "notes.txt").write_text("left by hand")
    os.chmod(state / "notes.txt", 0o644)
    bare_cluster.start_manager()
    bare_cluster.kill_manager(15)
    assert _mode(state) == 0o700 and _mode(state / "notes.txt") == 0o600
    assert {p.name: _mode(p) for p in state.iterdir() if p.is_file()} == \
        {p.name: 0o600 for p in state.iterdir() if p.is_file()}
    log = (bare_cluster.logs / "manager.log").read_text()
    assert log.count("was readable by other accounts; made private") == 1
    assert "notes.txt was 644" in log
    bare_cluster.start_manager()  # a second start finds nothing to mend, and says nothing
    log = (bare_cluster.logs / "manager.log").read_text()
    assert log.count("was readable by other accounts; made private") == 1


def test_a_manager_on_a_full_disk_says_so_at_start(tmp_path: Path) -> None:
    """Restarting on a full disk: one line naming the disk, no traceback, no word about the port."""
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], check=True)
    try:
        (mount / "filler").write_bytes(b"\0" * (3 * 1024 * 1024))
        out = subprocess.run([sys.executable, "-m", "tiercel", "manager", "--listen", "127.0.0.1:0",
                              "--state-dir", str(mount / "state")], capture_output=True, text=True, timeout=60)
        assert out.returncode == 2
        assert "the manager's disk is full" in out.stderr and "Traceback" not in out.stderr
        assert "port" not in out.stderr
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_tokens_are_listed_without_secrets_and_a_revoked_one_is_refused_at_once(cluster: Cluster) -> None:
    import json

    made = json.loads(cluster.cli("token", "create", "--user", "bob", "--json").stdout)
    work = json.loads(cluster.cli("token", "create", "--user", "w9", "--role", "worker", "--json").stdout)
    with cluster.client(made["token"]) as bob:
        assert bob.whoami()["user"] == "bob"
    listed = json.loads(cluster.cli("token", "list", "--json").stdout)
    assert {(t["user"], t["role"]) for t in listed} >= {("bob", "user"), ("w9", "worker"), ("worker", "worker")}
    text = json.dumps(listed) + cluster.cli("token", "list").stdout
    assert made["token"] not in text and work["token"] not in text
    assert cluster.cli("token", "list").stdout.startswith("ID")
    bobs = next(t for t in listed if t["user"] == "bob")
    assert bobs["last_used"] is not None and next(t for t in listed if t["user"] == "w9")["last_used"] is None
    assert cluster.cli("token", "list", token=made["token"]).returncode == 2  # not an admin

    async def sessions() -> tuple[str, str]:
        """A worker connection and an event stream of tokens about to be revoked: both are closed."""
        async with connect(_url(cluster), additional_headers={"Authorization": f"Bearer {work['token']}"}) as ws, \
                connect(cluster.url.replace("http://", "ws://") + "/v1/events",
                        additional_headers={"Authorization": f"Bearer {made['token']}"}) as events:
            await _hello(ws, "to-revoke")
            await _until(ws, "welcome")
            for t in json.loads(cluster.cli("token", "list", "--json").stdout):
                if t["user"] in ("bob", "w9"):
                    out = cluster.cli("token", "revoke", t["id"])
                    assert out.returncode == 0 and "revoked" in out.stdout, out.stderr
            error = await _until(ws, "error")
            last = json.loads(await asyncio.wait_for(events.recv(), 10))
            with pytest.raises(ConnectionClosed):  # the stream is closed after it
                await asyncio.wait_for(events.recv(), 10)
            return str(error["msg"]), str(last["event"])

    assert asyncio.run(sessions()) == ("this worker's token was revoked", "token_revoked")
    assert _raw(cluster, "GET", "/v1/whoami", made["token"]).status_code == 401
    again = cluster.cli("token", "revoke", bobs["id"])
    assert again.returncode == 2 and "is not the id of a token" in again.stderr
    assert {t["user"] for t in json.loads(cluster.cli("token", "list", "--json").stdout)}.isdisjoint({"bob", "w9"})


def test_a_worker_token_sees_no_jids_whatever_its_name(cluster: Cluster) -> None:
    answer = _raw(cluster, "GET", "/v1/jids", cluster.worker_token)
    assert answer.status_code == 403 and "a worker token cannot" in answer.json()["error"]


def test_new_work_is_refused_while_the_disk_is_full_and_reads_go_on(bare_cluster: Cluster, tmp_path: Path) -> None:
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], check=True)
    cluster = bare_cluster
    cluster.state = mount / "state"
    try:
        cluster.start_manager()
        with cluster.client() as c:
            done = c.submit(["true"], queue=1)
            filler = mount / "filler"
            with open(filler, "wb") as f, contextlib.suppress(OSError):  # fill it to the last block
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            answer = _raw(cluster, "POST", "/v1/jobs", json={"command": ["true"], "queue": 1})
            assert answer.status_code == 507
            assert answer.json()["error"].startswith("the manager's disk is full: ")
            assert c.job(done.id).data["queued"] == 1 and len(c.jobs()) == 1  # reads go on; nothing kept
            refused = cluster.cli("submit", "--", "true")
            assert refused.returncode == 2 and "the manager's disk is full" in refused.stderr
            filler.unlink()
            again = c.submit(["true"], queue=1)
            assert again.id == done.id + 1  # the refused submissions used up no job id
    finally:
        cluster.stop()
        subprocess.run(["umount", "-l", str(mount)], check=False)
    log = (cluster.logs / "manager.log").read_text()
    assert "Traceback" not in log
