"""Native mode: a job's tasks become elements of the batch system's own arrays.

To the engine the site is one worker (``site:NAME``) with as many slots as
tasks it may have in the batch system at once. A sweep's tasks get their entries
from a file the site writes beside the array's script. Tasks sent to it are grouped
by job and cut into arrays no larger than the site allows; each array is one
submit command, its elements run the sh script of ``sites.shim``, and one status query
per interval covers every array in flight. An element's result file is the
truth about its task; the batch system's state only matters for elements that
ended without one (killed at their time limit, node failure, cancelled by an
admin). Arrays are recorded in the store, so a restarted manager finds them.
"""

from __future__ import annotations

import asyncio
import json
import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tiercel.core.engine import KillTasks, SendTasks
from tiercel.core.model import JobId, JobSpec, Outcome, Report, TaskRef, WorkerInfo
from tiercel.core.sites import site_worker
from tiercel.sites.adapters import ADAPTERS
from tiercel.sites.adapters.base import Adapter, ArrayRequest, ElementState, NativeState, ParseError
from tiercel.sites.config import SiteConfig
from tiercel.sites.runner import CommandFailed, Runner
from tiercel.sites.shim import element_entries, element_script, read_result, result_files
from tiercel.sites.site import Host, Site, log
from tiercel.store import DeleteSiteJob, SaveSiteJob
from tiercel.store.specs import spec_from_row, spec_to_row

REST_CYCLES = 30  # polls a degraded site with nothing in flight rests before it is tried again
MISSING_POLLS = 3  # polls an unfinished element may be absent from the batch system before it counts as lost
# what an element that ended without a result file is taken to mean
ENDED_WITHOUT_RESULT = {
    NativeState.DONE: Outcome.FAILED, NativeState.FAILED: Outcome.FAILED, NativeState.TIMEOUT: Outcome.TIMEOUT,
    NativeState.CANCELLED: Outcome.LOST, NativeState.LOST: Outcome.LOST,
}


@dataclass
class Array:
    native_id: str
    job: JobId
    folder: Path
    elements: dict[int, TaskRef]  # element number -> task
    cpus: int
    open: set[int] = field(default_factory=set)  # elements not yet reported
    missing: dict[int, int] = field(default_factory=dict)  # element -> polls absent or ended without a result


