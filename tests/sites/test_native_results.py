"""A native site reads results only for the elements it submitted, whatever else the spool holds."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tiercel.core.model import JobId, Outcome, Report, TaskRef, WorkerId
from tiercel.sites.config import SiteConfig
from tiercel.sites.native import Array, NativeSite


class RecordingHost:
    """The manager as a site sees it, keeping what the site reports."""

    def __init__(self) -> None:
        self.reports: list[tuple[WorkerId, list[Report], int]] = []

    def clock(self) -> float:
        return 0.0

    def site_reports(self, worker: WorkerId, reports: list[Report], freed: int) -> asyncio.Future[None]:
        self.reports.append((worker, reports, freed))
        fut: asyncio.Future[None] = asyncio.get_event_loop().create_future()
        fut.set_result(None)
        return fut

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the site should not need host.{name} here")


def test_result_files_of_elements_the_site_did_not_submit_are_ignored(tmp_path: Path) -> None:
    async def scenario() -> list[tuple[WorkerId, list[Report], int]]:
        host = RecordingHost()
        site = NativeSite("hpc", SiteConfig(kind="pbs"), host, tmp_path)  # type: ignore[arg-type]
        folder = tmp_path / "j7"
        folder.mkdir()
        site.arrays["41.pbs"] = Array("41.pbs", JobId(7), folder, {1: TaskRef(JobId(7), 3, 2)}, 1, {1})
        for element, out in ((1, "mine"), (2, "forged"), (99, "forged")):  # 2 and 99 were never submitted
            (folder / f"{element}.out").write_text(out)
            (folder / f"{element}.end").write_text("0 1.0 2.0 0\n")
        site._settle([])
        return host.reports

    (worker, reports, freed), = asyncio.run(scenario())
    assert worker == "site:hpc" and freed == 1
    assert [(r.job, r.index, r.attempt, r.outcome, r.stdout) for r in reports] == [
        (7, 3, 2, Outcome.DONE, b"mine")]
