"""The dashboard as a person uses it, in headless Chromium against a real manager and a real worker."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.web.conftest import Dash, Visit

pytestmark = pytest.mark.integration

WAIT = 30_000  # ms: how long the browser waits for what a test expects to see


def test_signing_in_keeps_the_token_in_an_httponly_cookie_never_in_an_address(visit: Visit) -> None:
    visit.sign_in("alice")
    cookies = {c["name"]: c for c in visit.context.cookies()}
    session = cookies["tiercel_session"]
    assert session["httpOnly"] and session["sameSite"] == "Strict"
    assert visit.page.evaluate("document.cookie") == ""  # no script reads it
    assert all(visit.dash.tokens["alice"] not in u for u in visit.requests)
    assert visit.page.locator(".who").inner_text().startswith("alice")
    visit.shot("jobs-empty")


def test_a_wrong_token_is_refused_with_the_reason(visit: Visit) -> None:
    visit.page.goto(visit.dash.url + "/ui/signin")
    visit.page.fill("#token", "tc_not-a-token")
    visit.page.click("button[type=submit]")
    assert "token: missing or unknown" in visit.page.locator("#error").inner_text()
    visit.page.goto(visit.dash.url + "/ui/")
    assert visit.page.url.endswith("/ui/signin")  # no session: every page sends to sign-in


def test_a_job_page_moves_to_done_without_reloading(visit: Visit) -> None:
    visit.sign_in("alice")
    job = visit.dash.submit("alice", "sleep 0.1; echo ran", queue=60, name="progress")
    visit.page.goto(f"{visit.dash.url}/ui/jobs/{job}")
    navigations: list[str] = []
    visit.page.on("framenavigated", lambda f: navigations.append(f.url))
    assert visit.page.locator("#state").inner_text() in ("queued", "running")
    expect(visit.page.locator("#progress .n-done")).not_to_have_text("0", timeout=WAIT)
    visit.shot("job-running")
    expect(visit.page.locator("#state")).to_have_text("done", timeout=WAIT)
    assert visit.page.locator("#progress .n-done").inner_text() == "60"
    assert visit.page.locator("#cancel").count() == 0  # an ended job has nothing to cancel
    assert visit.page.locator("#plot canvas").count() == 1  # the throughput plot was drawn
    assert navigations == []
    visit.shot("job-done")


def test_the_jobs_page_follows_a_job_to_its_end(visit: Visit) -> None:
    visit.sign_in("alice")
    job = visit.dash.submit("alice", "sleep 0.1; true", queue=20, name="listed")
    visit.page.goto(visit.dash.url + "/ui/")
    row = visit.page.locator(f'#jobs tr[data-id="{job}"]')
    row.wait_for(timeout=WAIT)
    expect(row.locator(".state")).to_have_text("done", timeout=WAIT)
    assert row.locator(".done").inner_text() == "20"
    visit.shot("jobs")


def test_a_failed_tasks_stderr_opens_on_its_page(visit: Visit) -> None:
    visit.sign_in("alice")
    job = visit.dash.submit("alice", 'if [ "$1" -ge 3 ]; then echo "boom in task $1" >&2; exit 7; fi', queue=5,
                            name="failing")
    visit.dash.cluster.client(visit.dash.tokens["alice"]).job(job).wait(timeout=60, poll=0.1)
    visit.page.goto(f"{visit.dash.url}/ui/jobs/{job}")
    task = visit.page.locator('#failed details[data-index="4"]')
    task.wait_for(timeout=WAIT)
    assert "exit 7" in task.locator("summary").inner_text()
    assert " on w1 (" in task.locator("summary").inner_text()  # the worker's name, then its id
    assert not task.locator("pre").is_visible()
    task.locator("summary").click()
    assert task.locator("pre").inner_text() == "boom in task 4\n"
    assert visit.page.locator("#failed details").count() == 2  # tasks 3 and 4, not the ones that succeeded
    visit.shot("job-failed")


def test_explain_says_why_a_job_needing_a_missing_tag_waits(visit: Visit) -> None:
    visit.sign_in("alice")
    job = visit.dash.submit("alice", "true", queue=3, requires=["gpu"], name="needs-gpu")
    visit.page.goto(f"{visit.dash.url}/ui/jobs/{job}")
    waiting = visit.page.locator("#waiting")
    assert waiting.is_visible()
    assert "no connected worker has the required tags gpu" in waiting.inner_text()
    assert "lacks tag(s) gpu" in waiting.inner_text()  # each worker's own reason
    visit.shot("job-waiting")
    visit.dash.cluster.client(visit.dash.tokens["alice"]).job(job).cancel()


def test_cancel_asks_first_then_the_job_ends(visit: Visit) -> None:
    visit.sign_in("alice")
    job = visit.dash.submit("alice", "sleep 60", queue=4, name="long")
    visit.page.goto(f"{visit.dash.url}/ui/jobs/{job}")
    visit.page.click("#cancel")
    assert visit.page.url.endswith(f"/ui/jobs/{job}/cancel")  # a confirmation, nothing cancelled yet
    assert visit.dash.cluster.client(visit.dash.tokens["alice"]).job(job).data["state"] in ("queued", "running")
    visit.shot("cancel-confirm")
    visit.page.click("#confirm-cancel")
    visit.page.wait_for_url(f"**/ui/jobs/{job}")
    expect(visit.page.locator("#state")).to_have_text("cancelled", timeout=WAIT)
    assert visit.dash.cluster.client(visit.dash.tokens["alice"]).job(job).data["state"] == "cancelled"


def test_one_user_never_sees_anothers_jobs_in_pages_data_or_live_events(visit: Visit, browser: Any, dash: Dash,
                                                                        artifacts: Path) -> None:
    visit.sign_in("bob")
    frames: list[str] = []
    visit.page.on("websocket", lambda ws: ws.on("framereceived", lambda f: frames.append(str(f))))
    visit.page.goto(dash.url + "/ui/")
    visit.page.locator("#live.on").wait_for(timeout=WAIT)
    alices = dash.submit("alice", "sleep 0.2; true", queue=10, name="alices-secret")
    bobs = dash.submit("bob", "sleep 0.2; true", queue=10, name="bobs-own")
    visit.page.locator(f'#jobs tr[data-id="{bobs}"]').wait_for(timeout=WAIT)  # bob's own arrives live
    dash.cluster.client(dash.tokens["alice"]).job(alices).wait(timeout=60, poll=0.1)
    dash.cluster.client(dash.tokens["bob"]).job(bobs).wait(timeout=60, poll=0.1)
    visit.page.wait_for_timeout(1500)  # the last events of both jobs have been sent by now
    assert "alices-secret" not in visit.page.content()
    assert visit.page.locator(f'#jobs tr[data-id="{alices}"]').count() == 0
    events = [json.loads(f) for f in frames]
    assert any(e.get("job", {}).get("id") == bobs for e in events)
    assert not any(e.get("job", {}).get("id") == alices for e in events)
    # the page's own data endpoints, with bob's session cookie
    api = visit.context.request
    listed = api.get(dash.url + "/ui/data/jobs").json()
    assert alices not in [r["id"] for r in listed["rows"]] and bobs in [r["id"] for r in listed["rows"]]
    for path in ("", "/throughput", "/failed"):
        answer = api.get(f"{dash.url}/ui/data/jobs/{alices}{path}")
        assert answer.status == 404, path
        assert "alices-secret" not in answer.text()
    page = api.get(f"{dash.url}/ui/jobs/{alices}")
    assert page.status == 404 and "alices-secret" not in page.text()
    assert api.post(f"{dash.url}/ui/jobs/{alices}/cancel").status == 404
    # an admin sees both
    admin = Visit(browser, dash, artifacts)
    try:
        admin.sign_in("admin")
        ids = [r["id"] for r in admin.context.request.get(dash.url + "/ui/data/jobs").json()["rows"]]
        assert alices in ids and bobs in ids
    finally:
        admin.close()


def test_a_job_named_script_runs_no_script(visit: Visit) -> None:
    visit.sign_in("alice")
    name = "<script>window.pwned=1</script><img src=x onerror=window.pwned=2>"
    job = visit.dash.submit("alice", "echo '<script>window.pwned=3</script>' >&2; exit 1", queue=1, name=name)
    visit.dash.cluster.client(visit.dash.tokens["alice"]).job(job).wait(timeout=60, poll=0.1)
    visit.page.goto(visit.dash.url + "/ui/")
    visit.page.locator(f'#jobs tr[data-id="{job}"]').wait_for(timeout=WAIT)
    assert visit.page.locator(f'#jobs tr[data-id="{job}"] td.name').inner_text() == name  # shown as text
    visit.page.goto(f"{visit.dash.url}/ui/jobs/{job}")
    task = visit.page.locator('#failed details[data-index="0"]')
    task.wait_for(timeout=WAIT)
    task.locator("summary").click()
    assert task.locator("pre").inner_text() == "<script>window.pwned=3</script>\n"
    assert visit.page.evaluate("window.pwned") is None
    assert visit.page.locator("img[src=x]").count() == 0


@pytest.mark.parametrize(("fields", "said"), [
    ({"queue": "many"}, "queue: 'many'"),
    ({"queue": "0"}, "queue: 0 must be between 1"),
    ({"walltime": "soon"}, "walltime: 'soon'"),
    ({"array": "5-1"}, "array: '5-1'"),
    ({"requires": "g\u00e9p%u"}, "requires"),
])
def test_the_submit_form_says_what_is_wrong_and_submits_nothing(visit: Visit, fields: dict[str, str],
                                                                said: str) -> None:
    visit.sign_in("alice")
    before = len(visit.dash.cluster.client(visit.dash.tokens["alice"]).jobs())
    visit.page.goto(visit.dash.url + "/ui/submit")
    visit.page.fill("#command", "echo hi")
    if "array" in fields:
        visit.page.fill("#queue", "")
    for name, value in fields.items():
        visit.page.fill(f"#{name}", value)
    with visit.page.expect_response(lambda r: r.url.endswith("/ui/submit") and r.request.method == "POST") as got:
        visit.page.click("#submit-form button[type=submit]")
    assert got.value.status == 422
    error = visit.page.locator("#error").inner_text()
    assert error.startswith(said), error
    assert visit.page.input_value("#command") == "echo hi"  # the form as it was typed
    assert len(visit.dash.cluster.client(visit.dash.tokens["alice"]).jobs()) == before


def test_the_submit_form_submits_a_job_array(visit: Visit) -> None:
    visit.sign_in("alice")
    visit.page.goto(visit.dash.url + "/ui/submit")
    visit.page.fill("#command", "echo")
    visit.page.fill("#queue", "12")
    visit.page.fill("#requires", "cpu")
    visit.page.fill("#walltime", "1m")
    visit.page.fill("#name", "from-the-form")
    visit.shot("submit")
    visit.page.click("#submit-form button[type=submit]")
    visit.page.wait_for_url("**/ui/jobs/*")
    expect(visit.page.locator("#state")).to_have_text("done", timeout=WAIT)
    job = int(visit.page.url.rsplit("/", 1)[1])
    data = visit.dash.cluster.client(visit.dash.tokens["alice"]).job(job).data
    assert (data["owner"], data["total"], data["done"], data["name"]) == ("alice", 12, 12, "from-the-form")


def test_the_pool_pages_show_workers_sites_queues_and_reservations(visit: Visit) -> None:
    visit.sign_in("alice")
    for name in ("workers", "sites", "queues", "reservations"):
        visit.page.goto(f"{visit.dash.url}/ui/{name}")
        assert visit.page.locator("#pool table").count() == 1
        visit.shot(name)
    visit.page.goto(visit.dash.url + "/ui/workers")
    assert "w1" in visit.page.locator("#pool").inner_text()


def test_the_jobs_listing_is_paged_and_filtered_on_the_server(visit: Visit) -> None:
    visit.sign_in("bob")
    client = visit.dash.cluster.client(visit.dash.tokens["bob"])
    ids = [int(client.submit("true", queue=1, name=f"many-{n}").id) for n in range(27)]
    held = int(client.submit("true", queue=1, hold=True, name="held").id)
    for j in ids:
        client.job(j).wait(timeout=60, poll=0.05)
    api = visit.context.request
    first = api.get(visit.dash.url + "/ui/data/jobs?size=25").json()
    assert first["more"] and len(first["rows"]) == 25
    assert first["rows"][0]["id"] == held  # unfinished jobs first, then the last ended
    second = api.get(visit.dash.url + "/ui/data/jobs?size=25&page=2").json()
    shown = [r["id"] for r in first["rows"] + second["rows"]]
    assert len(shown) == len(set(shown)) and set(ids) | {held} <= set(shown)
    queued = api.get(visit.dash.url + "/ui/data/jobs?state=queued").json()["rows"]
    assert [r["id"] for r in queued] == [held]
    assert api.get(visit.dash.url + "/ui/data/jobs?queue=nosuch").json()["rows"] == []
    bad = api.get(visit.dash.url + "/ui/data/jobs?state=sleeping")
    assert bad.status == 422 and bad.json()["error"].startswith("state: 'sleeping' is not a job state")
    visit.page.goto(visit.dash.url + "/ui/?size=25&page=2")
    assert visit.page.locator("a[rel=prev]").count() == 1
    client.job(held).cancel()
