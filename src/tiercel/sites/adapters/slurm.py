"""Slurm: ``sbatch --parsable`` with the script on stdin, ``squeue`` for state, ``scancel``.

Output formats, as printed by Slurm 22.05 (recorded in tests/sites/test_adapters_slurm.py):

- ``sbatch --parsable`` prints ``123`` (or ``123;cluster`` on a multi-cluster setup).
- ``squeue -h -r --states=all -o '%i|%T|%r' -j 123,124`` prints one line per element,
  ``123_4|RUNNING|None``. ``-r`` lists pending elements one by one; without it, or in
  some versions even with it, a pending remainder is one line ``123_[5-10%2]`` (or
  ``123_[1-2,4-5]``), which is expanded here. ``--states=all`` keeps finished elements
  (COMPLETED, FAILED, CANCELLED, TIMEOUT ...) listed for ``MinJobAge`` (300 s by
  default); after that they are absent. A pending element cancelled before it ran is
  never split off its array, so it vanishes at once instead of showing CANCELLED.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Sequence
from typing import ClassVar

from tiercel.sites.adapters._common import check_request, expand, lookup, minutes, runs
from tiercel.sites.adapters.base import (
    ArrayRequest,
    ElementState,
    Invocation,
    NativeReservation,
    NativeState,
    ParseError,
)

# squeue(1), "JOB STATE CODES" (Slurm 22.05; the same list up to 24.x). A suspended or
# stopped element still holds its allocation, so it counts as started. COMPLETING and
# STAGE_OUT come after the script ended but before Slurm settled COMPLETED or FAILED.
STATES: dict[str, NativeState] = {
    "PENDING": NativeState.PENDING,
    "REQUEUED": NativeState.PENDING,  # completing, then back to the queue
    "REQUEUE_FED": NativeState.PENDING,
    "REQUEUE_HOLD": NativeState.PENDING,
    "RESV_DEL_HOLD": NativeState.PENDING,
    "CONFIGURING": NativeState.RUNNING,  # has its allocation, nodes booting
    "RUNNING": NativeState.RUNNING,
    "SUSPENDED": NativeState.RUNNING,
    "STOPPED": NativeState.RUNNING,
    "SIGNALING": NativeState.RUNNING,
    "RESIZING": NativeState.RUNNING,
    "COMPLETING": NativeState.RUNNING,
    "STAGE_OUT": NativeState.RUNNING,
    "REVOKED": NativeState.RUNNING,  # a federation sibling started it on another cluster
    "COMPLETED": NativeState.DONE,
    "FAILED": NativeState.FAILED,
    "OUT_OF_MEMORY": NativeState.FAILED,
    "SPECIAL_EXIT": NativeState.FAILED,
    "CANCELLED": NativeState.CANCELLED,
    "TIMEOUT": NativeState.TIMEOUT,
    "DEADLINE": NativeState.TIMEOUT,
    "NODE_FAIL": NativeState.LOST,
    "PREEMPTED": NativeState.LOST,
    "BOOT_FAIL": NativeState.LOST,
}

_SUBMITTED = re.compile(r"(\d+)(?:;\S+)?")
_ID = re.compile(r"(\d+)(?:_(\d+)|_\[([0-9,:%-]+)\])?")
_STATE = re.compile(r"[A-Z_]+")
_WORD_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
_RESERVED = re.compile(r"Reservation created: (\S+)")


class Slurm:
    kind: ClassVar[str] = "slurm"
    commands: ClassVar[tuple[str, ...]] = ("sbatch", "squeue", "scancel")
    max_array: ClassVar[int] = 1000  # MaxArraySize=1001 allows indexes 0..1000; ours start at 1
    in_use: ClassVar[str] = "Requested reservation is in use"  # scontrol delete, jobs still running in it

    def submit(self, req: ArrayRequest) -> Invocation:
        check_request(req, reservations=True)
        array = f"1-{req.count}" + (f"%{req.throttle}" if req.throttle else "")
        head = [
            f"--job-name={req.name}",
            f"--array={array}",
            f"--output={req.workdir}/%A_%a.out",
            f"--error={req.workdir}/%A_%a.err",
            f"--cpus-per-task={req.cpus}",
        ]
        if req.walltime is not None:
            head.append(f"--time={minutes(req.walltime)}")
        if req.memory_mb:
            head.append(f"--mem={req.memory_mb}")
        if req.queue:
            head.append(f"--partition={req.queue}")
        if req.account:
            head.append(f"--account={req.account}")
        if req.reservation:
            head.append(f"--reservation={req.reservation}")
        head.extend(req.directives)
        lines = ["#!/bin/sh", *(f"#SBATCH {h}" for h in head)]
        lines.append("TIERCEL_ELEMENT=$SLURM_ARRAY_TASK_ID; export TIERCEL_ELEMENT")
        return Invocation(argv=("sbatch", "--parsable"), stdin="\n".join(lines) + "\n" + req.script)

    def parse_submit(self, out: str) -> str:
        for line in reversed(out.strip().splitlines()):
            m = _SUBMITTED.fullmatch(line.strip())
            if m:
                return m.group(1)
        raise ParseError("sbatch printed no job id", out)

    def status(self, native_ids: Sequence[str]) -> Invocation:
        # squeue exits 1 only when every id is unknown ("Invalid job id specified"): all purged
        return Invocation(argv=("squeue", "-h", "-r", "--states=all", "-o", "%i|%T|%r", "-j", ",".join(native_ids)),
                          gone="Invalid job id specified")

    def parse_status(self, out: str) -> list[ElementState]:
        rows: list[ElementState] = []
        for line in out.splitlines():
            if not line.strip():
                continue
            parts = line.strip().split("|", 2)
            if len(parts) != 3:
                raise ParseError(f"squeue line has not 3 fields: {line!r}", out)
            jobid, code, reason = parts
            m = _ID.fullmatch(jobid)
            if m is None or not _STATE.fullmatch(code):
                raise ParseError(f"squeue line not understood: {line!r}", out)
            state = lookup(STATES, code)
            why = code if reason in ("", "None") else f"{code} ({reason})"
            native, one, many = m.groups()
            if many is not None:
                elements: list[int | None] = list(expand(many, out))
            else:
                elements = [int(one) if one is not None else None]
            rows.extend(ElementState(native, e, state, reason=why) for e in elements)
        return rows

    def cancel(self, native_id: str, elements: Sequence[int] | None = None) -> Invocation:
        if elements is None:
            return Invocation(argv=("scancel", native_id))
        ids = [f"{native_id}_{a}" if a == b else f"{native_id}_[{a}-{b}]" for a, b in runs(elements)]
        return Invocation(argv=("scancel", *ids))

    # ---- mirrored reservations: scontrol(1), "RESERVATIONS - SPECIFICATIONS FOR CREATE, UPDATE ..." ----

    def reserve(self, r: NativeReservation, now: float) -> Invocation:
        if not _WORD_NAME.fullmatch(r.name):
            raise ValueError(f"name: {r.name!r} must be letters, digits, '-', '_' or '.'")
        if r.cores < 1:
            raise ValueError(f"cores: {r.cores} must be at least 1")
        if not r.users or not all(_WORD_NAME.fullmatch(u) for u in r.users):
            raise ValueError(f"users: {list(r.users)!r} must be one or more account names")
        # scontrol reads times in the local time zone of the host it runs on: the manager's.
        start = "now" if r.start <= now + 1 else time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(r.start))
        argv = ["scontrol", "create", "reservation", f"ReservationName={r.name}", f"StartTime={start}",
                f"EndTime={time.strftime('%Y-%m-%dT%H:%M:%S', time.localtime(math.ceil(r.end)))}",
                f"Users={','.join(r.users)}", f"CoreCnt={r.cores}",
                # jobs already running on the cores chosen stay; without this Slurm refuses busy nodes
                "Flags=IGNORE_JOBS"]
        if r.queue:
            argv.append(f"PartitionName={r.queue}")
        return Invocation(argv=tuple(argv))

    def parse_reserve(self, out: str) -> str:
        m = _RESERVED.search(out)
        if m is None:
            raise ParseError("scontrol printed no reservation name", out)
        return m.group(1)

    def unreserve(self, name: str) -> Invocation:
        return Invocation(argv=("scontrol", "delete", f"ReservationName={name}"))
