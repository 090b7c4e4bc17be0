"""Bad input: a one-line error naming field, value and what is allowed; non-zero exit;
no traceback; nothing stored; the manager keeps serving."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import Cluster, wait_until

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--queue", "0", "--", "true"], "queue: 0 must be between 1 and 100000000"),
        (["--queue", "-5", "--", "true"], "queue: -5 must be between 1"),
        (["--queue", "1000000000000", "--", "true"], "queue: 1000000000000 must be between 1 and 100000000"),
        (["--array", "10-2", "--", "true"], "array: '10-2' range ends before it starts"),
        (["--array", "a-b", "--", "true"], "array: 'a-b' is not an index or a range"),
        (["--queue", "5"], "command: is required"),
        (["--walltime", "forever", "--", "true"], "walltime: 'forever' must be a duration"),
        (["--env", "NOEQUALS", "--", "true"], "env: 'NOEQUALS' must be written KEY=VALUE"),
        (["--requires", "bad!", "--", "true"], "requires: 'bad!' must be a tag"),
    ],
)
def test_cli_submit_errors(cluster: Cluster, args: list[str], needle: str) -> None:
    out = cluster.cli("submit", *args)
    assert out.returncode != 0
    assert needle in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "Traceback" not in out.stderr + out.stdout
    with cluster.client() as c:
        assert c.jobs() == []  # nothing stored


def test_malformed_job_file(cluster: Cluster, tmp_path: Path) -> None:
    bad = tmp_path / "bad.job"
    bad.write_text("queue = 10\ncommand = x\n")
    out = cluster.cli("submit", "--file", str(bad))
    assert out.returncode != 0 and "not a valid .job file" in out.stderr and "Traceback" not in out.stderr
    unknown = tmp_path / "unknown.toml"
    unknown.write_text('[job]\ncommand = "x"\ncolour = "red"\n')
    out = cluster.cli("submit", "--file", str(unknown))
    assert out.returncode != 0 and "colour: 'red' is not a known field" in out.stderr


def test_unknown_job_and_someone_elses_job(cluster: Cluster) -> None:
    with cluster.client() as admin:
        bob = admin.json("POST", "/v1/tokens", json={"user": "bob", "role": "user"})["token"]
        carol = admin.json("POST", "/v1/tokens", json={"user": "carol", "role": "user"})["token"]
    out = cluster.cli("submit", "--queue", "3", "--json", "--", "true", token=bob)
    assert out.returncode == 0, out.stderr
    for args in (["status", "999"], ["cancel", "999"], ["logs", "999"], ["wait", "999"]):
        res = cluster.cli(*args, token=bob)
        assert res.returncode != 0 and "job: 999 is not a job of yours" in res.stderr, (args, res.stderr)
    # carol neither sees nor cancels bob's job
    res = cluster.cli("cancel", "1", token=carol)
    assert res.returncode != 0 and "job: 1 is not a job of yours" in res.stderr
    assert cluster.cli("status", "--json", token=carol).stdout.strip() == "[]"
    res = cluster.cli("cancel", token=carol)
    assert "cancelled 0 job(s)" in res.stdout
    with cluster.client(bob) as c:
        assert c.job(1).state == "queued"
    # the admin sees everyone's jobs with --all
    assert '"owner": "bob"' in cluster.cli("status", "--all", "--json").stdout


def test_api_errors_are_one_line_json(cluster: Cluster) -> None:
    h = {"Authorization": f"Bearer {cluster.admin_token}"}
    with httpx.Client(base_url=cluster.url, headers=h) as http:
        r = http.post("/v1/jobs", json={"command": "x", "queue": 5, "colour": "red"})
        assert r.status_code == 422 and r.json()["field"] == "colour"
        r = http.post("/v1/jobs", content=b"{not json", headers={"content-type": "application/json"})
        assert r.status_code == 400 and r.json()["field"] == "request" and "not valid JSON" in r.json()["error"]
        r = http.post("/v1/tokens", content=b"x" * (2 * 1024 * 1024), headers={"content-type": "application/json"})
        assert r.status_code == 413 and "too large" in r.json()["error"]
        # a job may be larger (a sweep's entries), and is read as JSON
        r = http.post("/v1/jobs", content=b"x" * (2 * 1024 * 1024), headers={"content-type": "application/json"})
        assert r.status_code == 400 and r.json()["field"] == "request"
        r = http.post("/v1/jobs", json={"command": "x", "queue": 0})
        assert r.status_code == 422 and r.json()["error"].startswith("queue: 0 must be between")
        r = http.get("/v1/jobs/abc")
        assert r.status_code == 422 and "job_id" in r.json()["error"]
        r = httpx.get(cluster.url + "/v1/jobs", headers={"Authorization": "Bearer nope"})
        assert r.status_code == 401 and "token" in r.json()["error"]
        # and it keeps serving
        assert http.get("/v1/jobs").json() == []
        ok = http.post("/v1/jobs", json={"command": "true", "queue": 2})
        assert ok.status_code == 201


def test_worker_token_cannot_submit(cluster: Cluster) -> None:
    out = cluster.cli("submit", "--", "true", token=cluster.worker_token)
    assert out.returncode != 0 and "a worker token cannot submit jobs" in out.stderr


def test_only_an_admin_links_or_unlinks_jids(cluster: Cluster) -> None:
    with cluster.client() as admin:
        bob = admin.json("POST", "/v1/tokens", json={"user": "bob", "role": "user"})["token"]
    for args, doing in ((("link-jid", "bob@example.org", "bob"), "link JIDs to users"),
                        (("unlink-jid", "bob@example.org"), "unlink JIDs")):
        out = cluster.cli("user", *args, token=bob)
        assert out.returncode != 0 and f"token: only an admin may {doing}" in out.stderr, out.stderr
        assert "Traceback" not in out.stderr
    assert "bob@example.org" not in cluster.cli("user", "jids").stdout


def test_unreachable_manager_is_explained(cluster: Cluster) -> None:
    cluster.url = "http://127.0.0.1:9"
    out = cluster.cli("status")
    assert out.returncode != 0
    assert "cannot reach the manager at http://127.0.0.1:9" in out.stderr and "Traceback" not in out.stderr


def test_wait_timeout_exits_124(cluster: Cluster) -> None:
    with cluster.client() as c:
        job = c.submit("true", queue=3)  # no worker: it cannot finish
    out = cluster.cli("wait", str(job.id), "--timeout", "0.5", "--quiet")
    assert out.returncode == 124 and f"job {job.id} did not finish within 0.5s" in out.stderr


def test_worker_with_a_bad_manager_url(cluster: Cluster) -> None:
    out = cluster.cli("worker", "--manager", "localhost:8750")
    assert out.returncode == 2 and "manager: 'localhost:8750' must be the manager's URL" in out.stderr


def test_manager_on_a_busy_port(cluster: Cluster, tmp_path: Path) -> None:
    port = cluster.url.rsplit(":", 1)[1]
    out = cluster.cli("manager", "--listen", f"127.0.0.1:{port}", "--state-dir", str(tmp_path / "other"))
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert f"listen: cannot serve on 127.0.0.1:{port}: Address already in use" in out.stderr
    # and a second manager on the same store is refused
    out = cluster.cli("manager", "--listen", "127.0.0.1:0", "--state-dir", str(cluster.state))
    assert out.returncode != 0 and "is in use by another manager" in out.stderr


def test_more_malformed_input(cluster: Cluster, tmp_path: Path) -> None:
    latin = tmp_path / "latin.toml"
    latin.write_bytes(b'[job]\ncommand = "caf\xe9"\n')
    out = cluster.cli("submit", "--file", str(latin))
    assert out.returncode == 2 and "is not UTF-8 text" in out.stderr and "Traceback" not in out.stderr
    env_string = tmp_path / "env.toml"
    env_string.write_text('[job]\ncommand = "true"\nenv = "A=B"\n')
    out = cluster.cli("submit", "--file", str(env_string), "-e", "X=1")
    assert out.returncode == 2 and "env: 'A=B' in the job file must be a table" in out.stderr
    notable = tmp_path / "notable.toml"
    notable.write_text('job = 5\n')
    out = cluster.cli("submit", "--file", str(notable))
    assert "must hold a [job] table" in out.stderr  # brackets shown, not eaten as markup
    out = cluster.cli("status", "99999999999999999999")
    assert out.returncode == 2 and "job_id" in out.stderr and "Internal Server Error" not in out.stderr
    with cluster.client() as c:
        r = c._http.post("/v1/jobs", json={"command": "true", "env": {"A": "x\u0000y"}})
        assert r.status_code == 422 and r.json()["field"] == "env.A"


def test_run_refuses_a_live_managers_state_dir(cluster: Cluster) -> None:
    out = cluster.cli("run", "--state-dir", str(cluster.state), "--", "true")
    assert out.returncode == 2 and "is in use by a running manager" in out.stderr
    assert (cluster.state / "manager.json").exists()


def test_a_rogue_worker_frame_is_dropped_and_the_worker_stays(cluster: Cluster) -> None:
    """Frames a worker should never send (not msgpack, text, unknown kinds, results of the wrong
    shape) are logged and dropped: the same connection's good results still count."""
    import asyncio
    import time

    import msgpack
    from websockets.asyncio.client import connect

    from tiercel.wire.messages import PROTOCOL_VERSION

    with cluster.client() as c:
        job = c.submit(["true"], queue=1)
    assert job.id is not None

    async def rogue() -> list[int]:
        url = cluster.url.replace("http://", "ws://") + "/v1/worker"
        async with connect(url, additional_headers={"Authorization": f"Bearer {cluster.worker_token}"}) as ws:
            await ws.send(msgpack.packb({"t": "hello", "v": PROTOCOL_VERSION, "id": "rogue-1", "name": "rogue",
                                         "slots": 1}))
            tasks: list[list[int]] = []
            while not tasks:
                frame = msgpack.unpackb(await asyncio.wait_for(ws.recv(), 30))
                for m in frame["m"] if frame["t"] == "batch" else [frame]:
                    tasks += m.get("tasks", []) if m["t"] == "tasks" else []
            *ref, seal = tasks[0]
            now = time.time()
            good = [*ref, "done", 0, now, now, b"", b"", seal]
            for bad in (b"\xc1 not msgpack", "a text frame", msgpack.packb([1, 2]), msgpack.packb({"t": "odd"}),
                        b"\x81\x91\x01\x02",  # a map with a list for a key
                        msgpack.packb({"t": "res", "r": [[1, 2]], "c": 1}),
                        msgpack.packb({"t": "res", "r": "nonsense", "c": "many"}),
                        msgpack.packb({"t": "res", "r": [], "c": float("inf")}),
                        msgpack.packb({"t": "res", "r": [[*ref, "done", 0, now, now, 10**12, b"", seal]]}),
                        # a good report beside a bad one: neither counts, so the task is not settled yet
                        msgpack.packb({"t": "res", "r": [good, [*ref, "nope", 0, now, now, b"", b"", seal]]},
                                      use_bin_type=True)):
                await ws.send(bad)
            with pytest.raises(TimeoutError):  # nothing was acknowledged
                while True:
                    frame = msgpack.unpackb(await asyncio.wait_for(ws.recv(), 1.0))
                    assert "ack" not in [m["t"] for m in (frame["m"] if frame["t"] == "batch" else [frame])]
            await ws.send(msgpack.packb({"t": "res", "c": 1, "r": [good]}, use_bin_type=True))
            while True:  # the ack of the good result comes back on the same connection
                frame = msgpack.unpackb(await asyncio.wait_for(ws.recv(), 30))
                for m in frame["m"] if frame["t"] == "batch" else [frame]:
                    if m["t"] == "ack":
                        return [list(x) for x in m["r"]]

    assert asyncio.run(rogue()) == [[job.id, 0, 1]]
    with cluster.client() as c:
        wait_until(lambda: c.job(job.id).state == "done", what="the job to end with the good result")
    log = (cluster.logs / "manager.log").read_text()
    assert "not msgpack" in log and "unknown kind 'odd'" in log and log.count("malformed 'res' frame") == 5
    assert "Traceback" not in log


