"""Messages of the worker protocol to msgpack maps and back.

Maps have short keys (``t`` the kind); tasks and results are lists, not maps, because a frame
can hold thousands. Decoding says what is wrong with a malformed message (WireError), naming
the part at fault; a malformed frame is dropped by the transport, never half-applied.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

import msgpack

from tiercel.core.model import JobId, JobSpec, Outcome, Report, TaskRef, WorkerId, WorkerInfo
from tiercel.core.ranges import IndexRanges
from tiercel.core.sites import site_of_worker
from tiercel.wire.messages import (
    PROTOCOL_VERSION,
    Ack,
    Bye,
    Cleanup,
    Credit,
    Drain,
    Error,
    Heartbeat,
    Hello,
    Kill,
    ManagerMessage,
    Reconnect,
    Results,
    Tasks,
    Welcome,
    WorkerMessage,
)

MALFORMED = (KeyError, TypeError, ValueError, IndexError, OverflowError, AttributeError)


class WireError(ValueError):
    """A message that is not what the protocol says; the text says what is wrong."""


class HelloError(WireError):
    pass


# ---- frames ----------------------------------------------------------------


def pack(messages: list[dict[str, Any]]) -> bytes:
    """One frame: a message alone, or several as a batch."""
    frame = messages[0] if len(messages) == 1 else {"t": "batch", "m": messages}
    return bytes(msgpack.packb(frame, use_bin_type=True))


def unpack(frame: bytes) -> list[Any]:
    """The messages of one frame (WireError if it is not msgpack)."""
    try:
        msg = msgpack.unpackb(frame, raw=False, strict_map_key=False)
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise WireError(f"a frame that is not msgpack ({exc})") from None
    if isinstance(msg, dict) and msg.get("t") == "batch":
        inner = msg.get("m")
        return list(inner) if isinstance(inner, list) else []
    return [msg]


# ---- items -------------------------------------------------------------------


def ref_to_wire(ref: TaskRef) -> list[Any]:
    return [ref.job, ref.index, ref.attempt, ref.seal]


def ref_from_wire(item: list[Any], entry: Any = None) -> TaskRef:
    """A task as the manager handed it out: job, index, attempt and the attempt's seal (and its entry)."""
    job, index, attempt, seal = item
    if not isinstance(seal, bytes):
        raise TypeError("a task's seal must be bytes")
    if entry is not None and not isinstance(entry, str):
        raise TypeError("a task's entry must be a string")
    return TaskRef(JobId(int(job)), int(index), int(attempt), seal, entry)


def tasks_to_wire(tasks: list[TaskRef]) -> dict[str, Any]:
    """Tasks as the ``tasks`` message holds them; their entries (a sweep over data) in a list beside them,
    present only when some task has one, so the tasks' own form is the same as without entries."""
    out: dict[str, Any] = {"tasks": [ref_to_wire(r) for r in tasks]}
    entries = [r.entry for r in tasks]
    if any(e is not None for e in entries):
        out["entries"] = entries
    return out


def tasks_from_wire(raw: dict[str, Any]) -> list[TaskRef]:
    items, entries = raw["tasks"], raw.get("entries")
    if entries is None:
        return [ref_from_wire(x) for x in items]
    if not isinstance(entries, list) or len(entries) != len(items):
        raise ValueError("entries must be a list with one entry (or nil) per task")
    return [ref_from_wire(x, e) for x, e in zip(items, entries, strict=True)]


def key_to_wire(ref: TaskRef) -> list[int]:
    """An attempt named without its seal: what the manager acknowledges or asks to kill."""
    return [ref.job, ref.index, ref.attempt]


def key_from_wire(item: list[Any]) -> TaskRef:
    return TaskRef(JobId(int(item[0])), int(item[1]), int(item[2]))


def report_to_wire(r: Report) -> list[Any]:
    return [r.job, r.index, r.attempt, r.outcome.value, r.exit_code, r.started, r.ended, r.stdout, r.stderr, r.seal]


def cpu_to_wire(reports: Iterable[Report]) -> list[float | None] | None:
    """The CPU seconds of each report, beside the reports (an optional key: a manager that does not
    know it reads the reports as before); None when none was measured."""
    cpu = [r.cpu for r in reports]
    return cpu if any(c is not None for c in cpu) else None


def with_cpu(reports: list[Report], cpu: Any) -> list[Report]:
    """Reports with the CPU seconds sent beside them, when the list is one number (or nil) each."""
    if not isinstance(cpu, list) or len(cpu) != len(reports):
        return reports
    out = []
    for r, c in zip(reports, cpu, strict=True):
        ok = c is not None and not isinstance(c, bool) and isinstance(c, int | float) and 0 <= c < 1e12
        out.append(dataclasses.replace(r, cpu=float(c)) if ok else r)
    return out


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


