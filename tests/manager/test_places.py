"""Where a job ran: each place written once per job, named as people know it."""

from __future__ import annotations

from types import SimpleNamespace

from tiercel.core.model import AttemptRecord, JobId, Outcome, Report, WorkerId, WorkerInfo
from tiercel.core.sites import site_worker
from tiercel.manager.places import Places
from tiercel.store import AddPlaces


def rec(job: int, index: int, worker: str) -> AttemptRecord:
    return AttemptRecord(Report(JobId(job), index, 1, Outcome.DONE, 0, 1.0, 2.0, b"", b""), True, WorkerId(worker))


def test_each_place_is_written_once_per_job_by_the_name_people_know() -> None:
    workers = {WorkerId("a1"): SimpleNamespace(info=WorkerInfo("node-a", "h", 4)),
               WorkerId("p7"): SimpleNamespace(info=WorkerInfo("pilot-7", "h", 4, site="hpc"))}
    places = Places(lambda: SimpleNamespace(workers=workers))  # type: ignore[arg-type, return-value]
    first = places.new([rec(1, 0, "a1"), rec(1, 1, "a1"), rec(1, 2, "p7"), rec(2, 0, site_worker("slurm")),
                        rec(2, 1, "gone")])
    assert sorted(first, key=lambda op: op.job) == [AddPlaces(JobId(1), ("hpc/pilot-7", "node-a")),
                                                    AddPlaces(JobId(2), ("gone", "slurm"))]
    assert places.new([rec(1, 3, "a1"), rec(2, 2, "gone")]) == []  # nothing new: nothing to write
    assert places.new([rec(1, 4, "a1"), rec(3, 0, "a1")]) == [AddPlaces(JobId(3), ("node-a",))]
    places.ended(JobId(1))
    assert places.new([rec(1, 5, "a1")]) == [AddPlaces(JobId(1), ("node-a",))]  # a retried job adds again
