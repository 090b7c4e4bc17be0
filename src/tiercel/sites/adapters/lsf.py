"""IBM Spectrum LSF: ``bsub`` with the script on stdin, ``bjobs -o``, ``bkill``.

- ``bsub`` prints ``Job <1234> is submitted to queue <normal>.`` (or ``... to default
  queue <normal>.``); the native id is ``1234``. An array of one is ``name[1-1]``, so
  every element has ``$LSB_JOBINDEX`` >= 1.
- ``bjobs -noheader -a -o "jobid jobindex stat exit_code delimiter='|'" 1234 ...``
  (bjobs(1) "-o": customized output, one field list and a delimiter) prints one
  line per element, ``1234|3|RUN|-``; ``jobindex`` is 0 for a job that is not an
  array, ``exit_code`` is ``-`` until the element exits. ``-a`` keeps finished
  elements listed for CLEAN_PERIOD (an hour by default). "Job <N> is not found" and
  "No unfinished job found" go to stderr, and are skipped here should they be merged.
- ``bkill 1234`` kills an array, ``bkill 1234[3-5,7]`` some of its elements.

LSF's state does not tell a kill from a failure: an element ended by bkill, by its
run limit or by its own non-zero status is EXIT alike, read as FAILED here; the
caller knows which elements it cancelled.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import ClassVar

from tiercel.sites.adapters._common import check_request, lookup, minutes, runs
from tiercel.sites.adapters.base import ArrayRequest, ElementState, Invocation, NativeState, ParseError

# bjobs(1), "JOB STATUS" (LSF 10.1).
STATES: dict[str, NativeState] = {
    "PEND": NativeState.PENDING,
    "PROV": NativeState.PENDING,  # dispatched, waiting for its host to be provisioned
    "PSUSP": NativeState.PENDING,  # suspended while pending
    "WAIT": NativeState.PENDING,  # chunk job member waiting to run
    "RUN": NativeState.RUNNING,
    "USUSP": NativeState.RUNNING,  # suspended while running: holds its slots
    "SSUSP": NativeState.RUNNING,
    "UNKWN": NativeState.RUNNING,  # mbatchd lost contact with the host; it may still run
    "DONE": NativeState.DONE,
    "EXIT": NativeState.FAILED,
    "ZOMBI": NativeState.LOST,  # killed while its host was unreachable
}

FORMAT = "jobid jobindex stat exit_code delimiter='|'"
_SUBMITTED = re.compile(r"Job <(\d+)> is submitted")
_NOISE = re.compile(r"Job <[^>]*> is not found|No (unfinished )?job found")
_STATE = re.compile(r"[A-Z]+")


class Lsf:
    kind: ClassVar[str] = "lsf"
    commands: ClassVar[tuple[str, ...]] = ("bsub", "bjobs", "bkill")
    max_array: ClassVar[int] = 1000  # MAX_JOB_ARRAY_SIZE in lsb.params

    def submit(self, req: ArrayRequest) -> Invocation:
        check_request(req)
        array = f"{req.name}[1-{req.count}]" + (f"%{req.throttle}" if req.throttle else "")
        head = [f'-J "{array}"', f"-o {req.workdir}/%J_%I.out", f"-e {req.workdir}/%J_%I.err", f"-n {req.cpus}"]
        if req.walltime is not None:
            head.append(f"-W {minutes(req.walltime)}")
        # mem is in LSF_UNIT_FOR_LIMITS, MB on the usual configuration.
        need = ([f"rusage[mem={req.memory_mb}]"] if req.memory_mb else []) + (["span[hosts=1]"] if req.cpus > 1 else [])
        if need:
            head.append(f'-R "{" ".join(need)}"')
        if req.queue:
            head.append(f"-q {req.queue}")
        if req.account:
            head.append(f"-P {req.account}")
        head.extend(req.directives)
        lines = ["#!/bin/sh", *(f"#BSUB {h}" for h in head)]
        lines.append("TIERCEL_ELEMENT=$LSB_JOBINDEX; export TIERCEL_ELEMENT")
        return Invocation(argv=("bsub",), stdin="\n".join(lines) + "\n" + req.script)

    def parse_submit(self, out: str) -> str:
        m = _SUBMITTED.search(out)
        if m is None:
            raise ParseError("bsub printed no job id", out)
        return m.group(1)

    def status(self, native_ids: Sequence[str]) -> Invocation:
        return Invocation(argv=("bjobs", "-noheader", "-a", "-o", FORMAT, *native_ids))

    def parse_status(self, out: str) -> list[ElementState]:
        rows: list[ElementState] = []
        for line in out.splitlines():
            line = line.strip()
            if not line or _NOISE.match(line):
                continue
            parts = line.split("|")
            if len(parts) != 4:
                raise ParseError(f"bjobs line has not 4 fields: {line!r}", out)
            jobid, index, code, exit_text = (p.strip() for p in parts)
            if not jobid.isdigit() or not index.isdigit() or not _STATE.fullmatch(code):
                raise ParseError(f"bjobs line not understood: {line!r}", out)
            if exit_text in ("", "-"):
                exit_code = 0 if code == "DONE" else None
            elif exit_text.isdigit():
                exit_code = int(exit_text)
            else:
                raise ParseError(f"bjobs exit_code not a number: {line!r}", out)
            element = int(index) or None
            rows.append(ElementState(jobid, element, lookup(STATES, code), exit_code, code))
        return rows

    def cancel(self, native_id: str, elements: Sequence[int] | None = None) -> Invocation:
        if elements is None:
            return Invocation(argv=("bkill", native_id))
        spans = ",".join(f"{a}" if a == b else f"{a}-{b}" for a, b in runs(elements))
        return Invocation(argv=("bkill", f"{native_id}[{spans}]"))
