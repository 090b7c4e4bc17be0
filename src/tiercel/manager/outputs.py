"""A job's outputs as the day-to-day commands read them: by pages of tasks, step by step as tasks
settle (``tiercel logs --follow``), and dropped once the job has ended (``tiercel forget``).

Nothing here holds a whole job's outputs: a page holds a few thousand tasks at most, and begins no
task once ``PAGE_BYTES`` of output are read. Following keeps no state in the manager either: each
step answers a cursor (the index up to which the job's tasks were read, and the tasks below it
that had not settled then) and hands back the next one. A step is quick and bounded: following
never holds a request open, and goes on with whichever manager answers (a standby that took over).
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from tiercel.core.model import JobId
from tiercel.core.problems import Problem
from tiercel.core.ranges import IndexRanges, Span, merge_spans
from tiercel.manager.events import JobSummary
from tiercel.manager.queries import Queries
from tiercel.manager.shell import Manager, Unavailable
from tiercel.store.base import STREAMS, AttemptRow, ForgetOutputs

PAGE_TASKS = 5_000  # the most tasks in a page
PAGE_BYTES = 4 * 1024 * 1024  # a page (or a step of following) begins no task once its outputs reach this
STEP_TASKS = 10_000  # the most tasks one step of following answers with
MAX_PENDING = 512  # spans of unsettled tasks a cursor carries; past them, a step reads no further
FORGET_TASKS = 2_000  # tasks whose outputs one write drops, so other writes go in between

FAILED = ("failed", "timeout")


def shown(rows: Sequence[AttemptRow]) -> list[AttemptRow]:
    """Of each task's attempts (rows in index order), the one that settled it, else its latest one."""
    latest: dict[int, AttemptRow] = {}
    for r in rows:
        if r.final or not (r.index in latest and latest[r.index].final):
            latest[r.index] = r
    return list(latest.values())


async def pages(queries: Queries, job: JobId, *, final: bool = False, streams: tuple[str, ...] = STREAMS,
                within: tuple[Span, ...] = ()) -> AsyncIterator[list[AttemptRow]]:
    """The job's tasks in index order, a page at a time, each as ``shown`` picks its attempt."""
    after = -1
    while rows := await queries.attempts_page(job, after, PAGE_TASKS, final, streams, within, PAGE_BYTES):
        yield shown(rows)
        after = rows[-1].index


# ---- following ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Cursor:
    """How far following has read: every task up to ``after`` was read if it had settled, and
    ``pending`` are those below it that had not (half-open spans).

    As text: ``AFTER``, or ``AFTER:SPANS`` with each span of pending tasks as its distance from the
    end of the one before (from 0 for the first) and, past one task, ``+LENGTH``: ``299:100+100,50``
    is tasks 100 to 199 and 250, below 299. Short even for hundreds of scattered tasks."""

    after: int = -1
    pending: tuple[Span, ...] = ()

    def text(self) -> str:
        parts, end = [], 0
        for start, stop in self.pending:
            parts.append(str(start - end) if stop == start + 1 else f"{start - end}+{stop - start}")
            end = stop
        return f"{self.after}:{','.join(parts)}" if parts else str(self.after)

    @staticmethod
    def parse(text: str) -> Cursor | Problem:
        """A cursor as a step of following handed it out (``text``)."""
        head, _, rest = text.strip().partition(":")
        spans: list[Span] = []
        end = 0
        try:
            after = int(head)
            for part in filter(None, rest.split(",")):
                gap, plus, length = part.partition("+")
                start = end + int(gap)
                end = start + (int(length) if plus else 1)
                if int(gap) < 0 or end <= start or end > 2**31:
                    raise ValueError(part)
                spans.append((start, end))
        except ValueError:
            return Problem("cursor", text, "must be what the last step of following answered (X-Tiercel-Cursor), "
                                           "or -1 to start")
        if not -1 <= after < 2**31:
            return Problem("cursor", text, "must start with an index from -1 to 2147483647")
        if len(spans) > 2 * MAX_PENDING:
            return Problem("cursor", text, f"holds more than {2 * MAX_PENDING} spans of tasks; start again from -1")
        return Cursor(after, merge_spans(spans))


@dataclass(frozen=True, slots=True)
class Step:
    rows: list[AttemptRow]  # the tasks that settled since the cursor, in index order
    cursor: Cursor  # where the next step starts
    more: bool  # it stopped at its bounds: the next step has more to read at once


