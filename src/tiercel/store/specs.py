"""A job as the store keeps it: the schema of the ``jobs.spec`` column (and of batch sites' records).

A job's entries (a sweep over data) are not in it: they are one compressed blob of a table of
their own (``job_entries``), read back only to restore the job and to copy the store.

Its own form, not the wire's: a store migration never changes the worker protocol, nor a
protocol change the stored jobs. Keys are read with defaults, so a job stored before a field
existed reads as the field's default.
"""

from __future__ import annotations

from typing import Any

from tiercel.core.model import After, JobId, JobSpec
from tiercel.core.ranges import IndexRanges


def spec_to_row(spec: JobSpec) -> dict[str, Any]:
    return {
        "command": list(spec.command), "shell": spec.shell, "indexes": [list(s) for s in spec.indexes.spans],
        "name": spec.name, "requires": sorted(spec.requires), "cleanup": spec.cleanup, "retries": spec.retries,
        "walltime": spec.walltime, "env": [list(kv) for kv in spec.env], "cwd": spec.cwd,
        "append_index": spec.append_index, "cpus": spec.cpus, "memory_mb": spec.memory_mb,
        "priority": spec.priority, "queue": spec.queue, "reservation": spec.reservation, "site": spec.site,
        "max_running": spec.max_running, "max_failures": spec.max_failures, "held": spec.held,
        "after": [[d.job, d.kind] for d in spec.after], "on_dependency_failure": spec.on_dependency_failure,
        "limits": [list(kv) for kv in spec.limits],
        "stdout": spec.stdout, "stderr": spec.stderr, **({"hops": list(spec.hops)} if spec.hops else {}),
        **({"inputs": list(spec.inputs), "outputs": list(spec.outputs), "on_missing_input": spec.on_missing_input}
           if spec.inputs or spec.outputs else {}),
    }


def spec_from_row(d: dict[str, Any]) -> JobSpec:
    return JobSpec(
        command=tuple(d["command"]), indexes=IndexRanges(tuple((int(a), int(b)) for a, b in d["indexes"])),
        shell=bool(d.get("shell", False)), name=d.get("name", ""), requires=frozenset(d.get("requires", ())),
        cleanup=d.get("cleanup"), retries=int(d.get("retries", 0)), walltime=d.get("walltime"),
        env=tuple((str(k), str(v)) for k, v in d.get("env", ())), cwd=d.get("cwd"),
        append_index=bool(d.get("append_index", True)), cpus=int(d.get("cpus", 1)),
        memory_mb=int(d.get("memory_mb", 0)), priority=int(d.get("priority", 0)),
        queue=str(d.get("queue", "default")), reservation=d.get("reservation"), site=d.get("site"),
        max_running=d.get("max_running"), max_failures=d.get("max_failures"), held=bool(d.get("held", False)),
        after=tuple(After(JobId(int(j)), str(k)) for j, k in d.get("after", ())),
        on_dependency_failure=str(d.get("on_dependency_failure", "cancel")),
        limits=tuple((str(k), int(v)) for k, v in d.get("limits", ())),
        stdout=d.get("stdout"), stderr=d.get("stderr"), hops=tuple(str(h) for h in d.get("hops", ())),
        inputs=tuple(str(u) for u in d.get("inputs", ())), outputs=tuple(str(u) for u in d.get("outputs", ())),
        on_missing_input=str(d.get("on_missing_input", "fail")),
    )
