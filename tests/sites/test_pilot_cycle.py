"""The pilot site's cycle, decision by decision, with a fake clock, a fake host and a fake Slurm.

What waits (``site_work``) and what connected pilots have free (``site_free``) come from the
fake host; pilots are submitted to, listed by and vanish from the fake Slurm; a pilot
"connects" when the manager tells the site its worker said hello (``worker_connected``).
"""

from __future__ import annotations

import asyncio
import json
import shlex
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.sites.fakes import Clock, FakeHost, FakeSlurm, turns
from tiercel.core.reservations import Reservation
from tiercel.sites.config import SiteConfig
from tiercel.sites.pilot import BACKOFF_CYCLES, MIN_PILOT_LIFE, MISSING_POLLS, PilotSite
from tiercel.store import DeleteSiteJob, SaveSiteJob


class World:
    """One pilot site ``hpc`` on a fake Slurm: 4 slots a pilot, at most 3 pilots, an hour each."""

    def __init__(self, tmp: Path, **cfg: Any) -> None:
        self.clock = Clock()
        self.host = FakeHost(self.clock, tmp)
        self.slurm = FakeSlurm()
        self.spool = tmp / "spool"
        config = SiteConfig.model_validate({"kind": "slurm", "mode": "pilot", "partition": "short", "slots": 4,
                                            "max_pilots": 3, "pilot_walltime": "1h", "idle_timeout": "5m",
                                            "tags": ["gpu", "bio"], **cfg})
        self.site = PilotSite("hpc", config, self.host, self.spool, runner=self.slurm)

    async def cycle(self) -> None:
        await self.site.cycle()
        await turns()

    def submitted(self) -> list[str]:
        """Native ids of the pilot arrays submitted so far."""
        return [op.native_id for op in self.host.saves()]

    def saved(self, native: str) -> dict[str, Any]:
        (op,) = [op for op in self.host.saves() if op.native_id == native]
        payload: dict[str, Any] = json.loads(op.payload)
        return payload

    def connect(self, native: str, *elements: int) -> None:
        """These pilots' workers said hello to the manager (their names are what the script gives them)."""
        for n in elements:
            self.site.worker_connected(f"hpc.{self.saved(native)['key']}.{n}")

    def worker_options(self, native: str) -> dict[str, str]:
        """The options of the `tiercel worker` command the pilots of this array run."""
        line = self.slurm.scripts[native].splitlines()[-1]
        words = shlex.split(line)
        assert words[:5] == ["exec", self.site.python, "-m", "tiercel", "worker"], line
        return dict(zip(words[5::2], words[6::2], strict=True))


def run(tmp_path: Path, scenario: Callable[[World], Awaitable[None]], **cfg: Any) -> None:
    async def main() -> None:
        await scenario(World(tmp_path, **cfg))

    asyncio.run(main())


def course(w: World, *, slots: int = 8, start: float = -60.0, end: float = 1830.5,
           mirror: str | None = "tiercel-course", site: str = "hpc") -> Reservation:
    """A reservation on the site, its start and end relative to the fake clock's now."""
    now = w.clock.now
    r = Reservation("course", site, slots, now + start, now + end, frozenset({"ann"}), mirror=mirror)
    w.host.queries.booked[r.name] = r
    return r


# ---- how many pilots --------------------------------------------------------------------------


def test_waiting_work_starts_enough_pilots_as_one_array_carrying_the_sites_tags(tmp_path: Path) -> None:
    async def scenario(w: World) -> None:
        w.host.work = {None: 10}
        await w.cycle()
        assert w.submitted() == ["17"]
        head = w.slurm.header("17")
        assert head["--array"] == "1-3"  # ten slots of work, four a pilot
        assert head["--cpus-per-task"] == "4" and head["--time"] == "60" and head["--partition"] == "short"
        assert head["--job-name"] == "tiercel-pilot-hpc" and "--reservation" not in head
        key = f"p{int(w.clock.now)}1"
        assert w.saved("17") == {"key": key, "count": 3}
        (save,) = w.host.written()
        assert isinstance(save, SaveSiteJob) and save.submitted == w.clock.now
        assert w.worker_options("17") == {
            "--manager": "http://manager.example:8750", "--token-file": str(tmp_path / "worker.token"),
            "--site": "hpc", "--slots": "4", "--tags": "bio,gpu", "--lifetime": "3600", "--idle-exit": "300",
            "--name": f"hpc.{key}.$TIERCEL_ELEMENT"}

    run(tmp_path, scenario)