def _missing(spans: Sequence[Span], low: int, high: int, found: Sequence[int]) -> list[Span]:
    """The indexes of ``spans`` in [low, high) that are not in ``found`` (sorted), as spans."""
    out: list[Span] = []
    k = max(0, bisect.bisect_right(spans, (low, 2**62)) - 1)
    f = bisect.bisect_left(found, low)
    for start, stop in spans[k:]:
        start, stop = max(start, low), min(stop, high)
        if start >= high:
            break
        while start < stop:
            while f < len(found) and found[f] < start:
                f += 1
            if f < len(found) and found[f] < stop:
                if found[f] > start:
                    out.append((start, found[f]))
                start = found[f] + 1
            else:
                out.append((start, stop))
                break
    return out


async def follow_step(queries: Queries, job: JobId, tasks: IndexRanges, cursor: Cursor, *, ended: bool,
                      streams: tuple[str, ...] = STREAMS) -> Step:
    """The tasks of ``tasks`` that settled since ``cursor``: first those it left pending, then the
    next ones past it, within PAGE_BYTES and STEP_TASKS. ``ended``: the job had ended before this
    step began, so a task that has not settled by now never will."""
    rows: list[AttemptRow] = []
    size = 0

    def take(page: list[AttemptRow]) -> list[int]:
        nonlocal size
        settled = shown(page)
        rows.extend(settled)
        size += sum(len(r.stdout) + len(r.stderr) for r in settled)
        return [r.index for r in settled]

    def full() -> bool:
        return size >= PAGE_BYTES or len(rows) >= STEP_TASKS

    # The tasks the cursor left pending, in index order, as far as the bounds allow.
    pending = list(cursor.pending)
    read_to = -1
    while pending and not full():
        page = await queries.attempts_page(job, read_to, min(PAGE_TASKS, STEP_TASKS - len(rows)), True, streams,
                                           tuple(pending), PAGE_BYTES - size)
        if not page:
            break
        pending = _missing(pending, 0, 2**31, take(page))
        read_to = page[-1].index
    if full():
        return Step(rows, Cursor(cursor.after, tuple(pending)), True)
    if ended:
        pending = []  # what had not settled when the job ended never will
    # Then the tasks past the cursor, while the cursor stays short.
    after = cursor.after
    while not full() and len(pending) < MAX_PENDING:
        within = _within(tasks, after)
        if not within:
            break
        page = await queries.attempts_page(job, after, min(PAGE_TASKS, STEP_TASKS - len(rows)), True, streams,
                                           within, PAGE_BYTES - size)
        if page:
            last = page[-1].index
        elif within[-1] != tasks.spans[-1]:
            last = within[-1][1] - 1  # none of these spans' tasks has settled yet: on past them
        else:
            break
        found = take(page)
        if not ended:
            pending = list(merge_spans([*pending, *_missing(tasks.spans, after + 1, last + 1, found)]))
        after = last
        if len(pending) > MAX_PENDING:  # read no further than the cursor's last pending span
            cut = pending[MAX_PENDING][0]
            rows[:] = [r for r in rows if r.index < cut]
            size = sum(len(r.stdout) + len(r.stderr) for r in rows)
            pending, after = pending[:MAX_PENDING], cut - 1
            break
    rows.sort(key=lambda r: r.index)
    return Step(rows, Cursor(after, tuple(pending)), full())


def _within(tasks: IndexRanges, after: int) -> tuple[Span, ...]:
    """The spans of ``tasks`` from ``after`` on, a few at a time: what the next read past it may name."""
    k = max(0, bisect.bisect_right(tasks.spans, (after + 1, 2**62)) - 1)
    return tasks.spans[k:k + MAX_PENDING]


# ---- dropping outputs -------------------------------------------------------------------


def index_chunks(indexes: IndexRanges, n: int) -> list[Span]:
    """Half-open bounds that cut ``indexes`` into runs of at most ``n`` of its indexes, in order."""
    out: list[Span] = []
    start: int | None = None
    count = 0
    for a, b in indexes.spans:
        while a < b:
            if start is None:
                start = a
            take = min(b - a, n - count)
            a += take
            count += take
            if count == n:
                out.append((start, a))
                start, count = None, 0
    if start is not None:
        out.append((start, indexes.spans[-1][1]))
    return out


async def forget(manager: Manager, summary: JobSummary) -> tuple[int, int]:
    """Drop the outputs of an ended job's attempts, a few thousand tasks per write; their rows and the
    job's counts stay. Answers how many attempt rows held an output and their bytes as stored."""
    rows, size = await asyncio.to_thread(manager.store.outputs_size, summary.id)
    if not rows:
        return 0, 0
    now = manager.clock()
    for start, stop in index_chunks(summary.spec.indexes, FORGET_TASKS):
        try:
            await asyncio.wrap_future(manager.store.write([ForgetOutputs(summary.id, start, stop, now)]))
        except Exception as exc:
            raise Unavailable(f"the manager could not drop the outputs of job {summary.id} ({exc}); those of "
                              f"tasks {start} and over are kept: try again") from exc
    return rows, size