def test_a_hello_with_malformed_held_tasks_is_refused_before_anything_changes(cluster: Cluster) -> None:
    import asyncio

    import msgpack
    from websockets.asyncio.client import connect

    from tiercel.wire.messages import PROTOCOL_VERSION

    async def hello() -> dict[str, object]:
        url = cluster.url.replace("http://", "ws://") + "/v1/worker"
        async with connect(url, additional_headers={"Authorization": f"Bearer {cluster.worker_token}"}) as ws:
            await ws.send(msgpack.packb({"t": "hello", "v": PROTOCOL_VERSION, "id": "odd-1", "name": "odd",
                                         "slots": 1, "held": [["x", 0, 1]]}))
            while True:
                frame = msgpack.unpackb(await asyncio.wait_for(ws.recv(), 30))
                for m in frame["m"] if frame["t"] == "batch" else [frame]:
                    if m["t"] == "error":
                        return dict(m)

    error = asyncio.run(hello())
    assert str(error["msg"]).startswith("hello: malformed held tasks or results")
    with cluster.client() as c:
        assert [w for w in c.workers() if w["name"] == "odd"] == []
        assert c.json("GET", "/healthz")["status"] == "ok"


def _assert_still_empty_and_serving(http: httpx.Client) -> None:
    assert http.get("/v1/jobs").json() == []  # nothing stored
    assert http.post("/v1/jobs", json={"command": "true"}).status_code == 201  # and it keeps serving


