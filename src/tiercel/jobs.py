"""The job request: what every interface (CLI, job files, REST, chat) submits.

One pydantic model validates the request's shape and the core's parsers give
the meaning; any error becomes a Problem naming the field, the value and what
is allowed, so the CLI, the API and the chat gateway all say the same thing.
"""

from __future__ import annotations

import datetime
import math
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tiercel.core.model import JobSpec
from tiercel.core.problems import MISSING, Problem
from tiercel.core.ranges import IndexRanges, parse_ranges

MAX_TASKS = 100_000_000
MAX_INDEX = 2**31 - 1
MAX_COMMAND_BYTES = 64 * 1024

_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s?)?$")
_TAG = re.compile(r"^[A-Za-z0-9_.:+-]{1,64}$")


def parse_duration(value: str | float | int) -> float | Problem:
    """``90``, ``"90s"``, ``"10m"``, ``"1h30m"``, ``"2d"`` or ``"01:30:00"`` → seconds."""
    if isinstance(value, bool):
        return Problem("walltime", value, "must be a duration such as 90s, 10m, 1h30m or 01:30:00")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        text = value.strip()
        if text.count(":") in (1, 2) and all(p.isdigit() for p in text.split(":")):
            parts = [int(p) for p in text.split(":")]
            seconds = float(sum(p * 60**i for i, p in enumerate(reversed(parts))))
        else:
            m = _DURATION.match(text)
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


class JobRequest(BaseModel):
    """A job as submitted. Unknown fields are refused, not ignored."""

    model_config = ConfigDict(extra="forbid", str_max_length=MAX_COMMAND_BYTES)

    command: list[str] | str = Field(description="argv list, or a shell command line")
    queue: int | None = Field(None, description="Kestrel's array size: run indexes 0..queue-1")
    array: str | None = Field(None, description="index ranges, e.g. 0-99,200-299 or 0-999:10")
    name: str = Field("", max_length=200)
    requires: list[str] = Field(default_factory=list, description="tags a worker must have")
    cleanup: str | None = Field(None, description="run once on each worker that ran tasks, after the job ends")
    retries: int = Field(0, ge=0, le=100)
    walltime: str | float | None = Field(None, description="per task: 90s, 10m, 1h30m or 01:30:00")
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None
    shell: bool | None = Field(None, description="run command with /bin/sh -c (default: when it is a string)")
    append_index: bool = Field(True, description="append the task index as the command's last argument")
    cpus: int = Field(1, ge=1, le=4096)
    memory: str | int = Field(0, description="per task: 512M, 4G (MB when a number)")
    priority: int = Field(0, ge=-1000, le=1000)
    queue_name: str | None = Field(None, max_length=64, description="the queue (default: the manager's default)")
    reservation: str | None = Field(None, max_length=64, description="run inside this advance reservation")
    site: str | None = Field(None, max_length=64, description="run on this site (default: the scheduler chooses)")

    @field_validator("requires", mode="before")
    @classmethod
    def _split_tags(cls, v: Any) -> Any:
        if isinstance(v, str):
            return [t for t in re.split(r"[,\s]+", v) if t]
        return v


def problem_from_validation(exc: ValidationError) -> Problem:
    """The first error of a pydantic validation, as a one-line Problem."""
    err = exc.errors()[0]
    loc = [str(p) for p in err.get("loc", ()) if not str(p).startswith(("list[", "str", "int", "float"))]
    field = ".".join(loc) or "job"
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        allowed = ", ".join(JobRequest.model_fields)
        return Problem(field, err.get("input"), f"is not a known field (known fields: {allowed})")
    if kind == "missing":
        return Problem(field, MISSING, "is required")
    msg = str(err.get("msg", "is not valid"))
    return Problem(field, err.get("input"), "is not allowed: " + msg[0].lower() + msg[1:])


def build_spec(req: JobRequest, *, max_tasks: int = MAX_TASKS) -> JobSpec | Problem:
    """Turn a validated request into the core's JobSpec, or say what is wrong."""
    if isinstance(req.command, str):
        if not req.command.strip():
            return Problem("command", req.command, "must not be empty")
        command: tuple[str, ...] = (req.command,)
        shell = True if req.shell is None else req.shell
        if not shell:
            command = tuple(req.command.split())
    else:
        if not req.command or not req.command[0]:
            return Problem("command", req.command, "must name a program to run")
        shell = bool(req.shell)
        command = (" ".join(req.command),) if shell else tuple(req.command)
    if any("\0" in part for part in command):
        return Problem("command", req.command, "must not contain NUL characters")

    if req.queue is not None and req.array is not None:
        return Problem("queue", req.queue, "cannot be given together with array (choose one)")
    indexes: IndexRanges | Problem
    if req.array is not None:
        indexes = parse_ranges(req.array, max_size=max_tasks, max_index=MAX_INDEX)
    elif req.queue is not None:
        if not 1 <= req.queue <= max_tasks:
            return Problem("queue", req.queue, f"must be between 1 and {max_tasks}")
        indexes = IndexRanges.of_size(req.queue)
    else:
        indexes = IndexRanges.of_size(1)
    if isinstance(indexes, Problem):
        return indexes

    for tag in req.requires:
        if not _TAG.match(tag):
            return Problem("requires", tag, "must be a tag of letters, digits and . _ : + - (at most 64)")
    walltime = None
    if req.walltime is not None:
        w = parse_duration(req.walltime)
        if isinstance(w, Problem):
            return w
        walltime = w
    memory = parse_memory(req.memory)
    if isinstance(memory, Problem):
        return memory
    for key, value in req.env.items():
        if not key or "=" in key or "\0" in key:
            return Problem("env", key, "must be a variable name without '=' or NUL")
        if "\0" in value:
            return Problem(f"env.{key}", value, "must not contain NUL characters")
    if req.cwd is not None and (not req.cwd or "\0" in req.cwd):
        return Problem("cwd", req.cwd, "must be a directory path without NUL characters")
    if req.cleanup is not None and not req.cleanup.strip():
        return Problem("cleanup", req.cleanup, "must not be empty when given")

    return JobSpec(
        command=command,
        indexes=indexes,
        shell=shell,
        name=req.name,
        requires=frozenset(req.requires),
        cleanup=req.cleanup,
        retries=req.retries,
        walltime=walltime,
        env=tuple(sorted(req.env.items())),
        cwd=req.cwd,
        append_index=req.append_index,
        cpus=req.cpus,
        memory_mb=memory,
        priority=req.priority,
        queue=req.queue_name or "",
        reservation=req.reservation,
        site=req.site or None,
    )


def spec_from_mapping(data: dict[str, Any], *, max_tasks: int = MAX_TASKS) -> JobSpec | Problem:
    """Validate a plain mapping (JSON body, job file, chat message) into a JobSpec."""
    try:
        req = JobRequest.model_validate(data)
    except ValidationError as exc:
        return problem_from_validation(exc)
    return build_spec(req, max_tasks=max_tasks)
