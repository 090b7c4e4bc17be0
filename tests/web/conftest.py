"""The dashboard in a real browser: Debian's Chromium driven by Playwright, against a real manager and workers.

Chromium is installed by scripts/services/chromium_up.sh when missing (as root); Playwright cannot
download its own browser here, so it launches that one by its path. In CI (``CI`` set) a browser
that cannot be had fails the tests; elsewhere they are skipped, saying why. Screenshots go to
``$TIERCEL_ARTIFACTS/web`` (default: /tmp/tiercel-artifacts/web), printed at the end of the run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.integration.conftest import Cluster

ROOT = Path(__file__).resolve().parent.parent.parent
UP = ROOT / "scripts" / "services" / "chromium_up.sh"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("TIERCEL_ARTIFACTS", "/tmp/tiercel-artifacts")) / "web"
# Without these Chromium keeps trying outside hosts (updates, safe browsing), which this network refuses.
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--disable-quic", "--disable-dev-shm-usage"]

pytestmark = pytest.mark.integration


def _unavailable(why: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"the dashboard's browser tests need Chromium and Playwright: {why}")
    pytest.skip(f"the dashboard's browser tests need Chromium and Playwright: {why}")


def chromium() -> str:
    """Debian's Chromium, installed when missing and we may."""
    if not os.access(CHROMIUM, os.X_OK):
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            _unavailable(f"{CHROMIUM} is not installed and installing it needs root and apt-get")
        done = subprocess.run([str(UP)], capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            _unavailable(f"{UP.name} failed: {done.stderr.strip()[-500:]}")
    return CHROMIUM


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    """One headless Chromium for all the dashboard's tests. Its scope ends with tests/web: while
    Playwright's sync API is open an event loop runs in this thread, and tests after these ones
    call asyncio.run."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the Python package playwright is not installed (pip install -e '.[dev]')")
    path = chromium()
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, headless=True, args=FLAGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if ARTIFACTS.is_dir() and any(ARTIFACTS.iterdir()):
        terminalreporter.write_line(f"dashboard screenshots: {ARTIFACTS}")


class Dash:
    """A manager with two worker slots, two users (alice, bob) and an admin, for browser tests."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.tokens = {"admin": cluster.admin_token}
        for user in ("alice", "bob"):
            made = httpx.post(f"{cluster.url}/v1/tokens", json={"user": user, "role": "user"},
                              headers={"Authorization": f"Bearer {cluster.admin_token}"})
            made.raise_for_status()
            self.tokens[user] = made.json()["token"]

    @property
    def url(self) -> str:
        return self.cluster.url

    def submit(self, user: str, command: str, **fields: Any) -> int:
        job = self.cluster.client(self.tokens[user]).submit(command, **fields)
        return int(job.id)


@pytest.fixture(scope="module")
def dash(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dash]:
    c = Cluster(tmp_path_factory.mktemp("dash"))
    try:
        c.start_manager()
        c.start_worker("--slots", "2", "--tags", "cpu", name="w1")
        yield Dash(c)
    finally:
        c.stop()


class Visit:
    """A browser context signed in as one user, with every request it made (to check where they went)."""

    def __init__(self, browser: Any, dash: Dash, artifacts: Path) -> None:
        self.context = browser.new_context(viewport={"width": 1280, "height": 860})
        self.page = self.context.new_page()
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.dash = dash
        self.artifacts = artifacts
        self.context.on("request", lambda r: self.requests.append(r.url))
        self.page.on("websocket", lambda ws: self.requests.append(ws.url))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def sign_in(self, user: str) -> None:
        self.page.goto(self.dash.url + "/")
        self.page.fill("#token", self.dash.tokens[user])
        self.page.click("button[type=submit]")
        self.page.wait_for_url("**/ui/")

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(self.artifacts / f"{name}.png"), full_page=True)

    def foreign(self) -> list[str]:
        """Requests to any host but the manager's."""
        mine = urlsplit(self.dash.url).netloc
        return [u for u in self.requests if urlsplit(u).netloc != mine and not u.startswith(("data:", "about:"))]

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def visit(browser: Any, dash: Dash, artifacts: Path) -> Iterator[Visit]:
    v = Visit(browser, dash, artifacts)
    try:
        yield v
        assert v.foreign() == [], f"requests to other hosts than the manager: {v.foreign()}"
        assert v.errors == [], f"script errors on the page: {v.errors}"
    finally:
        v.close()
