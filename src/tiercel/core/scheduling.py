"""First-come-first-served placement with requirement matching.

``plan`` is a pure function of a snapshot of waiting jobs and hungry workers:
it returns how many tasks of which job go to which worker. The engine applies
the plan; the policy chain of queues will replace this function's ordering and
filtering without touching the engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from tiercel.core.model import JobId, JobSpec, WorkerId, WorkerInfo


class JobView(Protocol):
    @property
    def id(self) -> JobId: ...
    @property
    def spec(self) -> JobSpec: ...
    @property
    def pending(self) -> int: ...


class WorkerView(Protocol):
    @property
    def id(self) -> WorkerId: ...
    @property
    def info(self) -> WorkerInfo: ...
    @property
    def credit(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Placement:
    worker: WorkerId
    job: JobId
    count: int


def job_order(job: JobView) -> tuple[int, int]:
    """Higher priority first, then first come, first served."""
    return (-job.spec.priority, job.id)


def plan(jobs: Sequence[JobView], workers: Sequence[WorkerView]) -> list[Placement]:
    """Fill each worker's free slots with the earliest jobs it can run.

    ``jobs`` must already be in ``job_order``. A job whose requirements a
    worker does not meet is passed over for that worker only, so a GPU job at
    the head does not block CPU work behind it on CPU-only workers.
    """
    left = {job.id: job.pending for job in jobs}
    out: list[Placement] = []
    for worker in workers:
        credit = worker.credit
        for job in jobs:
            if credit <= 0:
                break
            want = left[job.id]
            if want <= 0 or not worker.info.fits(job.spec):
                continue
            n = min(want, credit // job.spec.cpus)
            if n <= 0:
                continue
            left[job.id] = want - n
            credit -= n * job.spec.cpus
            out.append(Placement(worker.id, job.id, n))
    return out


def why_waiting(spec: JobSpec, workers: Sequence[WorkerInfo]) -> str:
    """A sentence saying why a job's tasks are not placed (for status and explain)."""
    if not workers:
        return "no worker is connected"
    missing = [spec.requires - w.tags for w in workers]
    if all(missing):
        tags = sorted(set().union(*missing))
        return f"no connected worker has the required tags {', '.join(tags)}"
    if all(spec.cpus > w.slots for w in workers):
        return f"no connected worker has {spec.cpus} slots"
    if spec.memory_mb and all(w.memory_mb and spec.memory_mb > w.memory_mb for w in workers):
        return f"no connected worker has {spec.memory_mb} MB of memory"
    return "all matching workers are busy"
