"""The simulator as it was before it drove the engine: one machine, the policy chain called directly.

Kept as an independent reference. It shares the policies and the pipeline with the engine,
but none of the engine's bookkeeping (jobs, workers, credit, site choice, seals, reports):
its own heap of running jobs, free-slot count, per-user counts and usage. The published
NASA and LCG figures came from it, job for job; the engine-driven simulator must agree with
it wherever a single machine is all there is.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Sequence

from tiercel.core import policies
from tiercel.core.model import JobId, UserName
from tiercel.core.pipeline import Chain, schedule
from tiercel.core.policies.fairshare import DecayedUsage
from tiercel.core.policy import Group, Place, Snapshot
from tiercel.core.sim import SimJob, SimResult
from tiercel.core.sim.metrics import measure


def replay(jobs: Iterable[SimJob], slots: int, chain: Chain, *, half_life: float = 86400.0) -> SimResult:
    arrivals = sorted(jobs, key=lambda j: (j.submit, j.id))
    runnable = [j for j in arrivals if j.procs <= slots]
    by_id = {j.id: j for j in runnable}
    waiting: dict[int, Group] = {}
    running: list[tuple[float, int, int]] = []  # heap of (end, job id, procs)
    running_by_user: dict[UserName, int] = {}
    running_by_queue = {"default": 0}
    usage = DecayedUsage(policies.usage_half_life([chain]) or half_life)
    start: dict[int, float] = {}
    free = slots
    first = runnable[0].submit if runnable else 0.0
    i = 0
    cycles = 0
    while i < len(runnable) or running:
        next_arrival = runnable[i].submit if i < len(runnable) else math.inf
        next_end = running[0][0] if running else math.inf
        now = min(next_arrival, next_end)
        while running and running[0][0] <= now:
            _, jid, procs = heapq.heappop(running)
            free += procs
            user = UserName(by_id[jid].user)
            running_by_user[user] -= 1
            running_by_queue["default"] -= 1
            usage.add_running(user, -procs, now)
        while i < len(runnable) and runnable[i].submit <= now:
            j = runnable[i]
            waiting[j.id] = Group(JobId(j.id), UserName(j.user), 1, j.procs, j.submit, walltime=j.estimate)
            i += 1
        if not waiting or free == 0:
            continue
        releases: Sequence[tuple[float, int]] = [(start[jid] + by_id[jid].estimate, procs) for _, jid, procs in running]
        snap = Snapshot(now, tuple(waiting.values()), (Place("machine", free, slots, releases=releases),),
                        running_by_user=running_by_user, running_by_queue=running_by_queue, usage=usage.at(now))
        cycles += 1
        for placement in schedule(snap, chain).placements:
            job = by_id[placement.job]
            del waiting[job.id]
            start[job.id] = now
            free -= job.procs
            user = UserName(job.user)
            running_by_user[user] = running_by_user.get(user, 0) + 1
            running_by_queue["default"] += 1
            usage.add_running(user, job.procs, now)
            heapq.heappush(running, (now + job.runtime, job.id, job.procs))
    return measure(runnable, start, slots, first, len(arrivals) - len(runnable), cycles)
