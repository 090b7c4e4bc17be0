"""Every message between two peer managers, as a type, and their msgpack form.

Version 1. One WebSocket carries both ways whichever manager opened it (the one behind NAT
connects out). Work goes as *ranges*: a ``forward`` holds one lease (one job's tasks of one
attempt, as index spans) however many tasks that is, and results come back per lease in
batches. A peer's job travels in the store's own form (store/specs.py), so what the origin
stored is what the peer runs. Decoding names what is wrong (WireError); a malformed message is
dropped and logged, never half-applied.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgpack

from tiercel.core.federation import SiteSummary
from tiercel.core.model import Outcome
from tiercel.core.ranges import Span
from tiercel.wire.codec import MALFORMED, WireError

PEER_PROTOCOL_VERSION = 1
MAX_SPANS = 100_000  # spans in one lease
MAX_ITEMS = 1_000_000  # results in one message


@dataclass(frozen=True, slots=True)
class PeerHello:
    """The first message each way: who this manager is (its id, stable across restarts) and its version."""

    manager: str
    name: str
    version: int = PEER_PROTOCOL_VERSION


@dataclass(frozen=True, slots=True)
class Summary:
    """What this manager's sites can do now, and how the other's forwarded work fares here."""

    sites: tuple[SiteSummary, ...]
    running_yours: int = 0  # tasks forwarded by the receiver that run here now
    started: tuple[tuple[str, int], ...] = ()  # (lease, tasks of it started or finished), for the receiver's leases


@dataclass(frozen=True, slots=True)
class Ping:
    sent: float


@dataclass(frozen=True, slots=True)
class Pong:
    sent: float  # the ping's, echoed: the round trip is the receiver's clock now less this


@dataclass(frozen=True, slots=True)
class Forward:
    """Run these tasks: one lease, its epoch (the tasks' attempt) and the job's stored form."""

    lease: str
    job: int  # the job's id at the origin
    epoch: int
    spans: tuple[Span, ...]
    spec: dict[str, Any]  # store/specs.py's form; its indexes are replaced by ``spans``
    hops: tuple[str, ...]  # managers the work came through, the origin's id last


@dataclass(frozen=True, slots=True)
class Accepted:
    lease: str
    job: int  # its job at the peer


@dataclass(frozen=True, slots=True)
class Refused:
    """A forward refused, whole: the origin places its tasks again (elsewhere)."""

    lease: str
    reason: str


@dataclass(frozen=True, slots=True)
class Cancel:
    """Stop the lease's tasks and forget them: cancelled at the origin, or taken back."""

    lease: str


@dataclass(frozen=True, slots=True)
class PeerResult:
    index: int
    outcome: Outcome
    exit_code: int | None
    started: float
    ended: float
    stdout: bytes
    stderr: bytes
    cpu: float | None = None


@dataclass(frozen=True, slots=True)
class PeerResults:
    """Settled tasks of one lease; repeated until acknowledged."""

    lease: str
    epoch: int
    items: tuple[PeerResult, ...]


@dataclass(frozen=True, slots=True)
class ResultsAck:
    """These results are durable at the origin (or were refused, ``refused`` saying why): forget them."""

    lease: str
    spans: tuple[Span, ...]
    refused: str = ""


@dataclass(frozen=True, slots=True)
class PeerError:
    """The link ends: what is wrong."""

    message: str


PeerMessage = (PeerHello | Summary | Ping | Pong | Forward | Accepted | Refused | Cancel | PeerResults | ResultsAck
               | PeerError)


# ---- encoding ------------------------------------------------------------------


def _site(s: SiteSummary) -> list[Any]:
    return [s.name, s.kind, s.slots_total, s.slots_free, s.max_cpus, s.max_memory_mb, s.max_walltime,
            sorted(s.tags), s.queued, s.running]


def encode(m: PeerMessage) -> dict[str, Any]:
    match m:
        case PeerHello(manager, name, version):
            return {"t": "peer_hello", "manager": manager, "name": name, "v": version}
        case Summary(sites, running, started):
            return {"t": "summary", "sites": [_site(s) for s in sites], "running": running,
                    "started": [list(x) for x in started]}
        case Ping(sent):
            return {"t": "ping", "sent": sent}
        case Pong(sent):
            return {"t": "pong", "sent": sent}
        case Forward(lease, job, epoch, spans, spec, hops):
            return {"t": "forward", "lease": lease, "job": job, "epoch": epoch, "spans": [list(s) for s in spans],
                    "spec": spec, "hops": list(hops)}
        case Accepted(lease, job):
            return {"t": "accepted", "lease": lease, "job": job}
        case Refused(lease, reason):
            return {"t": "refused", "lease": lease, "reason": reason}
        case Cancel(lease):
            return {"t": "cancel", "lease": lease}
        case PeerResults(lease, epoch, items):
            return {"t": "results", "lease": lease, "epoch": epoch,
                    "items": [[r.index, r.outcome.value, r.exit_code, r.started, r.ended, r.stdout, r.stderr, r.cpu]
                              for r in items]}
        case ResultsAck(lease, spans, refused):
            return {"t": "ack", "lease": lease, "spans": [list(s) for s in spans], "refused": refused}
        case PeerError(message):
            return {"t": "error", "message": message}
    raise TypeError(f"not a peer message: {m!r}")


def pack(messages: list[PeerMessage]) -> bytes:
    return bytes(msgpack.packb([encode(m) for m in messages], use_bin_type=True))


def unpack(frame: bytes) -> list[Any]:
    """The raw messages of one frame (WireError if it is not a msgpack list)."""
    try:
        raw = msgpack.unpackb(frame, raw=False, strict_map_key=False)
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise WireError(f"a frame that is not msgpack ({exc})") from None
    if not isinstance(raw, list):
        raise WireError("a peer frame must be a list of messages")
    return raw


# ---- decoding ------------------------------------------------------------------


def _str(v: Any, what: str, limit: int = 200) -> str:
    if not isinstance(v, str) or len(v) > limit:
        raise WireError(f"{what} must be a string of at most {limit} characters")
    return v


def _int(v: Any, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not -(2**63) <= v < 2**63:
        raise WireError(f"{what} must be an integer")
    return v


def _num(v: Any, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or v != v:
        raise WireError(f"{what} must be a number")
    return float(v)


def _opt(v: Any, what: str, conv: Any) -> Any:
    return None if v is None else conv(v, what)


def _spans(v: Any, what: str) -> tuple[Span, ...]:
    if not isinstance(v, list) or len(v) > MAX_SPANS:
        raise WireError(f"{what} must be a list of at most {MAX_SPANS} [start, stop) spans")
    out = []
    for s in v:
        if not isinstance(s, list) or len(s) != 2:
            raise WireError(f"{what}: each span must be [start, stop]")
        a, b = _int(s[0], what), _int(s[1], what)
        if not 0 <= a < b:
            raise WireError(f"{what}: span [{a}, {b}) is empty or negative")
        out.append((a, b))
    return tuple(out)


def _site_from(v: Any) -> SiteSummary:
    if not isinstance(v, list) or len(v) != 10:
        raise WireError("summary: each site must be a list of 10 fields")
    name, kind, total, free, cpus, mem, wall, tags, queued, running = v
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise WireError("summary: a site's tags must be a list of strings")
    return SiteSummary(_str(name, "summary: site name"), _str(kind, "summary: site kind"),
                       _int(total, "summary: slots_total"), _int(free, "summary: slots_free"),
                       _opt(cpus, "summary: max_cpus", _int), _opt(mem, "summary: max_memory_mb", _int),
                       _opt(wall, "summary: max_walltime", _num), frozenset(tags),
                       _int(queued, "summary: queued"), _int(running, "summary: running"))


def _result(v: Any) -> PeerResult:
    if not isinstance(v, list) or len(v) != 8:
        raise WireError("results: each item must be a list of 8 fields")
    index, outcome, code, started, ended, out, err, cpu = v
    if not isinstance(out, bytes) or not isinstance(err, bytes):
        raise WireError("results: stdout and stderr must be bytes")
    try:
        oc = Outcome(outcome)
    except ValueError:
        raise WireError(f"results: outcome {outcome!r} is not one of "
                        f"{', '.join(o.value for o in Outcome)}") from None
    return PeerResult(_int(index, "results: index"), oc, _opt(code, "results: exit_code", _int),
                      _num(started, "results: started"), _num(ended, "results: ended"), out, err,
                      _opt(cpu, "results: cpu", _num))


def decode(raw: Any) -> PeerMessage:
    """A message from a peer; WireError saying what is wrong with it."""
    if not isinstance(raw, dict):
        raise WireError("a peer message must be a map")
    t = raw.get("t")
    try:
        match t:
            case "peer_hello":
                return PeerHello(_str(raw["manager"], "peer_hello: manager"), _str(raw["name"], "peer_hello: name"),
                                 _int(raw["v"], "peer_hello: v"))
            case "summary":
                sites = raw["sites"]
                if not isinstance(sites, list):
                    raise WireError("summary: sites must be a list")
                started = raw.get("started", [])
                if not isinstance(started, list):
                    raise WireError("summary: started must be a list")
                return Summary(tuple(_site_from(s) for s in sites), _int(raw.get("running", 0), "summary: running"),
                               tuple((_str(x[0], "summary: lease"), _int(x[1], "summary: started")) for x in started))
            case "ping":
                return Ping(_num(raw["sent"], "ping: sent"))
            case "pong":
                return Pong(_num(raw["sent"], "pong: sent"))
            case "forward":
                spec = raw["spec"]
                hops = raw["hops"]
                if not isinstance(spec, dict):
                    raise WireError("forward: spec must be a map")
                if not isinstance(hops, list) or len(hops) > 32:
                    raise WireError("forward: hops must be a list of at most 32 manager ids")
                return Forward(_str(raw["lease"], "forward: lease"), _int(raw["job"], "forward: job"),
                               _int(raw["epoch"], "forward: epoch"), _spans(raw["spans"], "forward: spans"), spec,
                               tuple(_str(h, "forward: hops") for h in hops))
            case "accepted":
                return Accepted(_str(raw["lease"], "accepted: lease"), _int(raw["job"], "accepted: job"))
            case "refused":
                return Refused(_str(raw["lease"], "refused: lease"), _str(raw["reason"], "refused: reason", 2000))
            case "cancel":
                return Cancel(_str(raw["lease"], "cancel: lease"))
            case "results":
                items = raw["items"]
                if not isinstance(items, list) or len(items) > MAX_ITEMS:
                    raise WireError(f"results: items must be a list of at most {MAX_ITEMS}")
                return PeerResults(_str(raw["lease"], "results: lease"), _int(raw["epoch"], "results: epoch"),
                                   tuple(_result(x) for x in items))
            case "ack":
                return ResultsAck(_str(raw["lease"], "ack: lease"), _spans(raw["spans"], "ack: spans"),
                                  _str(raw.get("refused", ""), "ack: refused", 2000))
            case "error":
                return PeerError(_str(raw["message"], "error: message", 2000))
    except WireError:
        raise
    except MALFORMED as exc:
        raise WireError(f"{t}: malformed ({type(exc).__name__}: {exc})") from None
    raise WireError(f"unknown peer message type {t!r}")
