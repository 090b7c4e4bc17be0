"""Plain-data encodings of core values, shared by the store and the worker channel.

Worker messages are msgpack maps with short keys; a batch of tasks or results
travels in one frame, so a task never costs a round trip of its own.
"""

from __future__ import annotations

from typing import Any

from tiercel.core.model import JobId, JobSpec, Outcome, Report, TaskRef
from tiercel.core.ranges import IndexRanges

PROTOCOL_VERSION = 2  # 2: every task handed out carries its seal, and comes back with it


def spec_to_dict(spec: JobSpec) -> dict[str, Any]:
    return {
        "command": list(spec.command),
        "shell": spec.shell,
        "indexes": [list(s) for s in spec.indexes.spans],
        "name": spec.name,
        "requires": sorted(spec.requires),
        "cleanup": spec.cleanup,
        "retries": spec.retries,
        "walltime": spec.walltime,
        "env": [list(kv) for kv in spec.env],
        "cwd": spec.cwd,
        "append_index": spec.append_index,
        "cpus": spec.cpus,
        "memory_mb": spec.memory_mb,
        "priority": spec.priority,
        "queue": spec.queue,
        "reservation": spec.reservation,
        "site": spec.site,
    }


def spec_from_dict(d: dict[str, Any]) -> JobSpec:
    return JobSpec(
        command=tuple(d["command"]),
        indexes=IndexRanges(tuple((int(a), int(b)) for a, b in d["indexes"])),
        shell=bool(d.get("shell", False)),
        name=d.get("name", ""),
        requires=frozenset(d.get("requires", ())),
        cleanup=d.get("cleanup"),
        retries=int(d.get("retries", 0)),
        walltime=d.get("walltime"),
        env=tuple((str(k), str(v)) for k, v in d.get("env", ())),
        cwd=d.get("cwd"),
        append_index=bool(d.get("append_index", True)),
        cpus=int(d.get("cpus", 1)),
        memory_mb=int(d.get("memory_mb", 0)),
        priority=int(d.get("priority", 0)),
        queue=str(d.get("queue", "default")),
        reservation=d.get("reservation"),
        site=d.get("site"),
    )


def ref_to_wire(ref: TaskRef) -> list[Any]:
    return [ref.job, ref.index, ref.attempt, ref.seal]


def ref_from_wire(item: list[Any]) -> TaskRef:
    """A task as the manager handed it out: job, index, attempt and the attempt's seal."""
    job, index, attempt, seal = item
    if not isinstance(seal, bytes):
        raise TypeError("a task's seal must be bytes")
    return TaskRef(JobId(int(job)), int(index), int(attempt), seal)


def key_to_wire(ref: TaskRef) -> list[int]:
    """An attempt named without its seal: what the manager acknowledges or asks to kill."""
    return [ref.job, ref.index, ref.attempt]


def key_from_wire(item: list[Any]) -> TaskRef:
    return TaskRef(JobId(int(item[0])), int(item[1]), int(item[2]))


def report_to_wire(r: Report) -> list[Any]:
    return [r.job, r.index, r.attempt, r.outcome.value, r.exit_code, r.started, r.ended, r.stdout, r.stderr, r.seal]


def report_from_wire(item: list[Any]) -> Report:
    """A worker's report; TypeError or ValueError (OverflowError among them) if it is malformed."""
    job, index, attempt, outcome, code, started, ended, out, err, seal = item
    if not isinstance(out, bytes) or not isinstance(err, bytes):  # bytes(10**9) would allocate a gigabyte
        raise TypeError("stdout and stderr must be bytes")
    if not isinstance(seal, bytes):
        raise TypeError("a result's seal must be bytes")
    return Report(
        JobId(int(job)), int(index), int(attempt), Outcome(outcome),
        None if code is None else int(code), float(started), float(ended), bytes(out), bytes(err), seal,
    )
