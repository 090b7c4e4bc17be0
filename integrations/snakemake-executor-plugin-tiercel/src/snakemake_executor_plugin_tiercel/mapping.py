"""What a Snakemake job becomes in Tiercel, and what a Tiercel job's end means to Snakemake.

Pure functions, without Snakemake or a manager: the fields of the job request made from a job's
threads and resources, the verdict on a job's state, and the words of a failure.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

REQUIRES_RESOURCE = "tiercel_requires"
MAX_NAME = 200  # the manager refuses longer job names
MAX_CPUS = 4096
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # refused in a job's name (wildcards may hold anything)

ENDED = ("done", "failed", "cancelled")


class JobLike(Protocol):
    """The part of a Snakemake job (a single job or a group) that the request is made from."""

    @property
    def threads(self) -> int: ...

    @property
    def resources(self) -> Mapping[str, Any]: ...


def split_tags(value: object) -> list[str]:
    """Tags given as ``"gpu,bio"`` or ``"gpu bio"`` (or a list of them); nothing for None or ""."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in split_tags(v)]
    return [t for t in re.split(r"[,\s]+", str(value)) if t]


def _number(value: object) -> float | None:
    """A positive number, or None (bools, text and Snakemake's unset resources are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if value > 0 and math.isfinite(value) else None


def job_fields(job: JobLike, *, name: str, cwd: str | None = None, env: Mapping[str, str] | None = None,
               queue: str | None = None, requires: Iterable[str] = ()) -> dict[str, Any]:
    """The fields of the one-task Tiercel job that runs ``job`` (the command is added by the caller).

    threads → cpus, mem_mb → memory (MB), runtime (minutes) → walltime (seconds), the
    ``tiercel_requires`` resource → tags a worker must have, added to ``requires``.
    """
    resources = job.resources
    cpus = _number(job.threads)
    fields: dict[str, Any] = {
        "name": _CONTROL.sub("?", name)[:MAX_NAME],
        "append_index": False,
        "cpus": min(MAX_CPUS, max(1, math.ceil(cpus))) if cpus is not None else 1,
    }
    memory = _number(resources.get("mem_mb"))
    if memory is not None:
        fields["memory"] = math.ceil(memory)
    runtime = _number(resources.get("runtime"))
    if runtime is not None:
        fields["walltime"] = runtime * 60
    tags = list(dict.fromkeys([*requires, *split_tags(resources.get(REQUIRES_RESOURCE))]))
    if tags:
        fields["requires"] = tags
    if queue:
        fields["queue_name"] = queue
    if cwd:
        fields["cwd"] = cwd
    if env:
        fields["env"] = dict(env)
    return fields


def verdict(row: Mapping[str, Any] | None) -> str | None:
    """``done``, ``failed`` or ``cancelled`` once the job (a row of ``GET /v1/jobs``) has ended, else None."""
    if row is None:
        return None
    state = str(row.get("state", ""))
    return state if state in ENDED else None


def tail(text: str, lines: int) -> str:
    """The last ``lines`` lines of ``text`` (all of it for 0 or less), without trailing blank lines."""
    kept = text.rstrip().splitlines()
    if lines > 0 and len(kept) > lines:
        kept = [f"[... {len(kept) - lines} earlier lines]", *kept[-lines:]]
    return "\n".join(kept)


def failure_message(job_id: int, row: Mapping[str, Any], attempts: Sequence[Mapping[str, Any]],
                    stderr: str | None, *, lines: int = 40) -> str:
    """Why Tiercel job ``job_id`` did not succeed: its state, how its task ended (outcome, exit code,
    attempt), and the end of the task's stderr."""
    state = str(row.get("state", "failed"))
    head = f"Tiercel job {job_id} {state}"
    if row.get("reason"):
        head += f" ({row['reason']})"
    parts = [head + "."]
    if not attempts:
        parts.append("Its task never ran.")
    for attempt in attempts:
        code = attempt.get("exit_code")
        exit_text = f"exit code {code}" if code is not None else "no exit code"
        parts.append(f"Task {attempt.get('index', 0)}: {attempt.get('outcome', '?')}, {exit_text} "
                     f"(attempt {attempt.get('attempt', 1)}).")
    if stderr is not None:
        text = tail(stderr, lines)
        if text:
            shown = "its stderr" if lines <= 0 or len(stderr.rstrip().splitlines()) <= lines \
                else f"the last {lines} lines of its stderr"
            parts.append(f"{shown[0].upper()}{shown[1:]} (all of it: tiercel logs {job_id} --stderr):\n{text}")
        else:
            parts.append("Its stderr is empty.")
    return "\n".join(parts)
