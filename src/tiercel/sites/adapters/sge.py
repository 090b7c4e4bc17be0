"""Grid Engine (Son of Grid Engine 8.x, also Univa/Altair GE): ``qsub -terse``, ``qstat -xml``, ``qdel``.

Output formats, as printed by SGE 8.1.9 (recorded in tests/sites/test_adapters_sge.py):

- ``qsub -terse`` prints ``123.1-10:1`` for an array (``123`` for a plain job).
- Status is ``qstat -xml -g d``. qstat cannot select jobs by id in its listing mode
  (``-j`` gives a per-job detail dump instead), so the query lists all of the calling
  user's jobs -- the user who submitted them -- and every row is returned; the caller
  keeps the arrays it asked for. XML rather than the plain table because the table is
  positional with an empty queue column for pending jobs and locale-dependent dates,
  while the XML names every field and says "no jobs" unmistakably (an empty
  ``<job_info>``). ``-g d`` lists pending array tasks one by one; a remainder still
  printed as a range (``<tasks>4-6:1</tasks>``, as without ``-g d``) is expanded.
- Finished tasks vanish from qstat at once; a task being deleted shows ``d`` first.
- ``qdel 123`` deletes an array; ``qdel 123.3-5 123.7`` deletes tasks (sge_types(5)
  job_task ranges, several per call).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import ClassVar
from xml.etree.ElementTree import ParseError as XMLError

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from tiercel.sites.adapters._common import check_request, expand, hms, runs
from tiercel.sites.adapters.base import ArrayRequest, ElementState, Invocation, NativeState, ParseError

# qstat(1), "Reduced Format", the job status column, and sge_status(5): a state is a
# combination of letters -- d(eletion), E(rror), h(old), q(ueued), r(unning),
# R(estarted), s/S(uspended), t(ransfering), T(hreshold), w(aiting), z(ombie).
# The first letter of this table found in a state decides, so "dr" (a running task
# being deleted) is CANCELLED, "Eqw" (a task that cannot start because of its own
# properties, e.g. an unwritable -o directory, until someone runs qmod -cj) is FAILED,
# "hr" is RUNNING and "hRwq" is PENDING. R alone decides nothing: "Rr" runs, "Rq" waits.
STATES: dict[str, NativeState] = {
    "d": NativeState.CANCELLED,
    "E": NativeState.FAILED,
    "r": NativeState.RUNNING,
    "t": NativeState.RUNNING,
    "s": NativeState.RUNNING,  # suspended holds its slot
    "S": NativeState.RUNNING,
    "T": NativeState.RUNNING,
    "q": NativeState.PENDING,
    "w": NativeState.PENDING,
    "h": NativeState.PENDING,
    "z": NativeState.DONE,  # only listed with qstat -s z, which this adapter does not ask for
}

_TERSE = re.compile(r"(\d+)(?:\.\d+-\d+:\d+)?")
_CLASSIC = re.compile(r"Your job(?:-array)? (\d+)")
_CODE = re.compile(r"[A-Za-z]+")


def _state(code: str) -> NativeState:
    for letter, state in STATES.items():
        if letter in code:
            return state
    return NativeState.PENDING  # well formed but unknown: see _common.lookup


class GridEngine:
    kind: ClassVar[str] = "sge"
    commands: ClassVar[tuple[str, ...]] = ("qsub", "qstat", "qdel")
    max_array: ClassVar[int] = 75000  # max_aj_tasks in sge_conf(5)

    def submit(self, req: ArrayRequest) -> Invocation:
        check_request(req)
        head = [
            f"-N {req.name}",
            f"-t 1-{req.count}",
            f"-o {req.workdir}/",  # a directory: files are NAME.oJOB.TASK, unique per task
            f"-e {req.workdir}/",
            "-j n",
            "-S /bin/sh",
        ]
        if req.throttle:
            head.append(f"-tc {req.throttle}")
        if req.walltime is not None:
            head.append(f"-l h_rt={hms(req.walltime)}")
        # Parallel environments are named by each site; "smp" is the usual one. A site
        # with another name passes its own "-pe NAME N" in directives.
        if req.cpus > 1 and not any(d.lstrip().startswith("-pe ") for d in req.directives):
            head.append(f"-pe smp {req.cpus}")
        if req.memory_mb:
            # h_vmem is enforced per slot: the element's memory shared by its slots.
            head.append(f"-l h_vmem={math.ceil(req.memory_mb / req.cpus)}M")
        if req.queue:
            head.append(f"-q {req.queue}")
        if req.account:
            head.append(f"-A {req.account}")
        head.extend(req.directives)
        lines = ["#!/bin/sh", *(f"#$ {h}" for h in head)]
        lines.append("TIERCEL_ELEMENT=$SGE_TASK_ID; export TIERCEL_ELEMENT")
        return Invocation(argv=("qsub", "-terse"), stdin="\n".join(lines) + "\n" + req.script)

    def parse_submit(self, out: str) -> str:
        for line in reversed(out.strip().splitlines()):
            m = _TERSE.fullmatch(line.strip()) or _CLASSIC.match(line.strip())
            if m:
                return m.group(1)
        raise ParseError("qsub printed no job id", out)

    def status(self, native_ids: Sequence[str]) -> Invocation:
        return Invocation(argv=("qstat", "-xml", "-g", "d"))

    def parse_status(self, out: str) -> list[ElementState]:
        try:
            # qstat's own output, but job names in it come from users: no DTD, no entities
            root = SafeET.fromstring(out, forbid_dtd=True)
        except (XMLError, DefusedXmlException) as e:
            raise ParseError(f"qstat -xml printed no XML document: {e}", out) from None
        if root.tag != "job_info":
            raise ParseError(f"qstat -xml printed <{root.tag}>, not <job_info>", out)
        rows: list[ElementState] = []
        for job in root.iter("job_list"):
            number = (job.findtext("JB_job_number") or "").strip()
            code = (job.findtext("state") or "").strip()
            if not number.isdigit() or not _CODE.fullmatch(code):
                raise ParseError(f"qstat job entry without a job number or state: {number!r} {code!r}", out)
            tasks = (job.findtext("tasks") or "").strip()
            elements: list[int | None] = list(expand(tasks, out)) if tasks else [None]
            state = _state(code)
            rows.extend(ElementState(number, e, state, reason=code) for e in elements)
        return rows

    def cancel(self, native_id: str, elements: Sequence[int] | None = None) -> Invocation:
        if elements is None:
            return Invocation(argv=("qdel", native_id))
        ids = [f"{native_id}.{a}" if a == b else f"{native_id}.{a}-{b}" for a, b in runs(elements)]
        return Invocation(argv=("qdel", *ids))
