"""A page left open across a restart of the manager reconnects by itself and shows the same history."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.integration.conftest import Cluster
from tests.web.conftest import Dash, Visit

pytestmark = pytest.mark.integration

WAIT = 30_000


@pytest.fixture
def own_dash(tmp_path: Path) -> Iterator[Dash]:
    c = Cluster(tmp_path)
    try:
        c.start_manager()
        c.start_worker("--slots", "2", name="w1")
        yield Dash(c)
    finally:
        c.stop()


def test_an_open_page_reconnects_after_a_restart_and_keeps_following(browser: Any, own_dash: Dash,
                                                                      artifacts: Path) -> None:
    visit = Visit(browser, own_dash, artifacts)
    try:
        visit.sign_in("alice")
        before = own_dash.submit("alice", "true", queue=5, name="before-restart")
        own_dash.cluster.client(own_dash.tokens["alice"]).job(before).wait(timeout=60, poll=0.1)
        visit.page.goto(own_dash.url + "/ui/")
        expect(visit.page.locator("#live")).to_have_class("live on", timeout=WAIT)
        own_dash.cluster.kill_manager(signal.SIGTERM)
        expect(visit.page.locator("#live")).to_have_class("live off", timeout=WAIT)
        own_dash.cluster.start_manager()  # the same port and store
        expect(visit.page.locator("#live")).to_have_class("live on", timeout=WAIT)
        after = own_dash.submit("alice", "true", queue=5, name="after-restart")
        row = visit.page.locator(f'#jobs tr[data-id="{after}"]')
        expect(row.locator(".state")).to_have_text("done", timeout=WAIT)  # arrived live, no reload
        expect(visit.page.locator(f'#jobs tr[data-id="{before}"] .state')).to_have_text("done")
        assert visit.page.url.endswith("/ui/")  # still signed in: the token came back with the store
        visit.shot("after-restart")
        assert visit.foreign() == []
    finally:
        visit.close()
