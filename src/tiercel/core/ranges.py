"""Compact sets of task indexes.

A job array is described by ranges ("0-99,200-299") and kept as ranges for its
whole life, so a 1,000,000-task array costs a few integers until its tasks run.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from tiercel.core.problems import Problem

Span = tuple[int, int]  # half-open [start, stop)

RANGE_EXAMPLE = "e.g. 0-99,200-299 or 0-999:10"


@dataclass(frozen=True, slots=True)
class IndexRanges:
    """An immutable, sorted, non-overlapping set of indexes stored as spans."""

    spans: tuple[Span, ...]

    @staticmethod
    def of_size(n: int) -> IndexRanges:
        return IndexRanges(((0, n),) if n > 0 else ())

    def __len__(self) -> int:
        return sum(stop - start for start, stop in self.spans)

    def __iter__(self) -> Iterator[int]:
        for start, stop in self.spans:
            yield from range(start, stop)

    def __contains__(self, index: object) -> bool:
        if not isinstance(index, int):
            return False
        pos = bisect.bisect_right(self.spans, (index, float("inf"))) - 1
        return pos >= 0 and self.spans[pos][0] <= index < self.spans[pos][1]

    def text(self) -> str:
        parts = []
        for start, stop in self.spans:
            parts.append(str(start) if stop == start + 1 else f"{start}-{stop - 1}")
        return ",".join(parts)


def merge_spans(spans: Iterable[Span]) -> tuple[Span, ...]:
    out: list[list[int]] = []
    for start, stop in sorted(s for s in spans if s[1] > s[0]):
        if out and start <= out[-1][1]:
            out[-1][1] = max(out[-1][1], stop)
        else:
            out.append([start, stop])
    return tuple((a, b) for a, b in out)


def parse_ranges(text: str, *, max_size: int, max_index: int) -> IndexRanges | Problem:
    """Parse ``"0-99,200-299"`` (also ``"7"`` and ``"0-99:2"``) into ranges.

    Returns a Problem naming the offending part when the text is not valid.
    """
    spans: list[Span] = []
    if not text.strip():
        return Problem("array", text, f"must list at least one index ({RANGE_EXAMPLE})")
    for part in text.split(","):
        part = part.strip()
        step = 1
        body = part
        if ":" in part:
            body, _, step_text = part.partition(":")
            if not _digits(step_text) or int(step_text) < 1:
                return Problem("array", part, f"step must be a positive whole number ({RANGE_EXAMPLE})")
            step = int(step_text)
        lo_text, dash, hi_text = body.partition("-")
        if not _digits(lo_text) or (dash and not _digits(hi_text)):
            return Problem("array", part, f"is not an index or a range of indexes ({RANGE_EXAMPLE})")
        lo = int(lo_text)
        hi = int(hi_text) if dash else lo
        if hi < lo:
            return Problem("array", part, f"range ends before it starts ({RANGE_EXAMPLE})")
        if hi > max_index:
            return Problem("array", part, f"indexes must not exceed {max_index}")
        if step == 1:
            spans.append((lo, hi + 1))
        else:
            if (hi - lo) // step + 1 > max_size:
                return Problem("array", text, f"has more than {max_size} tasks")
            spans.extend((i, i + 1) for i in range(lo, hi + 1, step))
    ranges = IndexRanges(merge_spans(spans))
    if len(ranges) > max_size:
        return Problem("array", text, f"has {len(ranges)} tasks; at most {max_size} are allowed")
    return ranges


class RangeQueue:
    """A mutable set of indexes, taken from the front in order.

    Holds spans in a list with a head pointer so taking from the front is O(1)
    amortised; removing one index from the middle (a task reclaimed by a worker
    after a manager restart) splits a span in O(log n + moves).
    """

    __slots__ = ("_head", "_size", "_spans")

    def __init__(self, spans: Iterable[Span] = ()) -> None:
        self._spans: list[list[int]] = [[a, b] for a, b in merge_spans(spans)]
        self._head = 0
        self._size = sum(b - a for a, b in self._spans)

    def __len__(self) -> int:
        return self._size

    def __bool__(self) -> bool:
        return self._size > 0

    def take(self, n: int) -> list[int]:
        """Remove and return up to ``n`` of the lowest indexes."""
        out: list[int] = []
        spans = self._spans
        while n > 0 and self._head < len(spans):
            span = spans[self._head]
            k = min(n, span[1] - span[0])
            out.extend(range(span[0], span[0] + k))
            span[0] += k
            n -= k
            if span[0] >= span[1]:
                self._head += 1
        self._size -= len(out)
        if self._head > 64 and self._head * 2 > len(spans):
            del spans[: self._head]
            self._head = 0
        return out

    def _find(self, index: int) -> int:
        lo = bisect.bisect_right(self._spans, [index, float("inf")], lo=self._head) - 1
        if lo >= self._head and self._spans[lo][0] <= index < self._spans[lo][1]:
            return lo
        return -1

    def __contains__(self, index: object) -> bool:
        return isinstance(index, int) and self._find(index) >= 0

    def discard(self, index: int) -> bool:
        """Remove one index if present; return whether it was there."""
        pos = self._find(index)
        if pos < 0:
            return False
        start, stop = self._spans[pos]
        pieces = [p for p in ([start, index], [index + 1, stop]) if p[1] > p[0]]
        self._spans[pos : pos + 1] = pieces
        self._size -= 1
        return True

    def clear(self) -> None:
        self._spans = []
        self._head = 0
        self._size = 0

    def spans(self) -> list[Span]:
        return [(a, b) for a, b in self._spans[self._head :] if b > a]


def _digits(text: str) -> bool:
    """ASCII digits only: str.isdigit() also holds for digits int() cannot read, such as "²"."""
    return text.isascii() and text.isdigit()
