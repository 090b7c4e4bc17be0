"""The Standard Workload Format of the Parallel Workloads Archive, one line at a time.

Fields (1-based, whitespace separated, -1 = unknown): 1 job number, 2 submit time,
3 wait, 4 run time, 5 allocated processors, 8 requested processors, 9 requested
time, 11 status, 12 user, 15 queue, 16 partition. Lines starting with ``;`` are
header comments. A job that cannot be replayed (no run time, no processors, a negative
submit time) comes back as ``Skipped`` with the reason, so the caller can say how many.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tiercel.core.problems import Problem

FIELDS = 18

# Why a recorded job is not replayed, by a key for scripts. A run time of -1 is SWF's
# "unknown", most often a job cancelled before it started; processors likewise.
SKIP_REASONS = {
    "run_time": "no run time (-1: not recorded, or cancelled before it ran)",
    "processors": "no processors (allocated and requested both below 1)",
    "submit_time": "a negative submit time",
}


@dataclass(frozen=True, slots=True)
class SwfJob:
    id: int
    submit: float
    runtime: float
    procs: int
    requested_time: float | None
    user: str
    queue: str


@dataclass(frozen=True, slots=True)
class Skipped:
    """A well-formed line whose job cannot be replayed, and why (a key of SKIP_REASONS)."""

    reason: str


def parse_line(line: str, lineno: int) -> SwfJob | Skipped | Problem | None:
    """A job, Skipped for a job that cannot be replayed, a Problem, or None for a comment or blank line."""
    text = line.strip()
    if not text or text.startswith(";"):
        return None
    parts = text.split()
    if len(parts) < FIELDS:
        return Problem(f"line {lineno}", text[:60], f"has {len(parts)} fields; SWF lines have {FIELDS}")
    try:
        values = [float(p) for p in parts[:FIELDS]]
    except ValueError:
        bad = next(p for p in parts[:FIELDS] if not _is_number(p))
        return Problem(f"line {lineno}", bad, "is not a number (SWF fields are numbers, -1 when unknown)")
    if not all(math.isfinite(v) for v in values):
        bad = next(p for p, v in zip(parts, values, strict=False) if not math.isfinite(v))
        return Problem(f"line {lineno}", bad, "is not a finite number (SWF fields are numbers, -1 when unknown)")
    job, submit, _, runtime, allocated, _, _, requested = values[:8]
    requested_time = values[8]
    procs = int(allocated if allocated > 0 else requested)
    if runtime < 0:
        return Skipped("run_time")
    if procs <= 0:
        return Skipped("processors")
    if submit < 0:
        return Skipped("submit_time")
    return SwfJob(
        id=int(job), submit=submit, runtime=runtime, procs=procs,
        requested_time=requested_time if requested_time > 0 else None,
        user=str(int(values[11])), queue=str(int(values[14])),
    )


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