def test_bodies_the_json_parser_rejects_get_the_error_shape(cluster: Cluster) -> None:
    h = {"Authorization": f"Bearer {cluster.admin_token}", "content-type": "application/json"}
    with httpx.Client(base_url=cluster.url, headers=h) as http:
        r = http.post("/v1/jobs", content=b'{"command":"\xff\xfe"}')
        assert r.status_code == 400, r.text
        assert r.json()["field"] == "request" and "not UTF-8" in r.json()["error"]
        r = http.post("/v1/jobs", content=b"[" * 100_000 + b"]" * 100_000)
        assert r.status_code == 400, r.text
        assert r.json()["field"] == "request" and "too deeply" in r.json()["error"]
        truncated = b'{"command": "x", "queue"'
        r = http.post("/v1/jobs", content=truncated)
        assert r.status_code == 400, r.text
        assert r.json()["field"] == "request"
        assert f"at character {len(truncated)}" in r.json()["error"]  # where the JSON breaks off

        def chunks() -> Iterator[bytes]:  # no Content-Length: the size shows only as it arrives
            for _ in range(32):
                yield b"x" * 65536

        r = http.post("/v1/tokens", content=chunks())
        assert r.status_code == 413, r.text
        assert r.json()["field"] == "request" and "too large" in r.json()["error"]
        _assert_still_empty_and_serving(http)


