"""PBS Professional / OpenPBS (18 and later): ``qsub``, ``qstat -f -F json -x -t``, ``qdel``.

Supported: PBS Pro and OpenPBS, whose qsub takes ``-J`` and whose qstat prints JSON
(``-F json`` needs ``-f``, see qstat(1B)). Torque has neither (``qsub -t``, no JSON)
and is not supported.

- ``qsub`` prints the job id: ``1234[].server`` for an array, ``1234.server`` for a
  plain job. That string is the native id.
- PBS Pro refuses an array of one (``-J`` needs a range of at least two indexes), so
  a count of 1 is submitted as a plain job, where ``$PBS_ARRAY_INDEX`` is unset; the
  header reads it as element 1, and its status row says element 1.
- ``qstat -f -F json -x -t ID...`` prints ``{"timestamp":..., "pbs_version":...,
  "pbs_server":..., "Jobs": {"1234[].server": {...}, "1234[3].server": {...}}}``:
  with ``-t`` every subjob is listed, with ``-x`` finished ones too (for as long as
  the server keeps job history). A whole-array row (element None) is returned only
  when the server lists none of the array's subjobs.
- ``qdel 1234[].server`` deletes an array, ``qdel 1234[3-5].server 1234[7].server``
  some of its subjobs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import ClassVar

from tiercel.sites.adapters._common import check_request, hms, lookup, runs
from tiercel.sites.adapters.base import ArrayRequest, ElementState, Invocation, NativeState, ParseError

# pbs_job_attributes(7B), "job_state", and qstat(1B). F (finished job) and X (finished
# subjob) are settled by Exit_status, see _finished.
STATES: dict[str, NativeState] = {
    "Q": NativeState.PENDING,
    "H": NativeState.PENDING,
    "W": NativeState.PENDING,  # waiting for its Execution_Time
    "T": NativeState.PENDING,  # being moved to another queue or server
    "M": NativeState.PENDING,  # moved to another server; qstat with the full id follows it
    "R": NativeState.RUNNING,
    "S": NativeState.RUNNING,
    "U": NativeState.RUNNING,  # cycle-harvesting job suspended by keyboard activity
    "E": NativeState.RUNNING,  # exiting: ran, PBS still cleaning up; Exit_status not final
    "B": NativeState.RUNNING,  # array with at least one subjob started
}

# Negative Exit_status values are PBS's own (JOB_EXEC_* in the server's job.h, listed in
# the Administrator's Guide, "Job Exit Status Codes"): the element did not end by itself.
_WALLTIME = -29  # JOB_EXEC_KILL_WALLTIME
_OVER_LIMIT = {-24, -25, -26, -27, -28}  # killed for ncpus, vmem, mem or cput

_ID = re.compile(r"(\d+)(\[\])?(\.\S+)?")
_KEY = re.compile(r"(\d+)\[(\d*)\](.*)")


def _finished(status: int | str | None) -> tuple[NativeState, int | None, str]:
    if status is None:
        return NativeState.CANCELLED, None, "deleted before it ran"
    code = int(status)
    if code == 0:
        return NativeState.DONE, 0, ""
    if 0 < code < 256:
        return NativeState.FAILED, code, f"Exit_status={code}"
    if code >= 256:  # killed by signal code-256: qdel's SIGTERM or SIGKILL
        return NativeState.CANCELLED, None, f"Exit_status={code} (signal {code - 256})"
    if code == _WALLTIME:
        return NativeState.TIMEOUT, None, f"Exit_status={code} (walltime)"
    if code in _OVER_LIMIT:
        return NativeState.FAILED, None, f"Exit_status={code} (over a resource limit)"
    return NativeState.LOST, None, f"Exit_status={code} (PBS could not run it)"


class Pbs:
    kind: ClassVar[str] = "pbs"
    commands: ClassVar[tuple[str, ...]] = ("qsub", "qstat", "qdel")
    max_array: ClassVar[int] = 10000  # max_array_size in pbs_server_attributes(7B)

    def submit(self, req: ArrayRequest) -> Invocation:
        check_request(req)
        head = [f"-N {req.name}", "-S /bin/sh"]
        if req.count > 1:
            head.append(f"-J 1-{req.count}" + (f"%{req.throttle}" if req.throttle else ""))
        # A directory: PBS names the files JOBID.OU and JOBID.ER, unique per subjob.
        head += [f"-o {req.workdir}/", f"-e {req.workdir}/"]
        if req.walltime is not None:
            head.append(f"-l walltime={hms(req.walltime)}")
        select = f"select=1:ncpus={req.cpus}" + (f":mem={req.memory_mb}mb" if req.memory_mb else "")
        head.append(f"-l {select}")
        if req.queue:
            head.append(f"-q {req.queue}")
        if req.account:
            head.append(f"-A {req.account}")
        head.extend(req.directives)
        lines = ["#!/bin/sh", *(f"#PBS {h}" for h in head)]
        lines.append("TIERCEL_ELEMENT=${PBS_ARRAY_INDEX:-1}; export TIERCEL_ELEMENT")
        return Invocation(argv=("qsub",), stdin="\n".join(lines) + "\n" + req.script)

    def parse_submit(self, out: str) -> str:
        for line in reversed(out.strip().splitlines()):
            if _ID.fullmatch(line.strip()):
                return line.strip()
        raise ParseError("qsub printed no job id", out)

    def status(self, native_ids: Sequence[str]) -> Invocation:
        # qstat exits 153 with "Unknown Job Id" when any id was purged, and still prints the others
        return Invocation(argv=("qstat", "-f", "-F", "json", "-x", "-t", *native_ids), gone="Unknown Job Id")

    def parse_status(self, out: str) -> list[ElementState]:
        if not out.strip():
            return []  # no job asked for is known any more (qstat says so on stderr)
        try:
            # strict=False: some PBS versions print control characters of Variable_List raw
            doc = json.loads(out, strict=False)
        except ValueError as e:
            raise ParseError(f"qstat -F json printed no JSON document: {e}", out) from None
        if not isinstance(doc, dict) or not isinstance(doc.get("Jobs", {}), dict):
            raise ParseError("qstat -F json printed no 'Jobs' object", out)
        rows: list[ElementState] = []
        parents: dict[str, ElementState] = {}
        seen: set[str] = set()
        for key, job in doc.get("Jobs", {}).items():
            if not isinstance(job, dict) or not isinstance(job.get("job_state"), str):
                raise ParseError(f"qstat job {key!r} has no job_state", out)
            code = job["job_state"]
            if code in ("F", "X"):
                status = job.get("Exit_status")
                if status is not None and not re.fullmatch(r"-?\d+", str(status)):
                    raise ParseError(f"qstat job {key!r} has Exit_status {status!r}", out)
                state, exit_code, why = _finished(status)
                why = f"{code}: {why}" if why else code
            else:
                state, exit_code, why = lookup(STATES, code), None, code
            m = _KEY.fullmatch(key)
            if m is None:
                if not _ID.fullmatch(key):
                    raise ParseError(f"qstat printed a job id it does not use: {key!r}", out)
                rows.append(ElementState(key, 1, state, exit_code, why))  # plain job: count 1
                continue
            seq, index, server = m.groups()
            native = f"{seq}[]{server}"
            if index:
                seen.add(native)
                rows.append(ElementState(native, int(index), state, exit_code, why))
            else:
                parents[native] = ElementState(native, None, state, exit_code, why)
        rows.extend(row for native, row in parents.items() if native not in seen)
        return rows

    def cancel(self, native_id: str, elements: Sequence[int] | None = None) -> Invocation:
        if elements is None:
            return Invocation(argv=("qdel", native_id))
        if "[]" not in native_id:  # a plain job has one element
            return Invocation(argv=("qdel", native_id))
        seq, server = native_id.split("[]", 1)
        ids = [f"{seq}[{a}]{server}" if a == b else f"{seq}[{a}-{b}]{server}" for a, b in runs(elements)]
        return Invocation(argv=("qdel", *ids))
