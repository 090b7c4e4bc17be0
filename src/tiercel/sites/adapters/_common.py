"""Helpers shared by the adapters: request checks, time units, index ranges.

Everything here is pure. The checks exist because every adapter writes the
request's fields into a script header or a submit description, one per line:
a newline in a name, a queue or a directive would smuggle an extra line (an
extra directive, or a command run ahead of the user's script) into it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping

from tiercel.sites.adapters.base import ArrayRequest, NativeState, ParseError

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
_WORD = re.compile(r"[^\s]+")  # no whitespace of any kind, so no line breaks either


def check_request(req: ArrayRequest, *, reservations: bool = False) -> None:
    """Refuse a request the adapter cannot write safely or fully; the message names the field."""
    if req.reservation is not None:
        if not reservations:
            raise ValueError(f"reservation: {req.reservation!r} cannot be kept: only Slurm sites submit into "
                             "a mirrored reservation")
        if not _NAME.fullmatch(req.reservation):
            raise ValueError(f"reservation: {req.reservation!r} must be letters, digits, '-', '_' or '.'")
    if not _NAME.fullmatch(req.name):
        raise ValueError(
            f"name: {req.name!r} is not allowed; use 1-200 letters, digits, '-', '_' or '.', "
            "starting with a letter or digit"
        )
    if req.count < 1:
        raise ValueError(f"count: {req.count} is not allowed; an array has at least 1 element")
    if not req.workdir.startswith("/") or not _WORD.fullmatch(req.workdir):
        raise ValueError(f"workdir: {req.workdir!r} must be an absolute path without spaces or line breaks")
    if req.walltime is not None and not (math.isfinite(req.walltime) and req.walltime > 0):
        raise ValueError(f"walltime: {req.walltime!r} must be a positive number of seconds")
    if req.cpus < 1:
        raise ValueError(f"cpus: {req.cpus} must be at least 1")
    if req.memory_mb < 0:
        raise ValueError(f"memory_mb: {req.memory_mb} must be 0 (the system's default) or more")
    if req.throttle is not None and req.throttle < 1:
        raise ValueError(f"throttle: {req.throttle} must be at least 1")
    for field, value in (("queue", req.queue), ("account", req.account)):
        if value is not None and not _WORD.fullmatch(value):
            raise ValueError(f"{field}: {value!r} must be one word without spaces or line breaks")
    for i, line in enumerate(req.directives):
        if "\n" in line or "\r" in line:
            raise ValueError(f"directives[{i}]: {line!r} must not contain a line break")


def minutes(seconds: float) -> int:
    """Whole minutes, rounded up, at least 1 (Slurm's --time and LSF's -W take minutes)."""
    return max(1, math.ceil(seconds / 60))


def hms(seconds: float) -> str:
    """H:MM:SS, rounded up to the second (SGE's h_rt, PBS's walltime)."""
    total = max(1, math.ceil(seconds))
    return f"{total // 3600}:{total % 3600 // 60:02d}:{total % 60:02d}"


def runs(elements: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted, de-duplicated elements as contiguous runs: [1, 2, 3, 7] -> [(1, 3), (7, 7)]."""
    out: list[tuple[int, int]] = []
    for e in sorted(set(elements)):
        if e < 1:
            raise ValueError(f"elements: {e} is not an element number (they start at 1)")
        if out and out[-1][1] == e - 1:
            out[-1] = (out[-1][0], e)
        else:
            out.append((e, e))
    return out


_RANGE = re.compile(r"(\d+)(?:-(\d+)(?::(\d+))?)?")


def expand(spec: str, text: str) -> list[int]:
    """Indexes of a range list as batch systems print them: "3", "3-10", "1-9:2", "1-2,4-5".

    A trailing throttle ("%2", as in Slurm's "[3-10%2]") is ignored. ``text`` is the
    whole output, carried by the ParseError when ``spec`` is not a range list.
    """
    spec = spec.split("%", 1)[0]
    out: list[int] = []
    for part in spec.split(","):
        m = _RANGE.fullmatch(part.strip())
        if m is None:
            raise ParseError(f"not an index range: {spec!r}", text)
        first = int(m.group(1))
        last = int(m.group(2) or first)
        step = int(m.group(3) or 1)
        if last < first or step < 1:
            raise ParseError(f"not an index range: {spec!r}", text)
        out.extend(range(first, last + 1, step))
    return out


def lookup(table: Mapping[str, NativeState], code: str) -> NativeState:
    """The state for a well-formed code; a code the table does not know reads as PENDING.

    PENDING claims the least: the system still holds the element and it is not
    finished. Whether it ran is told by its result file, never by this guess, and
    the code itself is kept in the row's ``reason`` for the logs.
    """
    return table.get(code, NativeState.PENDING)
