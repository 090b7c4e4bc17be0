"""The client with several managers' URLs: it follows a standby's pointer to the active manager,
falls through a dead URL, and says plainly when no manager is active."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from click.testing import CliRunner

from tiercel.client import Client, TiercelError, manager_urls, next_url, standby_active


class Manager:
    """A tiny HTTP server playing a manager: active (answers 200 with its name) or standby (503)."""

    def __init__(self, name: str, *, standby: bool = False, active: str | None = None, header: bool = True) -> None:
        self.name, self.standby, self.active, self.header = name, standby, active, header
        self.seen: list[tuple[str, str, str, bytes]] = []  # method, path, Authorization, body
        manager = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                manager.seen.append((self.command, self.path, self.headers.get("Authorization", ""), body))
                if manager.standby:
                    status = 503
                    data: dict[str, Any] = {"error": f"this manager ({manager.name}) is a standby; the active "
                                                     f"manager is at {manager.active}", "active": manager.active}
                else:
                    status, data = 200, {"served_by": manager.name}
                raw = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                if manager.standby and manager.active and manager.header:
                    self.send_header("X-Tiercel-Active", manager.active)
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_POST = _answer

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def managers() -> Iterator[list[Manager]]:
    started: list[Manager] = []
    yield started
    for m in started:
        m.close()


def start(managers: list[Manager], name: str, **kw: Any) -> Manager:
    m = Manager(name, **kw)
    managers.append(m)
    return m


def dead_url() -> str:
    """A URL nothing listens on: a port just bound, then closed."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def test_a_standby_answer_is_followed_to_the_active_manager(managers: list[Manager]) -> None:
    active = start(managers, "a")
    standby = start(managers, "b", standby=True, active=active.url)
    with Client(standby.url, token="secret", timeout=5) as c:
        assert c.json("POST", "/v1/jobs", json={"command": "true"}) == {"served_by": "a"}
        assert c.url == active.url  # the active one, though not listed
        assert c.urls == [standby.url]
        assert c.json("GET", "/v1/whoami") == {"served_by": "a"}
    assert len(standby.seen) == 1  # the second request went straight to the active manager
    assert [(m, p, auth) for m, p, auth, _ in active.seen] == [
        ("POST", "/v1/jobs", "Bearer secret"), ("GET", "/v1/whoami", "Bearer secret")]
    assert json.loads(active.seen[0][3]) == {"command": "true"}  # the same request, body and all


def test_the_active_manager_named_in_the_body_only_is_followed(managers: list[Manager]) -> None:
    active = start(managers, "a")
    standby = start(managers, "b", standby=True, active=active.url, header=False)
    with Client(standby.url, token="t", timeout=5) as c:
        assert c.json("GET", "/v1/jobs") == {"served_by": "a"} and c.url == active.url


def test_a_dead_first_url_falls_through_to_the_next(managers: list[Manager]) -> None:
    active = start(managers, "a")
    dead = dead_url()
    with Client(f"{dead}, {active.url}/", token="t", timeout=5) as c:
        assert c.urls == [dead, active.url]
        assert c.json("GET", "/v1/jobs") == {"served_by": "a"}
        assert c.url == active.url


def test_a_standby_that_knows_no_active_one_passes_to_the_next_url(managers: list[Manager]) -> None:
    standby = start(managers, "b", standby=True)
    active = start(managers, "a")
    with Client(f"{standby.url},{active.url}", token="t", timeout=5) as c:
        assert c.json("GET", "/v1/jobs") == {"served_by": "a"}
        assert c.json("GET", "/v1/jobs") == {"served_by": "a"}
        assert c.url == active.url
    assert len(standby.seen) == 1 and len(active.seen) == 2  # the URL that last worked is asked first


def test_no_active_manager_is_a_clear_error(managers: list[Manager]) -> None:
    b = start(managers, "b", standby=True)
    c_ = start(managers, "c", standby=True)
    dead = dead_url()
    with Client(f"{b.url},{dead},{c_.url}", token="t", timeout=5) as c:
        with pytest.raises(TiercelError) as caught:
            c.json("GET", "/v1/jobs")
        assert c.url == b.url  # unchanged: nothing served
    message = str(caught.value)
    assert message.startswith("no active manager is reachable right now")
    assert f"{b.url} (standby)" in message and f"{dead} (unreachable)" in message and f"{c_.url} (standby)" in message
    assert "wait a few seconds" in message and "standby takes over" in message
    assert len(b.seen) == len(c_.seen) == 1


