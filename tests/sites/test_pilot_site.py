"""The pilot site's shell over a real engine: the workers it starts, and what `tiercel sites` says of it."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import click
import pytest

from tiercel.cli.commands.daemons import worker as worker_command
from tiercel.core.engine import Engine
from tiercel.core.model import JobId, JobSpec, Report, UserName, WorkerId, WorkerInfo
from tiercel.core.ranges import IndexRanges
from tiercel.core.sites import POOL, Mode, SiteInfo, SiteLoad
from tiercel.sites.config import SiteConfig
from tiercel.sites.pilot import Pilots, PilotSite
from tiercel.store import WriteOp


class EngineQueries:
    """The read model's site_load, over the engine (as manager.queries computes it)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def site_load(self, site: str) -> tuple[SiteLoad, int, int]:
        loads = self.engine.site_loads().get(site, SiteLoad())
        running = sum(len(w.tasks) for w in self.engine.workers.values() if w.info.site == site)
        return loads, self.engine.waiting_on(site), running


class FakeHost:
    """The manager as a site sees it, around a real engine."""

    def __init__(self, tmp: Path) -> None:
        self.engine = Engine()
        self.queries = EngineQueries(self.engine)
        self.tmp = tmp

    def clock(self) -> float:
        return 1000.0

    def write(self, ops: list[WriteOp]) -> asyncio.Future[None]:
        raise AssertionError("nothing is written here")

    def site_reports(self, worker: WorkerId, reports: list[Report], freed: int) -> asyncio.Future[None]:
        raise AssertionError("pilots report as workers")

    def sites_changed(self) -> None:
        pass

    def pilot_url(self) -> str:
        return "http://127.0.0.1:8750"

    def worker_token_file(self) -> Path:
        return self.tmp / "worker.token"


def site(tmp_path: Path, **cfg: object) -> PilotSite:
    config = SiteConfig.model_validate({"kind": "sge", "mode": "pilot", **cfg})
    host = FakeHost(tmp_path)
    made = PilotSite("sge", config, host, tmp_path)
    host.engine.set_sites([SiteInfo(POOL, POOL, Mode.POOL), made.info()])
    return made


def worker_options(s: PilotSite, tmp_path: Path, element: int = 3) -> dict[str, object]:
    """The options `tiercel worker` gets from the script a pilot runs (a fake Python prints its arguments)."""
    python = tmp_path / "python"
    python.write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n')
    python.chmod(0o755)
    s.python = str(python)
    out = subprocess.run(["/bin/sh", "-c", s._script("p1")], capture_output=True, text=True, check=True,
                         env={**os.environ, "TIERCEL_ELEMENT": str(element)})
    argv = out.stdout.splitlines()
    assert argv[:3] == ["-m", "tiercel", "worker"], argv
    with click.Context(worker_command) as ctx:
        return dict(worker_command.make_context("worker", argv[3:], parent=ctx).params)


@pytest.mark.parametrize(("tags", "seen"), [
    (["bio", "gpu:a100"], "bio,gpu:a100"),
    ([], ""),
])
def test_a_pilot_gets_the_tags_of_its_site(tmp_path: Path, tags: list[str], seen: str) -> None:
    s = site(tmp_path, tags=tags, slots=3)
    params = worker_options(s, tmp_path)
    assert params["tags"] == seen
    assert params["site"] == "sge" and params["slots"] == 3 and params["name"] == "sge.p1.3"


def test_a_pilot_reads_inputs_on_the_one_node_its_site_sees(tmp_path: Path) -> None:
    assert worker_options(site(tmp_path, data_nodes=["gfnode2"]), tmp_path)["data_host"] == "gfnode2"
    assert worker_options(site(tmp_path), tmp_path)["data_host"] is None  # none said: the worker finds its own


def test_pilots_spread_over_the_nodes_their_site_sees_by_element(tmp_path: Path) -> None:
    s = site(tmp_path, data_nodes=["gfnode1", "gfnode2", "gfnode3"])
    seen = [worker_options(s, tmp_path, element=n)["data_host"] for n in range(1, 7)]
    assert seen == ["gfnode1", "gfnode2", "gfnode3"] * 2


def test_a_pilot_on_a_host_named_as_a_node_reads_there(tmp_path: Path) -> None:
    here = os.uname().nodename
    s = site(tmp_path, data_nodes=["gfnode1", here])
    assert [worker_options(s, tmp_path, element=n)["data_host"] for n in (1, 2, 3)] == [here] * 3


def spec(n: int) -> JobSpec:
    return JobSpec(("true",), IndexRanges(((0, n),)), site="sge")


def test_free_slots_never_exceed_the_total(tmp_path: Path) -> None:
    s = site(tmp_path, slots=4, max_pilots=1)
    s.pilots["7"] = Pilots("7", "p1", 1, 0.0)
    s.worker_connected("sge.p1.1")
    engine = s.host.engine
    # an idle pilot offers its slots and as many again for tasks it queues ahead (its prefetch)
    engine.connect(WorkerId("w1"), WorkerInfo("sge.p1.1", "node", 4, site="sge"), 0.0, credit=8)
    row = s.describe()
    assert row["slots_total"] == 4
    assert row["slots_free"] == 4
    engine.add_job(JobId(1), spec(6), UserName("ann"), 0.0)
    engine.dispatch(1.0)
    assert len(engine.workers[WorkerId("w1")].tasks) == 6  # four running, two queued on the pilot
    row = s.describe()
    assert (row["slots_total"], row["slots_free"]) == (4, 0)


def test_an_unstarted_pilot_is_counted_in_total_and_free_alike(tmp_path: Path) -> None:
    row = site(tmp_path, slots=2, max_pilots=3).describe()
    assert row["slots_total"] == row["slots_free"] == 6
