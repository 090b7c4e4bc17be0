"""A trace-driven simulator: the real policy chain in virtual time.

Jobs arrive at their submit times, wait in one queue, run on a machine of
``slots`` for their recorded run times, and the queue's chain decides who
starts at every arrival and completion. Nothing reads a clock: a month of
workload replays in seconds, and the same inputs give the same numbers.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import overload

from tiercel.core import policies
from tiercel.core.model import JobId, UserName
from tiercel.core.pipeline import Chain, schedule
from tiercel.core.policies.fairshare import DecayedUsage
from tiercel.core.policy import Group, Place, Snapshot

BOUND = 10.0  # seconds: the threshold of bounded slowdown


@dataclass(frozen=True, slots=True)
class SimJob:
    id: int
    user: str
    submit: float
    runtime: float
    procs: int
    estimate: float


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


def estimates(jobs: Iterable[SimJob], factor: float, noise: float, seed: int) -> list[SimJob]:
    """Walltime estimates as backfill sees them, reproducible for a seed.

    A job that comes with an estimate (the trace's requested time, ``estimate`` > 0) keeps it:
    that is its user's own guess, and the real inaccuracy of users' guesses is what a trace with
    requested times is good for. It is only raised to the run time, because the replay runs the
    job for its recorded time and backfill must not plan around an end that never comes. A job
    without one (all of NASA's) gets run time × ``factor`` × U(1, 1 + ``noise``), standing in
    for the users' overestimates. With factor 1 and no noise both are max(requested, run time),
    as bench/policies.py computes them for the published figures.
    """
    rng = random.Random(seed)
    out = []
    for j in jobs:
        # drawn for every job, so a job's spread depends on its place in the trace, not on its neighbours
        spread = 1.0 + rng.random() * noise if noise else 1.0
        estimate = max(j.estimate, j.runtime) if j.estimate > 0 else j.runtime * factor * spread
        out.append(SimJob(j.id, j.user, j.submit, j.runtime, j.procs, estimate))
    return out


def renumber_duplicates(jobs: Sequence[SimJob]) -> tuple[list[SimJob], dict[int, list[int]]]:
    """Jobs with distinct numbers: a later job reusing a number gets a new one above all of them.

    Renumbered rather than refused or dropped: an SWF job number is only a counter, and what the
    simulator replays is each line's submit time, run time and size. Two numbers alike are most
    often traces put end to end or a counter that wrapped; dropping either job would change the
    workload the figures describe, and refusing would only make the user renumber by hand. The
    caller says how many were renumbered. Returns the jobs, in the same order, and for each
    reused number the new numbers given.
    """
    seen: set[int] = set()
    top = max((j.id for j in jobs), default=0)
    given: dict[int, list[int]] = {}
    out = []
    for j in jobs:
        if j.id in seen:
            top += 1
            given.setdefault(j.id, []).append(top)
            j = SimJob(top, j.user, j.submit, j.runtime, j.procs, j.estimate)
        seen.add(j.id)
        out.append(j)
    return out, given


def simulate(jobs: Iterable[SimJob], slots: int, chain: Chain, *, half_life: float = 86400.0) -> SimResult:
    """Replay ``jobs``, whose numbers must be distinct (see renumber_duplicates)."""
    arrivals = sorted(jobs, key=lambda j: (j.submit, j.id))
    # jobs are tracked by number: two alike would silently become one (their waits mixed up)
    if len({j.id for j in arrivals}) != len(arrivals):
        reused = sorted(n for n, times in Counter(j.id for j in arrivals).items() if times > 1)
        raise ValueError(f"job numbers must be distinct, but {reused[:5]} are used more than once")
    runnable = [j for j in arrivals if j.procs <= slots]
    skipped = len(arrivals) - len(runnable)
    by_id = {j.id: j for j in runnable}
    waiting: dict[int, Group] = {}
    running: list[tuple[float, int, int]] = []  # heap of (end, job id, procs)
    running_by_user: dict[UserName, int] = {}  # tasks (jobs), as throttle counts them
    running_by_queue = {"default": 0}
    usage = DecayedUsage(policies.usage_half_life([chain]) or half_life)
    start: dict[int, float] = {}
    free = slots
    now = runnable[0].submit if runnable else 0.0
    first = now
    i = 0
    cycles = 0
    # Only a chain with a reserve policy (backfill) reads when running work will end.
    want_releases = bool(chain.reservers)
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
        releases: Sequence[tuple[float, int]] = \
            _Releases(running, start, by_id) if want_releases else ()
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
    return _metrics(runnable, start, slots, first, skipped, cycles)


class _Releases(Sequence[tuple[float, int]]):
    """When running jobs should end, built only if a reserve policy asks (most cycles it does not)."""

    def __init__(self, running: list[tuple[float, int, int]], start: dict[int, float],
                 jobs: dict[int, SimJob]) -> None:
        self._source = (running, start, jobs)
        self._items: list[tuple[float, int]] | None = None

    def _list(self) -> list[tuple[float, int]]:
        if self._items is None:
            running, start, jobs = self._source
            self._items = [(start[jid] + jobs[jid].estimate, procs) for _, jid, procs in running]
        return self._items

    def __len__(self) -> int:
        return len(self._list())

    @overload
    def __getitem__(self, i: int) -> tuple[float, int]: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[tuple[float, int]]: ...
    def __getitem__(self, i: int | slice) -> tuple[float, int] | Sequence[tuple[float, int]]:
        return self._list()[i]


def _metrics(jobs: list[SimJob], start: dict[int, float], slots: int, first: float, skipped: int,
             cycles: int) -> SimResult:
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