def test_standbys_pointing_at_each_other_do_not_loop(managers: list[Manager]) -> None:
    b = start(managers, "b", standby=True)
    c_ = start(managers, "c", standby=True, active=b.url)
    b.active = c_.url
    with Client(b.url, token="t", timeout=5) as c, pytest.raises(TiercelError, match="no active manager"):
        c.json("GET", "/v1/jobs")
    assert len(b.seen) == len(c_.seen) == 1


def test_a_503_that_is_not_a_standby_answer_is_an_error(managers: list[Manager]) -> None:
    class Busy(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            raw = b'{"error": "store unavailable"}'
            self.send_response(503)
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, *_: Any) -> None:
            pass

    other = start(managers, "a")
    busy = ThreadingHTTPServer(("127.0.0.1", 0), Busy)
    threading.Thread(target=busy.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{busy.server_address[1]}"
        with Client(f"{url},{other.url}", token="t", timeout=5) as c, pytest.raises(TiercelError) as caught:
            c.json("GET", "/v1/jobs")
        assert str(caught.value) == "store unavailable" and not other.seen
    finally:
        busy.shutdown()
        busy.server_close()


def test_one_unreachable_url_keeps_its_message() -> None:
    dead = dead_url()
    with Client(dead, token="t", timeout=5) as c, pytest.raises(TiercelError) as caught:
        c.json("GET", "/v1/jobs")
    assert str(caught.value) == f"cannot reach the manager at {dead}: is 'tiercel manager' running? (set TIERCEL_URL)"
    a, b = dead_url(), dead_url()
    with Client(f"{a},{b}", token="t", timeout=5) as c, pytest.raises(TiercelError) as caught:
        c.json("GET", "/v1/jobs")
    assert str(caught.value).startswith(f"cannot reach any manager (tried {a} (unreachable), {b} (unreachable))")


def test_a_bad_url_in_the_list_is_named() -> None:
    with pytest.raises(TiercelError) as caught:
        Client("http://127.0.0.1:8750,localhost:8750", token="t")
    assert str(caught.value) == ("url: 'localhost:8750' (in 'http://127.0.0.1:8750,localhost:8750') must be the "
                                 "manager's URL, e.g. http://127.0.0.1:8750; several are separated by commas")
    for bad in ("ftp://host:21", "http://", "http://host:99999", "http://host:port", "http://h/?q=1"):
        with pytest.raises(TiercelError, match="must be the manager's URL"):
            manager_urls(f"http://a:1,{bad}")
    with pytest.raises(TiercelError, match="no manager URL given"):
        manager_urls(" , ")
    assert manager_urls("http://a:1/, https://b/x ,,http://a:1") == ["http://a:1", "https://b/x"]


def test_the_cli_says_which_url_is_bad() -> None:
    from tiercel.cli.main import cli

    out = CliRunner().invoke(cli, ["status", "--url", "http://127.0.0.1:8750,127.0.0.1:8751", "--token", "t"])
    assert out.exit_code == 2
    assert "url: '127.0.0.1:8751' (in 'http://127.0.0.1:8750,127.0.0.1:8751') must be the manager's URL" in out.output
    helped = CliRunner().invoke(cli, ["status", "--help"], terminal_width=200)
    assert "several separated by commas" in helped.output


def test_next_url_takes_the_active_one_then_the_list_round_and_stops() -> None:
    urls = ["http://a", "http://b", "http://c"]
    assert next_url(urls, "http://a", ["http://a"], "http://x") == "http://x"
    assert next_url(urls, "http://x", ["http://a", "http://x"], "http://x") == "http://b"
    assert next_url(urls, "http://b", ["http://b"]) == "http://c"
    assert next_url(urls, "http://c", ["http://b", "http://c"]) == "http://a"
    assert next_url(urls, "http://a", urls) is None
    assert next_url(["http://a"], "http://a", ()) == "http://a"


def test_standby_active_reads_the_header_then_the_body() -> None:
    assert standby_active({"X-Tiercel-Active": "http://a:1/"}, b"") == (True, "http://a:1")
    assert standby_active({}, b'{"error": "standby", "active": "http://b:2"}') == (True, "http://b:2")
    assert standby_active({}, b'{"error": "standby", "active": null}') == (True, None)
    assert standby_active({}, b'{"error": "overloaded"}') == (False, None)
    assert standby_active({}, b"<html>") == (False, None)
    assert standby_active({"X-Tiercel-Active": "not a url"}, b"") == (True, None)