@pytest.mark.parametrize(("waiting", "free", "started"), [
    (0, 0, 0),
    (8, 8, 0),  # the connected pilots' free slots take it
    (9, 8, 1),
    (5, 0, 2),
    (1000, 0, 3),  # never more than max_pilots
])
def test_pilots_are_started_for_the_work_free_slots_do_not_cover(
        tmp_path: Path, waiting: int, free: int, started: int) -> None:
    async def scenario(w: World) -> None:
        w.host.work, w.host.free = {None: waiting}, {None: free}
        await w.cycle()
        assert [w.saved(n)["count"] for n in w.submitted()] == ([started] if started else [])

    run(tmp_path, scenario)


def test_pilots_still_queued_in_the_batch_system_are_not_started_again(tmp_path: Path) -> None:
    async def scenario(w: World) -> None:
        w.host.work = {None: 8}
        await w.cycle()
        assert w.saved("17")["count"] == 2
        await w.cycle()  # both still pending in Slurm: they will take the work
        assert w.submitted() == ["17"]
        w.host.work = {None: 12}
        await w.cycle()
        assert w.submitted() == ["17", "18"] and w.saved("18")["count"] == 1
        await w.cycle()
        assert w.slurm.commands("squeue")[-1].argv[-1] == "17,18"  # one query for every array

    run(tmp_path, scenario)


def test_never_more_than_max_pilots_alive_and_an_ended_one_is_replaced(tmp_path: Path) -> None:
    async def scenario(w: World) -> None:
        w.host.work = {None: 1000}
        await w.cycle()
        w.slurm.set("17", "RUNNING")
        w.connect("17", 1, 2, 3)
        for _ in range(3):
            await w.cycle()
        assert w.submitted() == ["17"]
        w.slurm.set("17", "COMPLETED", 2)  # its lifetime is over
        await w.cycle()
        assert w.submitted() == ["17", "18"] and w.saved("18")["count"] == 1
        assert w.site.problem is None and w.site.failures == 0  # it had connected: no failure

    run(tmp_path, scenario)


def test_min_pilots_are_kept_without_work_and_an_array_all_ended_is_forgotten(tmp_path: Path) -> None:
    async def scenario(w: World) -> None:
        await w.cycle()
        assert w.saved("17")["count"] == 2
        w.connect("17", 1, 2)
        w.slurm.set("17", "RUNNING")
        await w.cycle()
        assert w.submitted() == ["17"]
        w.slurm.set("17", "COMPLETED")  # idle pilots exit after idle_timeout
        await w.cycle()
        assert DeleteSiteJob("hpc", "17") in w.host.written()
        assert w.submitted() == ["17", "18"] and w.saved("18")["count"] == 2
        assert list(w.site.pilots) == ["18"]

    run(tmp_path, scenario, min_pilots=2)


def test_restored_pilots_count_as_alive(tmp_path: Path) -> None:
    async def scenario(w: World) -> None:
        w.slurm.arrays["40"] = {1: "RUNNING", 2: "PENDING", 3: "PENDING"}
        w.site.restore([SaveSiteJob("hpc", "40", json.dumps({"key": "p99", "count": 3}), w.clock.now - 600)])
        w.host.work = {None: 1000}
        await w.cycle()
        assert w.submitted() == []
        assert [inv.argv for inv in w.slurm.calls] == [
            ("squeue", "-h", "-r", "--states=all", "-o", "%i|%T|%r", "-j", "40")]

    run(tmp_path, scenario)


# ---- pilots that never connect -------------------------------------------------------------------


