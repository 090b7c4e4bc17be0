"""The dashboard's data views in headless Chromium: a job's files and why they wait, each worker's data
node, and the datasets page — against a manager whose Gfarm does not answer, and against the session's
real Gfarm."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.gfarm import Gfarm
from tests.integration.conftest import Cluster, wait_until
from tests.web.conftest import Dash, Visit

pytestmark = pytest.mark.integration

WAIT = 30_000  # ms: how long the browser waits for what a test expects to see
INPUT = "gfarm:///in/<b>f</b>_{index}"  # markup in a path: shown as text, never as markup
OUTPUT = "gfarm:///out/r_{index}"


class NoGfarm(Cluster):
    """A manager (and its workers) whose Gfarm configuration names no file: every Gfarm command fails."""

    def env(self, token: str | None = None) -> dict[str, str]:
        return {**super().env(token), "GFARM_CONFIG_FILE": str(self.root / "no-gfarm2.conf")}


@pytest.fixture(scope="module")
def dash(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dash]:
    c = NoGfarm(tmp_path_factory.mktemp("dash-data"))
    try:
        c.start_manager()
        c.start_worker("--slots", "2", "--data-host", "gfnode7", name="w1")
        c.start_worker("--slots", "1", name="w2")
        wait_until(lambda: len(c.client().workers()) == 2, 30, "two workers")
        yield Dash(c)
    finally:
        c.stop()


def reload_until(visit: Visit, selector: str, pattern: str) -> None:
    """Read the page again until ``selector`` shows ``pattern``: a waiting job sends no events to move it."""
    def shown() -> bool:
        visit.page.reload()
        found = visit.page.locator(selector)
        return found.count() > 0 and re.search(pattern, found.first.inner_text()) is not None
    wait_until(shown, 30, f"{selector} showing {pattern!r}")


def test_a_manager_that_never_used_gfarm_says_so_on_the_datasets_page(visit: Visit) -> None:
    visit.sign_in("alice")
    visit.page.goto(visit.dash.url + "/ui/datasets")
    assert "has not used Gfarm" in visit.page.locator("#no-gfarm").inner_text()
    assert visit.page.locator("#files").count() == 0
    nodes = visit.page.locator("#nodes").inner_text()  # the nodes the workers named, not yet asked about
    assert "gfnode7" in nodes and "w1" in nodes and "unknown" in nodes


def test_the_workers_page_shows_each_workers_data_node(visit: Visit) -> None:
    visit.sign_in("alice")
    visit.page.goto(visit.dash.url + "/ui/workers")
    heads = visit.page.locator("#pool thead th").all_inner_texts()
    col = heads.index("data node")
    cells = {r.locator("td").nth(0).inner_text(): r.locator("td").nth(col).inner_text()
             for r in visit.page.locator("#pool tbody tr").all()}
    assert cells == {"w1": "gfnode7", "w2": ""}
    visit.shot("workers-data-node")


def test_a_job_page_shows_its_files_and_why_they_wait_when_gfarm_does_not_answer(visit: Visit) -> None:
    visit.sign_in("alice")
    job = visit.dash.submit("alice", "cat", queue=3, inputs=[INPUT], outputs=[OUTPUT], name="reads")
    plain = visit.dash.submit("alice", "true", queue=1, requires=["gpu"], name="no-files")
    visit.page.goto(f"{visit.dash.url}/ui/jobs/{job}")
    files = visit.page.locator("#data-files")
    assert files.inner_text().split("\n") == ["input", INPUT, "output", OUTPUT]
    assert visit.page.locator("#data b").count() == 0  # the path's markup stayed text
    reload_until(visit, "#data-reason", "Gfarm.s metadata server is unreachable")
    assert visit.page.locator("#explain .why").inner_text().startswith("data: Gfarm's metadata server is unreachable")
    rows = {tuple(r.locator("td").all_inner_texts()) for r in visit.page.locator("#data-places tbody tr").all()}
    assert ("w1", "gfnode7", "no", "0 B", "0s") in rows and ("w2", "-", "no", "0 B", "0s") in rows
    visit.shot("job-data-waits")
    visit.page.goto(f"{visit.dash.url}/ui/jobs/{plain}")
    assert visit.page.locator("#data").count() == 0  # a job naming no files has no data panel
    client = visit.dash.cluster.client(visit.dash.tokens["alice"])
    client.job(plain).cancel()
    visit.page.goto(f"{visit.dash.url}/ui/jobs/{job}")
    client.job(job).cancel()  # live: the waiting part goes once it ended, its files stay
    expect(visit.page.locator("#state")).to_have_text("cancelled", timeout=WAIT)
    expect(visit.page.locator("#data-places")).to_have_count(0, timeout=WAIT)
    assert visit.page.locator("#data-files dd").count() == 2


def test_the_datasets_page_shows_a_users_own_jobs_files_and_an_admin_everyones(visit: Visit, browser: Any) -> None:
    job = visit.dash.submit("alice", "cat", queue=4, inputs=["gfarm:///in/a_{index}", "gfarm:///ref.fa"], hold=True)
    visit.sign_in("alice")
    visit.page.goto(visit.dash.url + "/ui/datasets")
    reload_until(visit, "#pool", "does not answer")
    row = visit.page.locator(f'#files tr[data-job="{job}"]')
    expect(row).to_have_count(1)
    cells = row.locator("td").all_inner_texts()
    assert cells[2:5] == ["5", "5", "0"]  # 4 files of its own and one shared, none located: Gfarm does not answer
    visit.shot("datasets-unreachable")
    for user in ("bob", "admin"):
        other = Visit(browser, visit.dash, visit.artifacts)
        try:
            other.sign_in(user)
            other.page.goto(visit.dash.url + "/ui/datasets")
            found = other.page.locator(f'#files tr[data-job="{job}"]')
            if user == "bob":
                assert found.count() == 0
                assert "No unfinished job of yours names input files" in other.page.locator("#files").inner_text()
            else:
                expect(found).to_have_count(1)
                assert found.locator("td").nth(1).inner_text() == "alice"  # the admin's table names the owner
        finally:
            other.close()
    visit.dash.cluster.client(visit.dash.tokens["alice"]).job(job).cancel()


# ---- against the session's real Gfarm ------------------------------------------------------------------------


class WithGfarm(Cluster):
    def __init__(self, root: Path, gfarm: Gfarm) -> None:
        super().__init__(root)
        self.gfarm = gfarm

    def env(self, token: str | None = None) -> dict[str, str]:
        return {**super().env(token), "GFARM_CONFIG_FILE": self.gfarm.env()["GFARM_CONFIG_FILE"]}


def test_the_datasets_page_counts_replicas_per_node_in_a_real_gfarm(browser: Any, artifacts: Path, gfarm: Gfarm,
                                                                    tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GFARM_CONFIG_FILE", gfarm.env()["GFARM_CONFIG_FILE"])  # the manager's Gfarm
    folder = gfarm.workdir()
    for i in range(3):
        gfarm.put(f"{folder}/f_{i}", b"x" * 1000, "gfnode1", *(["gfnode2"] if i < 2 else []))
    c = WithGfarm(tmp_path, gfarm)
    visit: Visit | None = None
    try:
        c.start_manager()
        c.start_worker("--slots", "1", "--data-host", "gfnode3", name="w3",
                       env={"GFARM_CONFIG_FILE": gfarm.env()["GFARM_CONFIG_FILE"]})
        d = Dash(c)
        job = d.submit("alice", "cat", queue=3, inputs=[f"gfarm://{folder}/f_{{index}}"], hold=True)
        visit = Visit(browser, d, artifacts)
        visit.sign_in("alice")
        visit.page.goto(d.url + "/ui/datasets")
        reload_until(visit, f'#files tr[data-job="{job}"]', r"\b0\s+0\s+3\s+2\s+0\b")
        heads = visit.page.locator("#files thead th").all_inner_texts()
        cells = visit.page.locator(f'#files tr[data-job="{job}"] td').all_inner_texts()
        by_node = dict(zip(heads[5:], cells[5:], strict=True))
        assert by_node == {"gfnode1": "3", "gfnode2": "2", "gfnode3": "0"}
        states = {r.get_attribute("data-node"): r.locator("td").nth(1).inner_text()
                  for r in visit.page.locator("#nodes tbody tr").all()}
        assert states == {"gfnode1": "up", "gfnode2": "up", "gfnode3": "up"}
        assert "w3" in visit.page.locator('#nodes tr[data-node="gfnode3"]').inner_text()
        visit.shot("datasets-gfarm")
        assert visit.foreign() == [] and visit.errors == []
    finally:
        if visit is not None:
            visit.close()
        c.stop()
