"""What a replay measured: utilisation, waits, bounded slowdown, makespan."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from tiercel.core.sim.workload import SimJob

BOUND = 10.0  # seconds: the threshold of bounded slowdown


@dataclass
class SimResult:
    jobs: int
    skipped: int
    utilisation: float
    mean_wait: float
    mean_bounded_slowdown: float
    p95_bounded_slowdown: float
    makespan: float
    cycles: int
    waits: list[float] = field(default_factory=list, repr=False)


def measure(jobs: Sequence[SimJob], start: Mapping[int, float], slots: int, first: float, skipped: int,
            cycles: int) -> SimResult:
    """The figures of a replay in which every job of ``jobs`` started at ``start[job.id]``."""
    if not jobs:
        return SimResult(0, skipped, 0.0, 0.0, 0.0, 0.0, 0.0, cycles)
    waits = [start[j.id] - j.submit for j in jobs]
    slowdowns = sorted(max(1.0, (w + j.runtime) / max(j.runtime, BOUND)) for w, j in zip(waits, jobs, strict=True))
    end = max(start[j.id] + j.runtime for j in jobs)
    makespan = end - first
    work = sum(j.procs * j.runtime for j in jobs)
    p95 = slowdowns[min(len(slowdowns) - 1, math.ceil(0.95 * len(slowdowns)) - 1)]
    return SimResult(
        jobs=len(jobs), skipped=skipped,
        utilisation=work / (slots * makespan) if makespan > 0 else 0.0,
        mean_wait=sum(waits) / len(waits),
        mean_bounded_slowdown=sum(slowdowns) / len(slowdowns),
        p95_bounded_slowdown=p95, makespan=makespan, cycles=cycles, waits=waits,
    )