def test_pilots_that_end_without_connecting_degrade_the_site_which_rests_then_tries_one(tmp_path: Path) -> None:
    async def scenario(w: World) -> None:
        w.host.work = {None: 8}
        await w.cycle()
        w.host.work = {}  # nothing to replace them for
        w.slurm.set("17", "FAILED", 1)  # could not start: e.g. no Python on the node
        w.slurm.purge("17", 2)  # gone without a trace
        await w.cycle()
        assert w.site.failures == 1 and w.site.problem is None
        for _ in range(MISSING_POLLS - 1):
            await w.cycle()
        assert w.site.failures == 2
        assert w.site.problem == f"2 pilots in a row ended without connecting; see their output in {w.spool}"
        assert w.host.changed == 1 and w.site.pilots == {} and DeleteSiteJob("hpc", "17") in w.host.written()
        w.host.work = {None: 1000}
        for _ in range(BACKOFF_CYCLES - 2):  # the cycle that degraded it was the first of its rest
            await w.cycle()
        assert w.submitted() == ["17"]
        await w.cycle()
        assert w.submitted() == ["17", "18"]
        assert w.saved("18")["count"] == 1  # one pilot tells whether the site works again, whatever waits
        w.connect("18", 1)
        assert w.site.problem is None and w.site.failures == 0 and w.host.changed == 2

    run(tmp_path, scenario, max_failures=2)


def test_only_failures_in_a_row_count(tmp_path: Path) -> None:
    async def scenario(w: World) -> None:
        w.host.work = {None: 1000}
        await w.cycle()
        w.slurm.set("17", "FAILED", 1)
        await w.cycle()
        w.connect("17", 2)  # a pilot that works: the count starts over
        w.slurm.set("17", "FAILED", 3)
        await w.cycle()
        assert w.site.failures == 1 and w.site.problem is None

    run(tmp_path, scenario, max_failures=2)


def test_only_absences_in_a_row_end_a_pilot(tmp_path: Path) -> None:
    """A pilot the batch system fails to list now and then (a busy controller) is not taken for gone."""
    async def scenario(w: World) -> None:
        w.host.work = {None: 4}
        await w.cycle()
        w.host.work = {}
        for _ in range(3):  # missing, then listed again, three times over: never MISSING_POLLS in a row
            w.slurm.purge("17", 1)
            for _ in range(MISSING_POLLS - 1):
                await w.cycle()
            w.slurm.set("17", "RUNNING", 1)
            await w.cycle()
        assert w.site.failures == 0 and 1 not in w.site.pilots["17"].ended

    run(tmp_path, scenario)


def test_a_failed_pilot_submit_degrades_the_site_until_a_pilot_connects(tmp_path: Path) -> None:
    async def scenario(w: World) -> None:
        w.host.work = {None: 1000}
        w.slurm.fail("sbatch", "sbatch: error: invalid partition specified: short")
        await w.cycle()
        assert w.site.problem is not None and w.site.problem.startswith("pilot submit failed: sbatch failed")
        assert w.site.pilots == {} and w.host.written() == []
        w.slurm.heal("sbatch")
        for _ in range(BACKOFF_CYCLES - 1):
            await w.cycle()
        assert w.slurm.issued["sbatch"] == 1
        await w.cycle()
        assert w.submitted() == ["17"] and w.saved("17")["count"] == 1
        w.slurm.set("17", "RUNNING")
        await w.cycle()
        assert w.site.problem is not None  # submitted is not working: only a pilot that connects tells
        w.connect("17", 1)
        assert w.site.problem is None

    run(tmp_path, scenario)


# ---- mirrored reservations ----------------------------------------------------------------------