class NativeSite(Site):
    mode = "native"

    def __init__(self, name: str, cfg: SiteConfig, host: Host, spool: Path, *, runner: Runner | None = None) -> None:
        super().__init__(name, cfg, host, spool, runner=runner)
        self.adapter: Adapter = ADAPTERS[cfg.kind]()
        self.worker = site_worker(name)
        self.arrays: dict[str, Array] = {}
        self.specs: dict[JobId, JobSpec] = {}
        self.max_array = min(cfg.max_array or self.adapter.max_array, self.adapter.max_array)
        self._seq = 0
        self._resting = 0
        self._inflight: set[asyncio.Task[None]] = set()
        self._sending: dict[int, tuple[JobId, list[TaskRef]]] = {}  # submissions under way, by task

    def info_for_engine(self) -> WorkerInfo:
        lim = self.cfg.limits()
        return WorkerInfo(name=self.name, host=self.cfg.kind, slots=self.cfg.max_in_flight, tags=lim.tags,
                          cpus=self.cfg.max_in_flight, memory_mb=lim.max_memory_mb or 0, site=self.name)

    def batch_jobs(self) -> int:
        return len(self.arrays)

    def capacity(self) -> int:
        return self.cfg.max_in_flight

    def degrade(self, message: str) -> None:
        super().degrade(message)
        self.host.detach_site(self.worker)  # takes nothing new; what is in flight stays

    def recover(self) -> None:
        was = self.problem
        super().recover()
        if was is not None:
            self.attach()

    # ---- restart ---------------------------------------------------------

    def restore(self, rows: Any) -> None:
        for row in rows:
            data = json.loads(row.payload)
            refs = {int(e): TaskRef(JobId(data["job"]), int(i), int(a)) for e, (i, a) in data["elements"].items()}
            self.specs[JobId(data["job"])] = spec_from_row(data["spec"])
            self.arrays[row.native_id] = Array(row.native_id, JobId(data["job"]), Path(data["folder"]), refs,
                                               int(data.get("cpus", 1)), set(refs))

    def attach(self) -> None:
        """Join the engine as a worker holding every task still in the batch system, or on its way there.

        Submissions under way count too: their tasks were handed to this site, and a hold that
        left them out would have the engine re-queue them while the batch system starts them.
        """
        held = [ref for a in self.arrays.values() for e, ref in a.elements.items() if e in a.open]
        used = sum(a.cpus * len(a.open) for a in self.arrays.values())
        for job, refs in self._sending.values():
            held += refs
            used += self.specs[job].cpus * len(refs)
        kills = self.host.attach_site(self.worker, self.info_for_engine(), self._deliver, held=held,
                                      credit=max(0, self.cfg.max_in_flight - used))
        if kills:
            self.kill(KillTasks(self.worker, kills))  # tasks that settled while the manager was down

    def _deliver(self, e: SendTasks | KillTasks) -> None:
        self.send(e) if isinstance(e, SendTasks) else self.kill(e)

    # ---- tasks in --------------------------------------------------------

    def send(self, e: SendTasks) -> None:
        self.specs.update(e.specs)
        by_job: dict[JobId, list[TaskRef]] = {}
        for ref in e.tasks:
            by_job.setdefault(ref.job, []).append(ref)
        for job, refs in by_job.items():
            for start in range(0, len(refs), self.max_array):
                chunk = refs[start:start + self.max_array]
                task = asyncio.ensure_future(self._submit(job, chunk))
                self._sending[id(task)] = (job, chunk)
                self._inflight.add(task)
                task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Future[None]) -> None:
        self._inflight.discard(task)
        self._sending.pop(id(task), None)

    async def _submit(self, job: JobId, refs: list[TaskRef]) -> None:
        spec = self.specs[job]
        self._seq += 1
        folder = self.spool / f"j{job}-{int(self.host.clock() * 1000)}-{self._seq}"
        folder.mkdir(parents=True, exist_ok=True)
        elements = {n: ref for n, ref in enumerate(refs, start=1)}
        (folder / "run.sh").write_text(element_script(spec, job, elements, folder))
        entries = element_entries(elements)  # a sweep's: line E for element E, beside the script
        if entries is not None:
            (folder / "entries").write_text(entries, encoding="utf-8")
        walltime = None if spec.walltime is None else spec.walltime + 60  # the shim enforces the walltime itself
        req = ArrayRequest(
            name=f"tiercel-{job}", count=len(refs), workdir=str(folder),
            script=f"exec /bin/sh {shlex.quote(str(folder / 'run.sh'))}\n",
            walltime=walltime, cpus=spec.cpus, memory_mb=spec.memory_mb, queue=self.cfg.partition or self.cfg.queue,
            account=self.cfg.account, throttle=self.cfg.throttle, directives=tuple(self.cfg.directives),
            reservation=self._mirror_of(spec))
        try:
            native = self.adapter.parse_submit(await self.runner.run(self.adapter.submit(req)))
        except (CommandFailed, ParseError) as exc:
            self.degrade(f"submit failed: {exc}")
            if isinstance(exc, ParseError):
                log.error("site %s: cannot read the submit output %r", self.name, exc.text)
            now = self.host.clock()
            lost = [Report(r.job, r.index, r.attempt, Outcome.LOST, None, now, now, b"",
                           f"tiercel: site {self.name} could not submit: {exc}\n".encode()) for r in refs]
            shutil.rmtree(folder, ignore_errors=True)
            self._sending.pop(id(asyncio.current_task()), None)  # given back: no longer this site's
            self.host.site_reports(self.worker, lost, spec.cpus * len(refs))
            return
        self.arrays[native] = Array(native, job, folder, elements, spec.cpus, set(elements))
        self._sending.pop(id(asyncio.current_task()), None)  # held as an array from now on
        self.recover()  # after the array is recorded: a re-attach must hold its tasks
        payload = {"job": job, "folder": str(folder), "cpus": spec.cpus, "spec": spec_to_row(spec),
                   "elements": {str(n): [r.index, r.attempt] for n, r in elements.items()}}
        self.host.write([SaveSiteJob(self.name, native, json.dumps(payload), self.host.clock())])
        log.info("site %s: job %s tasks %d..%d are %s array %s", self.name, job, refs[0].index, refs[-1].index,
                 self.cfg.kind, native)

    def _mirror_of(self, spec: JobSpec) -> str | None:
        """The batch system's reservation the job's arrays go into: its Tiercel reservation's mirror."""
        r = self.host.queries.reservation(spec.reservation) if spec.reservation else None
        return r.mirror if r is not None and r.site == self.name else None

    def kill(self, e: KillTasks) -> None:
        wanted = {(r.job, r.index, r.attempt) for r in e.tasks}
        for array in list(self.arrays.values()):
            hit = [n for n in array.open
                   if (array.elements[n].job, array.elements[n].index, array.elements[n].attempt) in wanted]
            if not hit:
                continue
            array.open.difference_update(hit)
            elements = None if not array.open else sorted(hit)
            task = asyncio.ensure_future(self._cancel(array, elements))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)

    async def _cancel(self, array: Array, elements: list[int] | None) -> None:
        try:
            await self.runner.run(self.adapter.cancel(array.native_id, elements))
        except CommandFailed as exc:
            log.warning("site %s: cancel of %s: %s", self.name, array.native_id, exc)
        if not array.open:
            self._forget(array)

    def _forget(self, array: Array) -> None:
        self.arrays.pop(array.native_id, None)
        fut = self.host.write([DeleteSiteJob(self.name, array.native_id)])
        fut.add_done_callback(lambda _: shutil.rmtree(array.folder, ignore_errors=True))

    # ---- the poll --------------------------------------------------------

    async def cycle(self) -> None:
        if not self.arrays:
            if self.problem and not self._inflight:
                self._resting += 1
                if self._resting >= REST_CYCLES:  # nothing to poll: let the next submission tell
                    self._resting = 0
                    self.recover()
            return
        ids = list(self.arrays)

        async def query() -> list[ElementState]:
            return self.adapter.parse_status(await self.runner.run(self.adapter.status(ids)))
        rows = await self.poll(query)
        if rows is None:
            return
        self.recover()
        self._settle(rows)

    def _settle(self, rows: list[ElementState]) -> None:
        states: dict[tuple[str, int | None], ElementState] = {(r.native_id, r.element): r for r in rows}
        reports: list[Report] = []
        freed = 0
        for array in list(self.arrays.values()):
            written = result_files(array.folder)  # one directory listing per array, not a file per element
            for n in sorted(array.open):
                ref = array.elements[n]
                spec = self.specs.get(array.job)
                report = (read_result(array.folder, n, ref, walltime=spec.walltime if spec else None)
                          if n in written else None)
                if report is None:
                    report = self._without_result(array, n, ref, states)
                if report is None:
                    continue
                array.open.discard(n)
                reports.append(report)
                freed += array.cpus
        if reports:
            done = self.host.site_reports(self.worker, reports, freed)
            finished = [a for a in self.arrays.values() if not a.open]

            def forget(_: object) -> None:
                for a in finished:
                    self._forget(a)
            done.add_done_callback(forget)

    def _without_result(self, array: Array, n: int, ref: TaskRef,
                        states: dict[tuple[str, int | None], ElementState]) -> Report | None:
        row = states.get((array.native_id, n)) or states.get((array.native_id, None))
        if row is not None and not row.state.terminal:
            array.missing.pop(n, None)
            return None
        array.missing[n] = array.missing.get(n, 0) + 1
        if array.missing[n] < MISSING_POLLS:
            return None  # give a result file written at the very end a chance to appear
        outcome = Outcome.LOST if row is None else ENDED_WITHOUT_RESULT[row.state]
        what = "is gone from the batch system" if row is None else f"ended as {row.reason or row.state.value}"
        now = self.host.clock()
        return Report(ref.job, ref.index, ref.attempt, outcome, None, now, now, b"",
                      f"tiercel: {self.cfg.kind} element {array.native_id}[{n}] {what} without a result\n".encode())

    async def close(self) -> None:
        for task in list(self._inflight):
            task.cancel()
