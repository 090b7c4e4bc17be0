"""The values a job request holds as text: durations, memory sizes, points in time, output file patterns.

Plain functions from text (or a number) to a number or a Problem, with no pydantic in them, so
the sites' configuration can read a walltime or a memory size the way a job request does without
loading the request model, and workers and native sites fill in output file patterns the same way.
"""

from __future__ import annotations

import datetime
import math
import re
import string

from tiercel.core.problems import Problem

_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s?)?$")


def parse_duration(value: str | float | int) -> float | Problem:
    """``90``, ``"90s"``, ``"10m"``, ``"1h30m"``, ``"2d"`` or ``"01:30:00"`` → seconds."""
    if isinstance(value, bool):
        return Problem("walltime", value, "must be a duration such as 90s, 10m, 1h30m or 01:30:00")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        text = value.strip()
        # isascii: str.isdigit() also holds for digits int() cannot read, such as "²"
        if text.count(":") in (1, 2) and all(p.isascii() and p.isdigit() for p in text.split(":")):
            parts = [int(p) for p in text.split(":")]
            seconds = float(sum(p * 60**i for i, p in enumerate(reversed(parts))))
        else:
            m = _DURATION.fullmatch(text)
            if not text or m is None:
                return Problem("walltime", value, "must be a duration such as 90s, 10m, 1h30m or 01:30:00")
            d, h, mi, s = m.groups()
            seconds = int(d or 0) * 86400 + int(h or 0) * 3600 + int(mi or 0) * 60 + float(s or 0)
    if not 0 < seconds <= 365 * 86400:
        return Problem("walltime", value, "must be more than 0 seconds and at most 365 days")
    return seconds


def parse_when(text: str, now: float, field: str) -> float | Problem:
    """``now``, ``+10m`` (from now), ``2026-11-21T10:00`` (local time unless it says otherwise) or epoch seconds."""
    text = text.strip()
    if text == "now":
        return now
    if text.startswith("+"):
        d = parse_duration(text[1:])
        return Problem(field, text, "must be now, +DURATION (+10m, +2h) or a date and time such as "
                                    "2026-11-21T10:00") if isinstance(d, Problem) else now + d
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(value) or abs(value) > 1e11:
            return Problem(field, text, "must be a time: now, +DURATION or a date and time such as 2026-11-21T10:00")
        return value
    try:
        when = datetime.datetime.fromisoformat(text)
    except ValueError:
        return Problem(field, text, "must be now, +DURATION (+10m, +2h) or a date and time such as 2026-11-21T10:00")
    if when.tzinfo is None:
        when = when.astimezone()
    return when.timestamp()


def parse_memory(value: str | int) -> int | Problem:
    """``512`` (MB), ``"512M"``, ``"4G"`` → megabytes."""
    if isinstance(value, bool):
        return Problem("memory", value, "must be a size such as 512M or 4G")
    if isinstance(value, int):
        mb = value
    else:
        m = re.match(r"^\s*(\d+)\s*([MmGgTt]?)[Bb]?\s*$", value)
        if m is None:
            return Problem("memory", value, "must be a size such as 512M or 4G")
        mb = int(m.group(1)) * {"": 1, "m": 1, "g": 1024, "t": 1024 * 1024}[m.group(2).lower()]
    if not 0 <= mb <= 64 * 1024 * 1024:
        return Problem("memory", value, "must be between 0 and 64T")
    return mb


# ---- output file patterns (--stdout, --stderr) ---------------------------------

PLACEHOLDERS = ("index", "job")
_PAD = re.compile(r"0[1-9][0-9]?d?")  # {index:05} or {index:05d}: zero-padded to 5 digits
OutputParts = list[tuple[str, str | None, int]]  # (literal text, then a placeholder or None, its padded width)


def output_parts(pattern: str) -> OutputParts | str:
    """A file pattern's parts, or what is wrong with it."""
    parts: OutputParts = []
    try:
        parsed = list(string.Formatter().parse(pattern))
    except ValueError:
        return "must be a file path with placeholders {index} and {job} (write {{ and }} for a brace)"
    for text, name, spec, conversion in parsed:
        if name is None:
            parts.append((text, None, 0))
            continue
        if name not in PLACEHOLDERS:
            return f"has an unknown placeholder {{{name}}}: the placeholders are {{index}} and {{job}}"
        if conversion is not None or (spec and not _PAD.fullmatch(spec)):
            return f"has {{{name}{'!' + conversion if conversion else ''}{':' + spec if spec else ''}}}: " \
                   f"a placeholder is {{{name}}}, or zero-padded {{{name}:05}}"
        parts.append((text, name, int(spec.rstrip("d")) if spec else 0))
    return parts


def fill_output(parts: OutputParts, job: int, index: int) -> str:
    """The path of one task's file: the placeholders of a checked pattern filled in."""
    out = []
    for text, name, width in parts:
        out.append(text)
        if name is not None:
            value = index if name == "index" else job
            out.append(f"{value:0{width}d}" if width else str(value))
    return "".join(out)


def per_task(parts: OutputParts) -> bool:
    """A file per task (the pattern has {index}); else one per job, each task's output appended to it."""
    return any(name == "index" for _, name, _ in parts)


def check_output(field: str, pattern: str) -> Problem | None:
    """A stdout or stderr file pattern: a file path, relative to the task's directory unless absolute
    (or under ~), that does not leave that directory with '..'."""
    parts = output_parts(pattern)
    if isinstance(parts, str):
        return Problem(field, pattern, parts)
    path = fill_output(parts, 1, 0)
    names = path.split("/")
    if not path.strip() or names[-1] in ("", ".", ".."):
        return Problem(field, pattern, "must name a file, such as out/{index}.txt or job.log")
    if not path.startswith(("/", "~")) and ".." in names:
        return Problem(field, pattern, "must stay under the task's directory (no '..'): "
                                       "write an absolute path to put it elsewhere")
    return None
