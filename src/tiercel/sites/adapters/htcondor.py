"""HTCondor: a submit description on stdin to ``condor_submit -terse``, ``condor_q -af``, ``condor_rm``.

- The element script is a file written into the workdir (Invocation.files), named
  after its content so two arrays never overwrite each other's script while one of
  them is still idle. It runs as ``/bin/sh SCRIPT $(Process)``: with /bin/sh as the
  executable the script needs no execute bit, which a written file lacks when the
  pool shares the file system and nothing is transferred; when files are
  transferred, the script goes along as an input file and runs in the sandbox.
  ``$(Process)`` counts from 0, so the script's header sets TIERCEL_ELEMENT to
  ``$1 + 1``.
- ``condor_submit -terse`` prints ``1234.0 - 1234.2``; without -terse it says
  ``3 job(s) submitted to cluster 1234.`` Both are read; the native id is ``1234``.
- ``condor_q 1234 ... -af ClusterId ProcId JobStatus ExitCode HoldReason`` prints
  one line per job, values separated by spaces, ``undefined`` for an unset
  attribute (condor_q(1), "-autoformat"); HoldReason, free text, comes last.
  Completed and removed jobs leave the queue (into condor_history): they are absent.
- ``condor_rm 1234`` removes a cluster, ``condor_rm 1234.2 1234.6`` some jobs of it
  (element k is ProcId k-1).
- Walltime is a ``periodic_remove`` once the job has run longer; such a job is
  Removed (3) like a cancelled one, and read as CANCELLED.
- HTCondor has no per-cluster limit on running jobs that keeps all jobs in the
  queue (``max_materialize`` hides the rest, which would read as finished), so a
  throttle is refused rather than dropped.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import ClassVar

from tiercel.sites.adapters._common import check_request, lookup, runs
from tiercel.sites.adapters.base import ArrayRequest, ElementState, Invocation, NativeState, ParseError

# HTCondor manual, "Job ClassAd Attributes", JobStatus. Completed (4) is settled by
# ExitCode, which is undefined when the job was killed by a signal.
STATES: dict[str, NativeState] = {
    "1": NativeState.PENDING,  # Idle
    "2": NativeState.RUNNING,  # Running
    "3": NativeState.CANCELLED,  # Removed
    "4": NativeState.DONE,  # Completed
    "5": NativeState.PENDING,  # Held: waits for condor_release; HoldReason says why
    "6": NativeState.RUNNING,  # Transferring Output
    "7": NativeState.RUNNING,  # Suspended
}

ATTRIBUTES = ("ClusterId", "ProcId", "JobStatus", "ExitCode", "HoldReason")
_TERSE = re.compile(r"(\d+)\.\d+ - \1\.\d+")
_CLASSIC = re.compile(r"\d+ job\(s\) submitted to cluster (\d+)\.")


class HTCondor:
    kind: ClassVar[str] = "htcondor"
    commands: ClassVar[tuple[str, ...]] = ("condor_submit", "condor_q", "condor_rm")
    max_array: ClassVar[int] = 20000  # MAX_JOBS_PER_SUBMISSION

    def submit(self, req: ArrayRequest) -> Invocation:
        check_request(req)
        if req.throttle is not None:
            raise ValueError(f"throttle: {req.throttle} cannot be kept on HTCondor, which has no per-array limit")
        body = "#!/bin/sh\nTIERCEL_ELEMENT=$(( $1 + 1 )); export TIERCEL_ELEMENT\nshift\n" + req.script
        digest = hashlib.sha256(body.encode()).hexdigest()[:16]
        script = f"{req.name}-{digest}.sh"
        wd = req.workdir
        lines = [
            "universe = vanilla",
            f"batch_name = {req.name}",
            f"initialdir = {wd}",
            "executable = /bin/sh",
            "transfer_executable = false",
            f'arguments = "{script} $(Process)"',
            "should_transfer_files = IF_NEEDED",
            f"transfer_input_files = {script}",
            f"output = {wd}/$(ClusterId)_$(Process).out",
            f"error = {wd}/$(ClusterId)_$(Process).err",
            f"log = {wd}/$(ClusterId).log",
            f"request_cpus = {req.cpus}",
        ]
        if req.memory_mb:
            lines.append(f"request_memory = {req.memory_mb}")  # MB
        if req.walltime is not None:
            limit = max(1, round(req.walltime))
            lines.append(f"periodic_remove = (JobStatus == 2) && (time() - JobCurrentStartDate > {limit})")
        if req.account:
            lines.append(f"accounting_group = {req.account}")
        lines.extend(req.directives)
        lines.append(f"queue {req.count}")
        return Invocation(
            argv=("condor_submit", "-terse"),
            stdin="\n".join(lines) + "\n",
            files=((f"{wd}/{script}", body),),
        )

    def parse_submit(self, out: str) -> str:
        for line in reversed(out.strip().splitlines()):
            m = _TERSE.fullmatch(line.strip()) or _CLASSIC.fullmatch(line.strip())
            if m:
                return m.group(1)
        raise ParseError("condor_submit printed no cluster id", out)

    def status(self, native_ids: Sequence[str]) -> Invocation:
        return Invocation(argv=("condor_q", *native_ids, "-af", *ATTRIBUTES))

    def parse_status(self, out: str) -> list[ElementState]:
        rows: list[ElementState] = []
        for line in out.splitlines():
            if not line.strip():
                continue
            parts = line.split(None, 4)
            if len(parts) < 4 or not all(p.isdigit() for p in parts[:3]):
                raise ParseError(f"condor_q line not understood: {line!r}", out)
            cluster, proc, code, exit_text = parts[:4]
            hold = parts[4].strip() if len(parts) == 5 and parts[4].strip() != "undefined" else ""
            if exit_text == "undefined":
                exit_code = None
            elif re.fullmatch(r"-?\d+", exit_text):
                exit_code = int(exit_text)
            else:
                raise ParseError(f"condor_q ExitCode not a number: {line!r}", out)
            state = lookup(STATES, code)
            if code == "4" and exit_code != 0:
                state = NativeState.FAILED
            reason = f"JobStatus={code}" + (f": {hold}" if hold else "")
            rows.append(ElementState(cluster, int(proc) + 1, state, exit_code, reason))
        return rows

    def cancel(self, native_id: str, elements: Sequence[int] | None = None) -> Invocation:
        if elements is None:
            return Invocation(argv=("condor_rm", native_id))
        procs = [f"{native_id}.{e - 1}" for a, b in runs(elements) for e in range(a, b + 1)]
        return Invocation(argv=("condor_rm", *procs))
