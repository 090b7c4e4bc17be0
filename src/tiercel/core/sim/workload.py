"""The jobs a simulation replays, and the walltime estimates backfill sees for them."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SimJob:
    id: int
    user: str
    submit: float
    runtime: float
    procs: int
    estimate: float


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