def spec_to_wire(spec: JobSpec) -> dict[str, Any]:
    """A job as a worker needs it (its own form: the store keeps jobs in a schema of its own).

    Without its entries: each task carries its own (``tasks_to_wire``)."""
    return {
        "command": list(spec.command), "shell": spec.shell, "indexes": [list(s) for s in spec.indexes.spans],
        "name": spec.name, "requires": sorted(spec.requires), "cleanup": spec.cleanup, "retries": spec.retries,
        "walltime": spec.walltime, "env": [list(kv) for kv in spec.env], "cwd": spec.cwd,
        "append_index": spec.append_index, "cpus": spec.cpus, "memory_mb": spec.memory_mb,
        "priority": spec.priority, "queue": spec.queue, "reservation": spec.reservation, "site": spec.site,
        "stdout": spec.stdout, "stderr": spec.stderr,
        **({"inputs": list(spec.inputs), "outputs": list(spec.outputs)} if spec.inputs or spec.outputs else {}),
    }


def spec_from_wire(d: dict[str, Any]) -> JobSpec:
    return JobSpec(
        command=tuple(d["command"]), indexes=IndexRanges(tuple((int(a), int(b)) for a, b in d["indexes"])),
        shell=bool(d.get("shell", False)), name=d.get("name", ""), requires=frozenset(d.get("requires", ())),
        cleanup=d.get("cleanup"), retries=int(d.get("retries", 0)), walltime=d.get("walltime"),
        env=tuple((str(k), str(v)) for k, v in d.get("env", ())), cwd=d.get("cwd"),
        append_index=bool(d.get("append_index", True)), cpus=int(d.get("cpus", 1)),
        memory_mb=int(d.get("memory_mb", 0)), priority=int(d.get("priority", 0)),
        queue=str(d.get("queue", "default")), reservation=d.get("reservation"), site=d.get("site"),
        stdout=_optional_text(d.get("stdout")), stderr=_optional_text(d.get("stderr")),
        inputs=tuple(str(u) for u in d.get("inputs", ())), outputs=tuple(str(u) for u in d.get("outputs", ())),
    )


