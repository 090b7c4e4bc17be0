"""The dashboard's peers in headless Chromium: two real managers on loopback linked as peers (A and B,
started by tests/integration/federation.py as the federation tests start them), A without workers so
its jobs' tasks go to B."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.integration.conftest import wait_until
from tests.integration.federation import Federation
from tests.web.conftest import Dash, Visit

pytestmark = pytest.mark.integration

WAIT = 30_000  # ms: how long the browser waits for what a test expects to see


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    f = Federation(tmp_path_factory.mktemp("peers"))
    try:
        f.start(["A", "B"])
        f.managers["B"].start_worker("--slots", "2", "--tags", "cpu", name="wb")
        f.wait_linked()
        yield f
    finally:
        f.stop()


@pytest.fixture(scope="module")
def at_a(fed: Federation) -> Dash:
    """Manager A with users alice and bob, as the dashboard's other tests have them."""
    return Dash(fed.managers["A"])


@pytest.fixture
def visit_a(browser: Any, at_a: Dash, artifacts: Path) -> Iterator[Visit]:
    v = Visit(browser, at_a, artifacts)
    try:
        yield v
        assert v.foreign() == [], f"requests to other hosts than the manager: {v.foreign()}"
        assert v.errors == [], f"script errors on the page: {v.errors}"
    finally:
        v.close()


def forwarded_job(fed: Federation, at_a: Dash, user: str = "alice") -> int:
    """A job of ``user`` at A whose tasks run at B (A has no workers), once B holds a range of it."""
    job = at_a.submit(user, "sleep 120", array="0-3", name="far")
    a = fed.managers["A"].client()
    wait_until(lambda: any(x["state"] == "accepted" for x in a.json("GET", f"/v1/jobs/{job}/explain")["forwarded"]),
               60, "a range of the job to be accepted at B")
    return job


def test_an_admin_sees_each_peer_its_offer_and_the_work_sent_to_it(fed: Federation, at_a: Dash,
                                                                    visit_a: Visit) -> None:
    job = forwarded_job(fed, at_a)
    visit_a.sign_in("admin")
    visit_a.page.click("nav a[href='/ui/peers']")
    row = visit_a.page.locator('#peers tr[data-peer="B"]')
    expect(row.locator(".state")).to_have_text("up")
    expect(row.locator(".rtt")).to_contain_text(" ms")
    expect(row.locator(".heard")).to_contain_text(" ago")
    assert int(row.locator(".sent").inner_text()) >= 4
    offers = visit_a.page.locator('.peer-detail[data-peer="B"] table.offers tbody tr')
    expect(offers).to_have_count(1)
    assert [offers.locator("td").nth(i).inner_text() for i in (0, 1, 3)] == ["B/pool", "pool", "cpu"]
    expect(visit_a.page.locator('.peer-detail[data-peer="B"] h3')).to_have_text("Refusals")
    visit_a.shot("peers-admin")
    fed.managers["A"].client().json("POST", f"/v1/jobs/{job}/cancel")


def test_a_jobs_page_lists_its_ranges_forwarded_to_a_peer(fed: Federation, at_a: Dash, visit_a: Visit) -> None:
    job = forwarded_job(fed, at_a)
    visit_a.sign_in("alice")
    visit_a.page.goto(f"{at_a.url}/ui/jobs/{job}")
    ranges = visit_a.page.locator("#forwarded-ranges tbody tr")
    expect(visit_a.page.locator("#forwarded")).to_be_visible()
    first = ranges.first
    assert first.locator("td").nth(1).inner_text() == "B"
    assert first.locator(".why").inner_text() in ("no local site can run it", "local sites full")
    assert first.locator(".state").inner_text() in ("sent", "accepted")
    assert first.locator(".settled").inner_text().startswith("0/")
    indexes = " ".join(ranges.locator(".indexes").all_inner_texts())
    assert "0" in indexes, indexes
    visit_a.shot("job-forwarded")
    # cancelled at the origin: the page shows it ended, and the ranges as they were last seen
    fed.managers["A"].client().json("POST", f"/v1/jobs/{job}/cancel")
    expect(visit_a.page.locator("#state")).to_have_text("cancelled", timeout=WAIT)


def test_a_user_sees_the_peers_and_their_offers_but_not_the_work_or_refusals(visit_a: Visit) -> None:
    visit_a.sign_in("bob")
    visit_a.page.goto(visit_a.dash.url + "/ui/peers")
    row = visit_a.page.locator('#peers tr[data-peer="B"]')
    expect(row.locator(".state")).to_have_text("up")
    expect(row.locator(".offer")).to_contain_text("slots free at 1 site(s)")
    assert visit_a.page.locator("#peers th").all_inner_texts() == ["peer", "state", "round trip", "last exchange",
                                                                   "offers"]
    assert visit_a.page.locator(".peer-detail h3").count() == 0  # no refusals
    assert visit_a.page.locator("table.offers td.tags").inner_text() == "cpu"
    assert "shown to admins" in visit_a.page.locator("#pool").inner_text()
    visit_a.shot("peers-user")


def test_the_sites_page_marks_a_peers_sites_with_their_peer(visit_a: Visit) -> None:
    visit_a.sign_in("alice")
    visit_a.page.goto(visit_a.dash.url + "/ui/sites")
    remote = visit_a.page.locator('#pool tr.remote[data-peer="B"]')
    expect(remote).to_have_count(1)
    assert remote.locator("td").first.inner_text() == "B/pool at peer B"
    assert remote.locator("a.peer-mark").get_attribute("href") == "/ui/peers#peer-B"
    assert visit_a.page.locator("#pool tr.remote").count() == 1  # A's own pool is not marked


def test_the_peers_page_follows_a_peers_offer_without_reloading(fed: Federation, visit_a: Visit) -> None:
    visit_a.sign_in("alice")
    visit_a.page.goto(visit_a.dash.url + "/ui/peers")
    tags = visit_a.page.locator('.peer-detail[data-peer="B"] table.offers td.tags')
    expect(tags).to_have_text("cpu")
    expect(visit_a.page.locator("#live")).to_have_class("live on", timeout=WAIT)
    navigations: list[str] = []
    visit_a.page.on("framenavigated", lambda f: navigations.append(f.url))
    fed.managers["B"].start_worker("--slots", "1", "--tags", "gpu", name="wb-gpu")
    expect(tags).to_have_text("cpu, gpu", timeout=WAIT)
    assert navigations == []


def test_a_manager_without_peers_says_so(visit: Visit) -> None:
    visit.sign_in("admin")
    visit.page.goto(visit.dash.url + "/ui/peers")
    expect(visit.page.locator("#no-peers")).to_contain_text("This manager has no peers")
    assert visit.page.locator("#peers").count() == 0


def test_tiercel_peers_and_the_api_show_a_user_the_link_and_offer_only(fed: Federation, at_a: Dash) -> None:
    a = fed.managers["A"]
    with a.client(at_a.tokens["alice"]) as c:
        rows = wait_until(lambda: [r for r in c.json("GET", "/v1/peers") if r["offer"]["slots_total"] >= 2], 30,
                          "B's offer of its workers' slots")
    assert [r["name"] for r in rows] == ["B"]
    assert not {"url", "refusals", "tasks_there"} & set(rows[0])
    admin_rows = a.client().json("GET", "/v1/peers")
    assert {"url", "refusals", "tasks_there"} <= set(admin_rows[0])
    out = a.cli("peers", token=at_a.tokens["alice"])
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    row = out.stdout.splitlines()[1].split()
    assert row[:3] == ["B", "up", "out"] and row[6:9] == ["-", "-", "-"]  # no work nor refusals for a user