@pytest.mark.parametrize(("field", "value", "needle"), [
    ("cleanup", "rm -rf /tmp/x\u0000; echo", "must not contain NUL"),
    ("name", "sweep\u0000", "must not contain control characters"),
    ("name", "two\nlines", "must not contain control characters"),
    ("cwd", "/tmp/\u001b[31m", "must not contain control characters"),
    ("queue_name", "default\u0000", "must not contain control characters"),
    ("walltime", "10m\u0000", "must not contain control characters"),
    ("requires", ["gpu\u0000"], "must not contain control characters"),
])
def test_nul_and_control_characters_are_refused_in_every_string_field(
        cluster: Cluster, field: str, value: object, needle: str) -> None:
    with httpx.Client(base_url=cluster.url, headers={"Authorization": f"Bearer {cluster.admin_token}"}) as http:
        r = http.post("/v1/jobs", json={"command": "true", field: value})
        assert r.status_code == 422, r.text
        assert r.json()["field"].split(".")[0] == field and needle in r.json()["error"]
        _assert_still_empty_and_serving(http)


def test_control_characters_in_tokens_and_reservations_are_refused(cluster: Cluster) -> None:
    with httpx.Client(base_url=cluster.url, headers={"Authorization": f"Bearer {cluster.admin_token}"}) as http:
        r = http.post("/v1/tokens", json={"user": "al\u0000ice"})
        assert r.status_code == 422 and r.json()["field"] == "user", r.text
        r = http.post("/v1/reservations", json={"site": "pool\u0000", "slots": 1, "start": "now", "end": "+1h"})
        assert r.status_code == 422 and r.json()["field"] == "site", r.text
        r = http.post("/v1/reservations", json={"slots": 1, "start": "now\n", "end": "+1h"})
        assert r.status_code == 422 and r.json()["field"] == "start", r.text
        assert http.get("/v1/reservations").json() == []