def test_a_mirrored_reservation_open_now_gets_pilots_of_its_own_inside_it(tmp_path: Path) -> None:
    async def scenario(w: World) -> None:
        course(w, slots=8)
        w.host.work = {"course": 100}
        await w.cycle()
        assert w.submitted() == ["17"]  # its work is not counted for ordinary pilots
        assert ("hpc", "course", frozenset()) in w.host.work_asked
        assert ("hpc", None, frozenset({"course"})) in w.host.work_asked
        head = w.slurm.header("17")
        assert head["--reservation"] == "tiercel-course" and head["--array"] == "1-2"  # 8 reserved slots
        assert w.saved("17")["reservation"] == "course"
        options = w.worker_options("17")
        assert options["--reservation"] == "course" and options["--tags"] == "bio,gpu"

    run(tmp_path, scenario)


def test_reserved_and_ordinary_pilots_share_max_pilots_reserved_first(tmp_path: Path) -> None:
    async def scenario(w: World) -> None:
        course(w, slots=8)
        w.host.work = {"course": 100, None: 100}
        await w.cycle()
        assert [(w.saved(n).get("reservation"), w.saved(n)["count"]) for n in w.submitted()] == [
            ("course", 2), (None, 1)]

    run(tmp_path, scenario)


def test_free_slots_of_a_reservations_pilots_serve_only_its_work(tmp_path: Path) -> None:
    async def scenario(w: World) -> None:
        course(w, slots=8)
        w.host.work, w.host.free = {"course": 8, None: 8}, {"course": 8}
        await w.cycle()
        assert [(w.saved(n).get("reservation"), w.saved(n)["count"]) for n in w.submitted()] == [(None, 2)]

    run(tmp_path, scenario)


@pytest.mark.parametrize(("start", "end"), [
    (3600.0, 7200.0),  # not open yet
    (-3600.0, MIN_PILOT_LIFE - 1),  # too little left for a pilot to be worth it
])
def test_the_work_of_a_mirrored_reservation_not_open_gets_no_pilots(tmp_path: Path, start: float, end: float) -> None:
    async def scenario(w: World) -> None:
        course(w, start=start, end=end)
        w.host.work = {"course": 100}
        await w.cycle()
        assert w.submitted() == []

    run(tmp_path, scenario)


@pytest.mark.parametrize("kw", [{"mirror": None}, {"site": "other"}])
def test_the_work_of_a_reservation_not_mirrored_here_goes_to_ordinary_pilots(tmp_path: Path,
                                                                             kw: dict[str, Any]) -> None:
    async def scenario(w: World) -> None:
        course(w, **kw)
        w.host.work = {"course": 5}
        await w.cycle()
        assert w.submitted() == ["17"] and "reservation" not in w.saved("17")
        assert "--reservation" not in w.slurm.header("17")

    run(tmp_path, scenario)


@pytest.mark.parametrize(("left", "minutes", "lifetime"), [
    (1830.5, "30", "1800"),  # whole minutes, rounded down: the pilot ends with the reservation
    (7200.0, "60", "3600"),  # the site's pilot_walltime when the reservation lasts longer
    (MIN_PILOT_LIFE, "2", "120"),
])
def test_a_reservations_pilots_last_no_longer_than_what_is_left_of_it(
        tmp_path: Path, left: float, minutes: str, lifetime: str) -> None:
    async def scenario(w: World) -> None:
        r = course(w, start=0.0, end=10_000.0)
        w.clock.advance(r.end - w.clock.now - left)
        w.host.work = {"course": 1}
        await w.cycle()
        assert w.slurm.header("17")["--time"] == minutes
        assert w.worker_options("17")["--lifetime"] == lifetime
        assert w.clock.now + float(lifetime) <= r.end  # it never outlives the reservation

    run(tmp_path, scenario)


def test_a_pilot_walltime_under_a_minute_is_kept_in_seconds_inside_a_reservation(tmp_path: Path) -> None:
    """Rounding down to whole minutes would make it 0, which no batch system takes."""
    async def scenario(w: World) -> None:
        r = course(w, start=0.0, end=10_000.0)
        w.host.work = {"course": 1}
        await w.cycle()
        assert w.site.problem is None
        lifetime = float(w.worker_options("17")["--lifetime"])
        assert 0 < lifetime <= 45 and w.clock.now + lifetime <= r.end

    run(tmp_path, scenario, pilot_walltime="45s")
