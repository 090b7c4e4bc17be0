"""The native site's shell, decision by decision, with a fake clock, a fake host and a fake Slurm.

Each test drives a NativeSite through the Host protocol (what the manager sees of it) and
the Slurm adapter's real commands (what the batch system sees), never a real Slurm, a
manager process or the wall clock.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.sites.fakes import Clock, FakeHost, FakeSlurm, finish, turns
from tiercel.core.engine import KillTasks, SendTasks
from tiercel.core.model import JobId, JobSpec, Outcome, Report, TaskRef, WorkerId
from tiercel.core.ranges import IndexRanges
from tiercel.core.reservations import Reservation
from tiercel.sites.adapters.base import Invocation
from tiercel.sites.config import SiteConfig
from tiercel.sites.native import MISSING_POLLS, REST_CYCLES, NativeSite
from tiercel.store import DeleteSiteJob, SaveSiteJob

WORKER = WorkerId("site:hpc")
JOB, OTHER = JobId(1), JobId(2)


class World:
    """One native site ``hpc`` on a fake Slurm, and the fakes around it."""

    def __init__(self, tmp: Path, **cfg: Any) -> None:
        self.clock = Clock()
        self.host = FakeHost(self.clock, tmp)
        self.slurm = FakeSlurm()
        self.spool = tmp / "spool"
        config = SiteConfig.model_validate({"kind": "slurm", "partition": "short", "max_in_flight": 100, **cfg})
        self.site = NativeSite("hpc", config, self.host, self.spool, runner=self.slurm)

    async def send(self, job: JobId, spec: JobSpec, indexes: range, attempt: int = 1) -> list[TaskRef]:
        refs = [TaskRef(job, i, attempt) for i in indexes]
        self.site.send(SendTasks(WORKER, refs, {job: spec}))
        await turns()
        return refs

    async def cycle(self) -> None:
        await self.site.cycle()
        await turns()


def spec(cpus: int = 1, walltime: float | None = 600.0, **kw: Any) -> JobSpec:
    return JobSpec(("./sim",), IndexRanges.of_size(100), cpus=cpus, walltime=walltime, **kw)


def run(tmp_path: Path, scenario: Callable[[World], Awaitable[None]], **cfg: Any) -> None:
    async def main() -> None:
        await scenario(World(tmp_path, **cfg))

    asyncio.run(main())


def outcomes(reports: list[Report]) -> list[tuple[int, int, Outcome, int | None]]:
    return [(r.index, r.attempt, r.outcome, r.exit_code) for r in reports]


# ---- tasks in: one array per job ----------------------------------------------------------


def test_each_job_becomes_one_array_with_its_tasks_cores_and_walltime(tmp_path: Path) -> None:
    async def scenario(w: World) -> None:
        w.site.send(SendTasks(WORKER, [TaskRef(JOB, 0, 1), TaskRef(OTHER, 5, 1), TaskRef(JOB, 1, 1),
                                       TaskRef(JOB, 2, 1), TaskRef(OTHER, 6, 1)],
                              {JOB: spec(cpus=2, walltime=600), OTHER: spec(cpus=1, walltime=None)}))
        await turns()
        assert [inv.argv for inv in w.slurm.calls] == [("sbatch", "--parsable")] * 2
        first, second = w.slurm.header("17"), w.slurm.header("18")
        assert first["--job-name"] == "tiercel-1" and first["--array"] == "1-3"
        assert first["--cpus-per-task"] == "2" and first["--partition"] == "short"
        assert first["--time"] == "11"  # the task's 600 s and a minute for the shim to end it itself
        assert second["--job-name"] == "tiercel-2" and second["--array"] == "1-2"
        assert second["--cpus-per-task"] == "1" and "--time" not in second
        payloads = {op.native_id: json.loads(op.payload) for op in w.host.saves()}
        assert payloads["17"]["elements"] == {"1": [0, 1], "2": [1, 1], "3": [2, 1]}
        assert payloads["18"]["elements"] == {"1": [5, 1], "2": [6, 1]}

    run(tmp_path, scenario)


def test_a_job_larger_than_max_array_is_cut_into_arrays(tmp_path: Path) -> None:
    async def scenario(w: World) -> None:
        await w.send(JOB, spec(), range(10, 15))
        assert [w.slurm.header(n)["--array"] for n in ("17", "18", "19")] == ["1-2", "1-2", "1-1"]
        assert [json.loads(op.payload)["elements"] for op in w.host.saves()] == [
            {"1": [10, 1], "2": [11, 1]}, {"1": [12, 1], "2": [13, 1]}, {"1": [14, 1]}]

    run(tmp_path, scenario, max_array=2)


def test_the_element_script_is_there_before_sbatch_and_the_array_is_saved_before_it_is_polled(
        tmp_path: Path) -> None:
    async def scenario(w: World) -> None:
        seen: list[bool] = []

        def look(inv: Invocation) -> None:  # what an element started at once would find
            assert inv.stdin is not None
            script = inv.stdin.splitlines()[-1]
            assert script.startswith("exec /bin/sh ") and script.endswith("/run.sh")
            seen.append(Path(script.removeprefix("exec /bin/sh ")).is_file())
        w.slurm.on_submit = look
        await w.send(JOB, spec(cpus=2), range(3), attempt=2)
        assert seen == [True]
        (save,) = w.host.written()
        assert isinstance(save, SaveSiteJob)
        assert (save.site, save.native_id, save.submitted) == ("hpc", "17", w.clock.now)
        payload = json.loads(save.payload)
        assert payload["job"] == JOB and payload["cpus"] == 2 and payload["folder"] == str(w.slurm.workdir("17"))
        assert payload["elements"] == {"1": [0, 2], "2": [1, 2], "3": [2, 2]}
        await w.cycle()
        assert [inv.argv[0] for inv in w.slurm.calls] == ["sbatch", "squeue"]

    run(tmp_path, scenario)


def test_a_job_of_a_mirrored_reservation_of_this_site_is_submitted_into_it(tmp_path: Path) -> None:
    async def scenario(w: World) -> None:
        now = w.clock.now
        w.host.queries.booked["course"] = Reservation("course", "hpc", 4, now, now + 3600, frozenset({"ann"}),
                                                      mirror="tiercel-course")
        w.host.queries.booked["elsewhere"] = Reservation("elsewhere", "other", 4, now, now + 3600,
                                                         frozenset({"ann"}), mirror="tiercel-elsewhere")
        await w.send(JOB, spec(reservation="course"), range(1))
        await w.send(OTHER, spec(reservation="elsewhere"), range(1))
        await w.send(JobId(3), spec(), range(1))
        assert w.slurm.header("17")["--reservation"] == "tiercel-course"
        assert "--reservation" not in w.slurm.header("18")
        assert "--reservation" not in w.slurm.header("19")

    run(tmp_path, scenario)


@pytest.mark.parametrize(("failing", "prints"), [
    ({"sbatch": "sbatch: error: Batch job submission failed: Invalid account or account/partition combination"},
     {}),
    ({}, {"sbatch": "sbatch: error: Batch job submission failed\n"}),  # exit 0, but no job id: unreadable
])
def test_a_failed_submit_degrades_the_site_and_hands_its_tasks_back_lost(
        tmp_path: Path, failing: dict[str, str], prints: dict[str, str]) -> None:
    async def scenario(w: World) -> None:
        for name, message in failing.items():
            w.slurm.fail(name, message)
        w.slurm.prints = prints
        w.clock.advance(42)
        refs = await w.send(JOB, spec(cpus=3), range(4, 6))
        assert w.site.problem is not None and w.site.problem.startswith("submit failed:")
        assert w.host.changed == 1
        kinds = [k for k, _ in w.host.calls]
        assert kinds == ["detach", "reports"]  # takes nothing new, then its tasks go back to the queue
        assert w.host.of("detach") == [WORKER]
        ((worker, reports, freed),) = w.host.of("reports")
        assert worker == WORKER and freed == 3 * 2  # their slots are free again
        assert outcomes(reports) == [(4, 1, Outcome.LOST, None), (5, 1, Outcome.LOST, None)]
        assert {(r.started, r.ended) for r in reports} == {(w.clock.now, w.clock.now)}
        assert all(b"could not submit" in r.stderr for r in reports)
        assert [(r.job, r.index, r.attempt) for r in reports] == [(r.job, r.index, r.attempt) for r in refs]
        assert w.site.arrays == {} and list(w.spool.iterdir()) == []  # nothing saved, nothing left behind

    run(tmp_path, scenario)


# ---- the poll: results, missing elements, the array's record ------------------------------------


def test_a_poll_reports_what_the_result_lines_say_and_forgets_the_array_once_all_are_durable(
        tmp_path: Path) -> None:
    async def scenario(w: World) -> None:
        await w.send(JOB, spec(cpus=2, walltime=10), range(4))
        folder = w.slurm.workdir("17")
        t = w.clock.now
        finish(folder, 1, 0, started=t, ended=t + 3, out=b"result 0\n")
        finish(folder, 2, 3, started=t, ended=t + 4, err=b"boom\n")
        finish(folder, 3, 124, started=t, ended=t + 10.2, timeout_used=True)  # timeout(1) stopped it
        w.slurm.set("17", "COMPLETED", 1, 3)
        w.slurm.set("17", "FAILED", 2)
        w.slurm.set("17", "RUNNING", 4)
        w.host.durable_later = True
        await w.cycle()
        ((worker, reports, freed),) = w.host.of("reports")
        assert worker == WORKER and freed == 3 * 2
        assert outcomes(reports) == [(0, 1, Outcome.DONE, 0), (1, 1, Outcome.FAILED, 3),
                                     (2, 1, Outcome.TIMEOUT, 124)]
        assert reports[0].stdout == b"result 0\n" and (reports[0].started, reports[0].ended) == (t, t + 3)
        assert reports[1].stderr == b"boom\n"
        assert w.site.arrays["17"].open == {4}
        w.host.make_durable()
        await w.cycle()  # nothing new: element 4 still runs
        assert len(w.host.of("reports")) == 1 and "17" in w.site.arrays

        finish(folder, 4, 0, started=t, ended=t + 20)
        w.slurm.set("17", "COMPLETED", 4)
        await w.cycle()
        assert outcomes(w.host.of("reports")[1][1]) == [(3, 1, Outcome.DONE, 0)]
        assert not any(isinstance(op, DeleteSiteJob) for op in w.host.written())  # reports not durable yet
        w.host.make_durable()
        await turns()
        assert [op for op in w.host.written() if isinstance(op, DeleteSiteJob)] == [DeleteSiteJob("hpc", "17")]
        assert w.site.arrays == {} and folder.is_dir()  # its outputs stay until the delete is durable
        w.host.make_durable()
        await turns()
        assert not folder.exists()
        w.slurm.calls.clear()
        await w.cycle()
        assert w.slurm.calls == []  # nothing in flight, nothing to ask

    run(tmp_path, scenario)


def test_a_result_line_is_the_truth_whatever_the_batch_system_says(tmp_path: Path) -> None:
    async def scenario(w: World) -> None:
        await w.send(JOB, spec(), range(2))
        folder = w.slurm.workdir("17")
        finish(folder, 1, 0, started=1.0, ended=2.0)  # it ended, then Slurm cancelled the element
        w.slurm.set("17", "CANCELLED", 1)
        w.slurm.purge("17", 2)  # gone from squeue, but its result is there
        finish(folder, 2, 1, started=1.0, ended=2.0)
        await w.cycle()
        assert outcomes(w.host.reports()) == [(0, 1, Outcome.DONE, 0), (1, 1, Outcome.FAILED, 1)]

    run(tmp_path, scenario)


def test_an_element_gone_from_the_batch_system_is_lost_after_missing_polls_in_a_row(tmp_path: Path) -> None:
    async def scenario(w: World) -> None:
        await w.send(JOB, spec(), range(7, 9))
        w.slurm.set("17", "RUNNING")
        w.slurm.purge("17", 2)
        for _ in range(MISSING_POLLS - 1):
            await w.cycle()
        w.slurm.set("17", "RUNNING", 2)  # listed again: the count starts over
        await w.cycle()
        w.slurm.purge("17", 2)
        for _ in range(MISSING_POLLS - 1):
            w.clock.advance(5)
            await w.cycle()
        assert w.host.of("reports") == []  # a result file written at the very end still has its chance
        w.clock.advance(5)
        await w.cycle()
        ((worker, (report,), freed),) = w.host.of("reports")
        assert (worker, freed) == (WORKER, 1)
        assert outcomes([report]) == [(8, 1, Outcome.LOST, None)]
        assert (report.started, report.ended) == (w.clock.now, w.clock.now)
        assert report.stderr == b"tiercel: slurm element 17[2] is gone from the batch system without a result\n"
        assert w.site.arrays["17"].open == {1}

    run(tmp_path, scenario)


@pytest.mark.parametrize(("code", "outcome", "said"), [
    ("TIMEOUT", Outcome.TIMEOUT, "ended as TIMEOUT"),  # killed at the batch system's limit
    ("CANCELLED", Outcome.LOST, "ended as CANCELLED"),  # by an admin: worth running again
    ("NODE_FAIL", Outcome.LOST, "ended as NODE_FAIL"),
    ("FAILED", Outcome.FAILED, "ended as FAILED (NonZeroExitCode)"),  # could not even start the shim
    ("COMPLETED", Outcome.FAILED, "ended as COMPLETED"),  # ended, yet wrote no result
])
def test_an_element_that_ended_without_a_result_is_taken_by_its_state(
        tmp_path: Path, code: str, outcome: Outcome, said: str) -> None:
    async def scenario(w: World) -> None:
        await w.send(JOB, spec(), range(1))
        w.slurm.set("17", code)
        for _ in range(MISSING_POLLS - 1):
            await w.cycle()
        assert w.host.of("reports") == []
        await w.cycle()
        (report,) = w.host.reports()
        assert report.outcome is outcome
        assert report.stderr == f"tiercel: slurm element 17[1] {said} without a result\n".encode()

    run(tmp_path, scenario)


# ---- kill ----------------------------------------------------------------------------------


def test_kill_cancels_those_elements_and_the_whole_array_once_none_is_left(tmp_path: Path) -> None:
    async def scenario(w: World) -> None:
        refs = await w.send(JOB, spec(), range(4))
        w.site.kill(KillTasks(WORKER, [refs[1], refs[2], TaskRef(JOB, 1, 2)]))  # attempt 2 is none of its own
        await turns()
        assert [inv.argv for inv in w.slurm.commands("scancel")] == [("scancel", "17_[2-3]")]
        assert w.site.arrays["17"].open == {1, 4}
        finish(w.slurm.workdir("17"), 2, 0, started=1.0, ended=2.0)  # it ended as it was killed
        await w.cycle()
        assert w.host.of("reports") == []  # a killed element is not reported
        w.site.kill(KillTasks(WORKER, [refs[0], refs[3]]))
        await turns()
        assert [inv.argv for inv in w.slurm.commands("scancel")][1:] == [("scancel", "17")]
        assert w.site.arrays == {} and DeleteSiteJob("hpc", "17") in w.host.written()

    run(tmp_path, scenario)


# ---- restart, degrade, recover -------------------------------------------------------------


def test_a_restarted_site_holds_its_open_elements_and_kills_what_settled_meanwhile(tmp_path: Path) -> None:
    async def scenario(w: World) -> None:
        refs = await w.send(JOB, spec(cpus=2), range(3))
        rows = w.host.saves()
        # the manager restarts: a new host and a new site on the same spool find the array again
        host = FakeHost(w.clock, tmp_path)
        host.settled_meanwhile = [refs[1]]  # it was cancelled while the manager was down
        site = NativeSite("hpc", w.site.cfg, host, w.spool, runner=w.slurm)
        site.restore(rows)
        site.attach()
        (attached,) = host.attached()
        assert attached.worker == WORKER and attached.held == refs
        assert attached.credit == 100 - 2 * 3 and attached.info.slots == 100 and attached.info.site == "hpc"
        await turns()
        assert [inv.argv for inv in w.slurm.commands("scancel")] == [("scancel", "17_2")]
        assert site.arrays["17"].open == {1, 3}
        finish(w.slurm.workdir("17"), 1, 0, started=1.0, ended=2.0)  # its outputs are still where they were
        await site.cycle()
        assert outcomes(host.reports()) == [(0, 1, Outcome.DONE, 0)]
        # the engine's own deliveries reach the restored site
        attached.deliver(KillTasks(WORKER, [refs[2]]))
        await turns()
        assert site.arrays == {}

    run(tmp_path, scenario)


def test_a_failed_poll_detaches_the_site_and_the_next_good_one_attaches_what_is_open(tmp_path: Path) -> None:
    async def scenario(w: World) -> None:
        w.site.attach()
        refs = await w.send(JOB, spec(cpus=2), range(3))
        finish(w.slurm.workdir("17"), 1, 0, started=1.0, ended=2.0)
        w.slurm.set("17", "RUNNING", 2, 3)
        await w.cycle()
        w.slurm.fail("squeue", "slurm_load_jobs error: Unable to contact slurm controller (connect failure)")
        w.clock.advance(30)
        await w.cycle()
        assert w.site.problem is not None and "connect failure" in w.site.problem
        assert w.site.last_error_at == w.clock.now
        assert [k for k, _ in w.host.calls][-1] == "detach"
        w.host.calls.clear()
        await w.cycle()
        assert w.host.calls == [("detach", WORKER)]  # degraded again, nothing else
        w.slurm.heal("squeue")
        await w.cycle()
        assert w.site.problem is None and w.site.last_poll == w.clock.now
        (attached,) = w.host.attached()
        assert attached.held == refs[1:] and attached.credit == 100 - 2 * 2

    run(tmp_path, scenario)


def test_a_degraded_site_with_nothing_in_flight_rests_then_takes_work_again(tmp_path: Path) -> None:
    async def scenario(w: World) -> None:
        w.slurm.fail("sbatch", "sbatch: error: Slurm controller not responding")
        await w.send(JOB, spec(), range(1))
        assert w.site.problem is not None
        for _ in range(REST_CYCLES - 1):
            await w.cycle()
        assert w.site.problem is not None and w.host.attached() == []
        await w.cycle()
        assert w.site.problem is None
        (attached,) = w.host.attached()
        assert attached.held == [] and attached.credit == 100

    run(tmp_path, scenario)


def send_two_jobs_the_first_refused(w: World) -> tuple[list[TaskRef], list[TaskRef]]:
    """The engine sent two jobs at once; the first sbatch fails, the second goes through."""
    w.slurm.fail("sbatch", "sbatch: error: Slurm temporarily unable to accept job, sleeping and retrying", times=1)
    refused = [TaskRef(JOB, i, 1) for i in range(2)]
    taken = [TaskRef(OTHER, i, 1) for i in range(3)]
    w.site.send(SendTasks(WORKER, refused + taken, {JOB: spec(), OTHER: spec()}))
    return refused, taken


def test_a_good_submit_after_a_failed_one_recovers_the_site(tmp_path: Path) -> None:
    async def scenario(w: World) -> None:
        refused, taken = send_two_jobs_the_first_refused(w)
        await turns()
        assert w.site.problem is None and w.host.changed == 2  # degraded, then well again
        assert [k for k, _ in w.host.calls] == ["detach", "reports", "attach", "write"]
        assert [(r.job, r.index, r.outcome) for r in w.host.reports()] == [
            (r.job, r.index, Outcome.LOST) for r in refused]
        (save,) = w.host.written()
        assert isinstance(save, SaveSiteJob) and save.native_id == "17"
        assert w.site.arrays["17"].elements == dict(enumerate(taken, start=1))

    run(tmp_path, scenario)


def test_the_site_that_recovers_on_a_submit_holds_the_array_it_submitted(tmp_path: Path) -> None:
    async def scenario(w: World) -> None:
        _, taken = send_two_jobs_the_first_refused(w)
        await turns()
        (attached,) = w.host.attached()
        assert attached.held == taken

    run(tmp_path, scenario)
