"""Small helpers around placement that the policy pipeline does not cover.

Placement itself is the queue's policy chain (``pipeline.schedule``); this module
keeps the engine's standing order of jobs and the one-line reason shown in a
job's status when nothing of it runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from tiercel.core.model import JobId, JobSpec, WorkerInfo


class Ordered(Protocol):
    @property
    def id(self) -> JobId: ...
    @property
    def spec(self) -> JobSpec: ...


def job_order(job: Ordered) -> tuple[int, int]:
    """Higher priority first, then first come, first served."""
    return (-job.spec.priority, job.id)


def why_waiting(spec: JobSpec, workers: Sequence[WorkerInfo]) -> str:
    """A sentence saying why a job's tasks are not placed (for status; explain says more)."""
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
    return "all matching workers are busy (see 'tiercel explain' for the policies)"
