"""What both stores select for the day-to-day views, written once for either's parameter mark.

`history` (ended jobs, the last ended first) is one query on an index of its own: (owner, ended, id)
for one user's jobs, (state, ended, id) for one state, (ended, id) for everyone's. A page of
attempts reads the primary key (job, idx, ...) from an index on.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tiercel.core.model import JobId, JobState, UserName
from tiercel.core.ranges import merge_spans
from tiercel.store.base import AttemptRow
from tiercel.store.rows import unpack_output


def history_where(owner: UserName | None, since: float | None, states: tuple[JobState, ...],
                  mark: str) -> tuple[str, list[object]]:
    """The WHERE clause (in the store's parameter ``mark``) and its arguments: ended jobs of ``owner``
    (everyone's when None), in ``states`` (any when empty), that ended at ``since`` or later."""
    where, args = ["ended IS NOT NULL"], list[object]()
    if owner is not None:
        where.append(f"owner = {mark}")
        args.append(owner)
    if states:
        where.append(f"state IN ({', '.join([mark] * len(states))})")
        args.extend(s.value for s in states)
    if since is not None:
        where.append(f"ended >= {mark}")
        args.append(since)
    return " AND ".join(where), args


def page_where(job: int, after: int, before: int | None, final_only: bool, mark: str) -> tuple[str, list[object]]:
    """The WHERE clause of one read of `attempts_page` and its arguments: the job's attempts with an
    index above ``after`` (and below ``before``), final ones only with ``final_only``."""
    where, args = f"job = {mark} AND idx > {mark}", list[object]([job, after])
    if before is not None:
        where += f" AND idx < {mark}"
        args.append(before)
    if final_only:
        where += " AND final = TRUE"  # SQLite's TRUE is its 1
    return where, args


def page_bounds(after: int, within: tuple[tuple[int, int], ...]) -> list[tuple[int, int | None]]:
    """The reads of `attempts_page`, in index order: (above, below) bounds for each span of ``within``
    past ``after`` (an OR of spans would make the databases scan every attempt of the job), or one
    read of everything past ``after``."""
    if not within:
        return [(after, None)]
    return [(max(after, start - 1), stop) for start, stop in merge_spans(within) if stop > after + 1]


class Page:
    """The rows of one `attempts_page` as the database hands them over: whole tasks, at most ``limit``,
    and none begun once ``max_bytes`` of outputs are read (the task that passes it is read whole), so
    a page never holds more than that and one task's outputs, however large they were stored."""

    def __init__(self, limit: int, max_bytes: int | None) -> None:
        self.limit, self.max_bytes = limit, max_bytes
        self.rows: list[AttemptRow] = []
        self.size = 0
        self.tasks = 0

    @property
    def full(self) -> bool:
        return self.tasks >= self.limit or (self.max_bytes is not None and self.size >= self.max_bytes)

    def take(self, rows: Iterable[tuple[Any, ...]]) -> None:
        """Read rows (job, idx, attempt, ..., stdout, stderr as stored) until a task past the bounds begins."""
        for j, i, a, o, f, w, x, s, e, out, err in rows:
            if not self.rows or self.rows[-1].index != i:
                if self.full:
                    return
                self.tasks += 1
            row = AttemptRow(JobId(j), i, a, o, bool(f), w, x, s, e, unpack_output(out), unpack_output(err))
            self.size += len(row.stdout) + len(row.stderr)
            self.rows.append(row)