def test_a_long_or_broken_command_is_named_and_not_echoed(cluster: Cluster) -> None:
    h = {"Authorization": f"Bearer {cluster.admin_token}", "content-type": "application/json"}
    with httpx.Client(base_url=cluster.url, headers=h) as http:
        r = http.post("/v1/jobs", json={"command": "x" * 70_000})
        assert r.status_code == 422
        assert r.json()["field"] == "command" and "at most 65,536 bytes" in r.json()["error"]
        assert len(r.content) < 400  # a short prefix of the value, not the 70 KB back
        r = http.post("/v1/jobs", json={"command": ["echo", "x" * 70_000]})
        assert r.status_code == 422 and r.json()["field"] == "command" and len(r.content) < 400
        r = http.post("/v1/jobs", content=b'{"command": "\\ud800"}')  # a lone surrogate, as JSON escapes it
        assert r.status_code == 422, r.text
        assert r.json()["field"] == "command" and "lone surrogate" in r.json()["error"]
        r = http.post("/v1/jobs", json={"command": "true", "env": {"A": "y" * 500_000}, "name": "n" * 300})
        assert r.status_code == 422 and len(r.content) < 400
        r = http.post("/v1/jobs", json={"command": "true", "colour": ["z" * 1000] * 100})
        assert r.status_code == 422 and r.json()["field"] == "colour" and len(r.content) < 600
        _assert_still_empty_and_serving(http)


@pytest.mark.parametrize(("field", "value"), [("queue", "5"), ("queue", True), ("retries", "2"), ("cpus", 1.0),
                                              ("shell", "yes"), ("append_index", 0), ("memory", True)])
def test_numbers_and_booleans_must_be_json_numbers_and_booleans(cluster: Cluster, field: str, value: object) -> None:
    with httpx.Client(base_url=cluster.url, headers={"Authorization": f"Bearer {cluster.admin_token}"}) as http:
        r = http.post("/v1/jobs", json={"command": "true", field: value})
        assert r.status_code == 422, r.text
        assert r.json()["field"] == field and "should be a valid" in r.json()["error"]
        _assert_still_empty_and_serving(http)


def test_a_kestrel_job_file_still_submits_its_text_numbers(cluster: Cluster, tmp_path: Path) -> None:
    """.job files hold text; the client sends their numbers as JSON numbers, which the API requires."""
    f = tmp_path / "sweep.job"
    f.write_text("[job]\nqueue = 3\ncommand = true\nretries = 1\n")
    out = cluster.cli("submit", "--file", str(f), "--json")
    assert out.returncode == 0, out.stderr
    with cluster.client() as c:
        assert [j["total"] for j in c.jobs()] == [3]