def _optional_text(value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise TypeError("an output file pattern must be a string")
    return value


# ---- messages ----------------------------------------------------------------


def encode(msg: WorkerMessage | ManagerMessage) -> dict[str, Any]:
    """A message as the map that goes on the wire."""
    match msg:
        case Tasks(tasks, specs):
            return {"t": "tasks", "specs": {str(j): spec_to_wire(s) for j, s in specs.items()}, **tasks_to_wire(tasks)}
        case Results(reports, credit):
            cpu = cpu_to_wire(reports)
            return {"t": "res", "r": [report_to_wire(r) for r in reports], "c": credit, **({"u": cpu} if cpu else {})}
        case Ack(done):
            return {"t": "ack", "r": [key_to_wire(r) for r in done]}
        case Kill(tasks):
            return {"t": "kill", "tasks": [key_to_wire(r) for r in tasks]}
        case Hello():
            return _hello_to_wire(msg)
        case Credit(credit):
            return {"t": "cr", "c": credit}
        case Welcome(heartbeat):
            return {"t": "welcome", "hb": heartbeat}
        case Cleanup(job):
            return {"t": "cleanup", "job": job}
        case Error(message):
            return {"t": "error", "msg": message}
    return {"t": _BARE[type(msg)]}


_BARE: dict[type, str] = {Heartbeat: "hb", Drain: "drain", Bye: "bye", Reconnect: "reconnect"}


def _hello_to_wire(h: Hello) -> dict[str, Any]:
    i = h.info
    return {"t": "hello", "v": PROTOCOL_VERSION, "id": h.worker, "name": i.name, "host": i.host,
            "slots": i.slots, "cpus": i.cpus, "mem": i.memory_mb, "tags": sorted(i.tags), "credit": h.credit,
            "held": [ref_to_wire(r) for r in h.held], "results": [report_to_wire(r) for r in h.results],
            "ran": list(h.ran), "site": i.site, "ends_at": i.ends_at, "reservation": i.reservation,
            **({"data_node": i.data_node} if i.data_node else {}),
            **({"results_u": cpu} if (cpu := cpu_to_wire(h.results)) else {})}


def decode_from_worker(raw: Any) -> WorkerMessage:
    """A worker's message after its hello; WireError saying what is wrong."""
    kind = raw.get("t") if isinstance(raw, dict) else None
    try:
        if kind == "res":
            return Results(with_cpu([report_from_wire(x) for x in raw.get("r", [])], raw.get("u")),
                           int(raw.get("c", 0)))
        if kind == "cr":
            return Credit(int(raw.get("c", 0)))
    except MALFORMED as exc:  # all of it or nothing: a frame with one malformed report changes nothing
        raise WireError(f"a malformed {kind!r} frame: {exc}") from None
    if kind == "hb":
        return Heartbeat()
    if kind == "drain":
        return Drain()
    if kind == "bye":
        return Bye()
    raise WireError(f"a frame of unknown kind {str(kind)[:40]!r}")


def decode_from_manager(raw: Any) -> ManagerMessage:
    """A manager's message, as a worker reads it; WireError saying what is wrong."""
    kind = raw.get("t") if isinstance(raw, dict) else None
    try:
        if kind == "tasks":
            return Tasks(tasks_from_wire(raw),
                         {JobId(int(j)): spec_from_wire(s) for j, s in raw.get("specs", {}).items()})
        if kind == "ack":
            return Ack([key_from_wire(x) for x in raw["r"]])
        if kind == "kill":
            return Kill([key_from_wire(x) for x in raw["tasks"]])
        if kind == "cleanup":
            return Cleanup(JobId(int(raw["job"])))
        if kind == "welcome":
            return Welcome(float(raw.get("hb", 5.0)))
        if kind == "error":
            return Error(str(raw.get("msg")))
        if kind == "reconnect":
            return Reconnect()
    except MALFORMED as exc:
        raise WireError(f"a malformed {kind!r} message: {exc}") from None
    raise WireError(f"a message of unknown kind {str(kind)[:40]!r}")


def decode_hello(msg: Any) -> Hello:
    """The first message of a session; HelloError saying what is wrong with it."""
    if not isinstance(msg, dict) or msg.get("t") != "hello":
        raise HelloError("the first message must be a hello")
    if msg.get("v") != PROTOCOL_VERSION:
        raise HelloError(f"protocol version {str(msg.get('v'))[:20]!r} is not supported: this manager speaks "
                         f"version {PROTOCOL_VERSION}; run the same Tiercel release on workers and manager")
    wid = msg.get("id")
    if not isinstance(wid, str) or not 1 <= len(wid) <= 128:
        raise HelloError("id must be a string of 1 to 128 characters")
    if site_of_worker(WorkerId(wid)) is not None:
        raise HelloError(f"id: {wid!r} names a batch site's own place; a worker may not take it")
    info = _info(msg)
    try:
        credit = int(msg.get("credit", info.slots))
        held = tuple(ref_from_wire(x) for x in msg.get("held", ()))
        results = tuple(with_cpu([report_from_wire(x) for x in msg.get("results", ())], msg.get("results_u")))
        ran = tuple(JobId(int(j)) for j in msg.get("ran", ()))
    except MALFORMED as exc:
        raise HelloError(f"malformed held tasks or results ({exc})") from None
    return Hello(WorkerId(wid), info, credit, held, results, ran)


def _info(msg: dict[str, Any]) -> WorkerInfo:
    name, host = msg.get("name"), msg.get("host", "")
    slots, tags = msg.get("slots"), msg.get("tags", [])
    if not isinstance(name, str) or not 1 <= len(name) <= 128:
        raise HelloError("name must be a string of 1 to 128 characters")
    if not isinstance(slots, int) or isinstance(slots, bool) or not 1 <= slots <= 100_000:
        raise HelloError(f"slots: {str(slots)[:40]!r} must be a whole number from 1 to 100000")
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise HelloError("tags must be a list of strings")
    site, ends_at = msg.get("site", "pool"), msg.get("ends_at")
    if not isinstance(site, str) or not 1 <= len(site) <= 64:
        raise HelloError("site must be a site name of 1 to 64 characters")
    if ends_at is not None and (not isinstance(ends_at, (int, float)) or isinstance(ends_at, bool)):
        raise HelloError("ends_at must be a time in seconds since the epoch")
    reservation = msg.get("reservation")
    if reservation is not None and (not isinstance(reservation, str) or not 1 <= len(reservation) <= 64):
        raise HelloError("reservation must be a reservation name of 1 to 64 characters")
    cpus, mem = msg.get("cpus", slots), msg.get("mem", 0)
    if not isinstance(cpus, int) or isinstance(cpus, bool) or not 1 <= cpus <= 1_000_000:
        raise HelloError(f"cpus: {str(cpus)[:40]!r} must be a whole number from 1 to 1000000")
    if not isinstance(mem, int) or isinstance(mem, bool) or not 0 <= mem <= 2**40:
        raise HelloError(f"mem: {str(mem)[:40]!r} must be the worker's memory in MiB, 0 or more")
    if not isinstance(host, str) or len(host) > 255:
        raise HelloError("host must be a host name of at most 255 characters")
    data_node = msg.get("data_node")
    if data_node is not None and (not isinstance(data_node, str) or not 1 <= len(data_node) <= 255):
        raise HelloError("data_node must be a file-system node's host name of 1 to 255 characters")
    return WorkerInfo(name=name, host=host, slots=slots, tags=frozenset(tags), cpus=cpus, memory_mb=mem,
                      site=site, ends_at=None if ends_at is None else float(ends_at), reservation=reservation,
                      data_node=data_node)
