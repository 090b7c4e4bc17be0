"""The dashboard's workflows in headless Chromium: a workflow submitted through the client, followed live, and
kept from other users."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.web.conftest import Visit

pytestmark = pytest.mark.integration

WAIT = 30_000  # ms
NAME = "<b>pipeline</b> & co"  # shown as text, never as markup


def submit_flow(visit: Visit, user: str, name: str = NAME) -> dict[str, Any]:
    return visit.dash.cluster.client(visit.dash.tokens[user]).submit_workflow({"name": name, "jobs": [
        {"name": "prep", "command": "sleep 1; true", "queue": 1, "append_index": False},
        {"name": "sweep", "command": "sleep 0.2; true", "queue": 6, "after": ["prep"]},
        {"name": "merge", "command": "true", "queue": 1, "after": ["sweep:any"], "append_index": False},
    ]})


def test_a_workflows_page_shows_its_jobs_in_order_and_follows_them_to_done(visit: Visit) -> None:
    visit.sign_in("alice")
    visit.page.goto(visit.dash.url + "/ui/workflows")
    visit.page.locator("#live.on").wait_for(timeout=WAIT)
    flow = submit_flow(visit, "alice")
    ids = {j["name"]: j["id"] for j in flow["jobs"]}
    row = visit.page.locator(f'#workflows tr[data-id="{flow["id"]}"]')
    row.wait_for(timeout=WAIT)  # a new workflow arrives in the listing without reloading
    assert row.locator("td.name").inner_text() == NAME
    assert row.locator("a.jobbar").count() == 3  # a state bar per job
    visit.page.goto(f'{visit.dash.url}/ui/workflows/{flow["id"]}')
    navigations: list[str] = []
    visit.page.on("framenavigated", lambda f: navigations.append(f.url))
    assert visit.page.locator("#workflow h1 .title").inner_text() == NAME
    rows = visit.page.locator("#wf-jobs tbody tr")
    assert [rows.nth(n).get_attribute("data-name") for n in range(3)] == ["prep", "sweep", "merge"]
    sweep = visit.page.locator(f'#wf-jobs tr[data-job="{ids["sweep"]}"]')
    assert sweep.locator("td.after").inner_text() == "prep"
    assert sweep.locator("td.after a").get_attribute("href") == f"/ui/jobs/{ids['prep']}"
    merge = visit.page.locator(f'#wf-jobs tr[data-job="{ids["merge"]}"]')
    assert merge.locator("td.after").inner_text() == "sweep (any)"
    assert visit.page.locator(f'#wf-jobs tr[data-job="{ids["prep"]}"] td.after').inner_text() == "nothing"
    visit.shot("workflow-running")
    expect(visit.page.locator("#state")).to_have_text("done", timeout=WAIT)
    for name in ("prep", "sweep", "merge"):
        expect(visit.page.locator(f'#wf-jobs tr[data-job="{ids[name]}"] td.state')).to_have_text("done")
    assert sweep.locator("td.done").inner_text() == "6"
    assert navigations == []  # followed live, not reloaded
    visit.shot("workflow-done")
    merge.locator("td a").first.click()  # each job links to its own page
    visit.page.wait_for_url(f"**/ui/jobs/{ids['merge']}")
    expect(visit.page.locator("#state")).to_have_text("done")


def test_another_user_never_sees_a_workflow_an_admin_sees_all(visit: Visit, browser: Any) -> None:
    flow = submit_flow(visit, "alice", name="alices-flow")
    visit.sign_in("bob")
    visit.page.goto(visit.dash.url + "/ui/workflows")
    assert "alices-flow" not in visit.page.content()
    assert visit.page.locator(f'#workflows tr[data-id="{flow["id"]}"]').count() == 0
    api = visit.context.request
    for path in ("", "?part=1"):
        answer = api.get(f'{visit.dash.url}/ui/workflows/{flow["id"]}{path}')
        assert answer.status == 404, path
        assert "alices-flow" not in answer.text() and "not a workflow of yours" in answer.text()
    assert api.get(visit.dash.url + "/ui/workflows/nope").status == 404
    assert "alices-flow" not in api.get(visit.dash.url + "/ui/workflows?part=1").text()
    admin = Visit(browser, visit.dash, visit.artifacts)
    try:
        admin.sign_in("admin")
        admin.page.goto(visit.dash.url + "/ui/workflows")
        assert admin.page.locator(f'#workflows tr[data-id="{flow["id"]}"] td.name').inner_text() == "alices-flow"
        assert admin.context.request.get(f'{visit.dash.url}/ui/workflows/{flow["id"]}').status == 200
    finally:
        admin.close()
    visit.dash.cluster.client(visit.dash.tokens["alice"]).wait_workflow(flow["id"], timeout=60, poll=0.1)


def test_a_pages_ages_move_on_while_it_is_open(visit: Visit) -> None:
    visit.sign_in("alice")
    job = visit.dash.submit("alice", "true", queue=1, name="aging")
    visit.page.goto(f"{visit.dash.url}/ui/jobs/{job}")
    age = visit.page.locator("#age")
    first = age.inner_text()
    assert first.endswith("s")
    expect(age).not_to_have_text(first, timeout=WAIT)  # no reload: the page keeps it current
    visit.page.goto(visit.dash.url + "/ui/")
    cell = visit.page.locator(f'#jobs tr[data-id="{job}"] .age')
    shown = cell.inner_text()
    expect(cell).not_to_have_text(shown, timeout=WAIT)
