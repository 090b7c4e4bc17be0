"""The engine's data-aware placement: which of a job's waiting tasks go where, by their files' replicas.

The queue's policies say how many tasks of a job each place may take this cycle; for a job with
inputs ``place_data`` then chooses which tasks (core/policies/data.py), asks for the copies worth
making (``Replicate`` effects, each (file, node) once), and keeps the tasks copied for waiting for
their node. The shell feeds the replica map in (``set_data``) and reports copies (``replica_made``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from itertools import islice

from tiercel.core.data import DataView, Node, Path, task_inputs, unreadable
from tiercel.core.engine.effects import Effect, Persist, Relocate, Replicate
from tiercel.core.engine.state import JobRun, WorkerRun
from tiercel.core.model import AttemptRecord, JobId, Outcome, Report, WorkerId
from tiercel.core.policies.data import SCAN, Estimates, Picks, Slot, costs, pick


class DataPlacement:
    """Mixed into Engine: its replica map, the copies it asked for, and its jobs' run times."""

    jobs: dict[JobId, JobRun]
    workers: dict[WorkerId, WorkerRun]

    def _data_init(self) -> None:
        self.data = DataView()
        self.intents: dict[JobId, dict[int, Node]] = {}
        self.runtimes: dict[JobId, tuple[float, int]] = {}  # job -> (seconds of its done tasks, how many)
        self.copies: list[Replicate] = []  # asked for in this dispatch, for the shell
        self.copy_log: list[tuple[Path, Node]] = []  # every copy ever asked for (tests, bench, status)
        self.data_waits: dict[JobId, str] = {}  # why a data job's tasks were left waiting at the last dispatch
        self._missing: list[AttemptRecord] = []  # tasks failed this dispatch: an input does not exist
        self._missing_jobs: dict[JobId, JobRun] = {}
        self.data_short: set[JobId] = set()
        self.data_jobs: set[JobId] = set()  # live jobs with inputs
        # replicas a task could not read -> when marked (None: since the last dispatch, stamped at the next)
        self.marks: dict[tuple[Path, Node], float | None] = {}
        self.rechecking: set[tuple[Path, Node]] = set()  # marks whose files gfwhere is asked about again

    def _maybe_end(self, job: JobRun) -> list[Effect]:
        raise NotImplementedError  # the Engine's

    def set_data(self, view: DataView) -> None:
        """The shell's view of the file system changed (replicas learned or made, nodes down, copies under way)."""
        # A mark ends when its node comes back up (the node watch saw it down, then up) or when gfwhere,
        # asked again once the mark had lasted recheck_after, answers for its file: if the replica is still
        # listed it is tried again (a task that fails to read it marks it anew), if not it is gone anyway.
        back = self.data.down - view.down
        for key in [k for k in self.marks if k[1] in back or (k in self.rechecking and k[0] in view.located)]:
            del self.marks[key]
            self.rechecking.discard(key)
        self.data = replace(view, unreadable=frozenset(self.marks))

    def _gave_back(self, job: JobRun, r: Report) -> None:
        """A worker gave a task back because it could not read an input where it was: that replica is
        passed over from now on, so the task goes to another one (or fails once none is left)."""
        bad = unreadable(r.stderr)
        if bad is not None:
            self.marks[bad] = None
            self.rechecking.discard(bad)
            self.data = replace(self.data, unreadable=frozenset(self.marks))

    def replica_made(self, path: Path, node: Node, ok: bool) -> None:
        """A copy the engine asked for ended. A failed one frees the tasks that waited for it."""
        if ok:
            return
        for job_id, intents in self.intents.items():
            job = self.jobs.get(job_id)
            if job is None:
                continue
            for index in [i for i, n in intents.items() if n == node and path in self._inputs(job, i)]:
                del intents[index]

    def _ran(self, job: JobRun, r: Report) -> None:
        if r.ended > r.started > 0:
            total, n = self.runtimes.get(job.id, (0.0, 0))
            self.runtimes[job.id] = (total + r.ended - r.started, n + 1)

    def _runtime(self, job: JobRun) -> float | None:
        total, n = self.runtimes.get(job.id, (0.0, 0))
        if n:
            return total / n
        return job.spec.walltime / 2 if job.spec.walltime else None

    def _inputs(self, job: JobRun, index: int) -> tuple[Path, ...]:
        return task_inputs(job.spec.inputs, job.id, index)

    def _pending(self, job: JobRun) -> list[int]:
        """Its waiting tasks in the order they would start (retries first), at most SCAN of them."""
        out = list(islice(job.retry, SCAN))
        for a, b in job.fresh.spans():
            if len(out) >= SCAN:
                break
            out.extend(range(a, min(b, a + SCAN - len(out))))
        return out

    def _slots_by_node(self) -> dict[Node, int]:
        slots: dict[Node, int] = {}
        for w in self.workers.values():
            if w.connected and w.info.data_node:
                slots[w.info.data_node] = slots.get(w.info.data_node, 0) + w.info.slots
        return slots

    def place_data(self, job: JobRun, allowed: dict[WorkerId, int], cap: int, now: float) -> Picks:
        """Which of the job's waiting tasks each worker runs, at most ``allowed`` on each and ``cap`` in all;
        the copies to ask for."""
        slots = [Slot(w, self.workers[w].info.data_node, n) for w, n in allowed.items() if n > 0]
        intents = self.intents.setdefault(job.id, {})
        picks = pick(self._pending(job), lambda i: self._inputs(job, i), slots, self.data,
                     Estimates(self._runtime(job), self._slots_by_node()), intents)
        for place, indexes in list(picks.assign.items()):
            del indexes[cap:]
            cap -= len(indexes)
            if not indexes:
                del picks.assign[place]
                continue
            node = self.workers[WorkerId(place)].info.data_node
            for i in indexes:
                if intents.get(i) not in (None, node):
                    del intents[i]
        intents.update(picks.intents)
        for path, node in picks.copies:
            self.copies.append(Replicate(path, node, self.data.sizes.get(path, 0)))
            self.copy_log.append((path, node))
        for index, why in picks.missing.items():
            self._fail_missing(job, index, why, now)
        if picks.waiting:
            self.data_waits[job.id] = picks.waiting
        else:
            self.data_waits.pop(job.id, None)
        return picks

    def _fail_missing(self, job: JobRun, index: int, why: str, now: float) -> None:
        """A task whose input does not exist fails, saying so (a job that asked to be refused for it was
        checked at submit: the file went away since)."""
        if index in job.retry:
            attempt, _ = job.retry.pop(index)
        elif job.fresh.discard(index):
            attempt = 1
        else:
            return
        job.failed += 1
        job.failed_idx.add(index)
        job.started = True
        reason = f"tiercel: {why}\n".encode()
        report = Report(job.id, index, attempt, Outcome.FAILED, None, now, now, b"", reason)
        self._missing.append(AttemptRecord(report, True, WorkerId("")))
        self._missing_jobs[job.id] = job

    def _recheck(self, now: float) -> list[Effect]:
        """Stamp the new unreadable marks; ask Gfarm again about the files of those passed over long enough."""
        paths: set[Path] = set()
        for key, since in self.marks.items():
            if since is None:
                self.marks[key] = now
            elif key not in self.rechecking and now - since >= self.data.recheck_after:
                self.rechecking.add(key)
                paths.add(key[0])
        return [Relocate(tuple(sorted(paths)))] if paths else []

    def take_data_effects(self, now: float) -> list[Effect]:
        """What the dispatch asks of the shell besides tasks: the records of tasks failed for missing inputs
        and their jobs' ends, and files to locate again."""
        rechecks = self._recheck(now) if self.marks else []
        if not self._missing:
            return rechecks
        effects: list[Effect] = [*rechecks, Persist(self._missing)]
        for job in self._missing_jobs.values():
            if job.id in self.jobs:
                effects.extend(self._maybe_end(job))
        self._missing, self._missing_jobs = [], {}
        return effects

    def take_copies(self) -> list[Replicate]:
        out, self.copies = self.copies, []
        return out

    def forget_data(self, job_id: JobId) -> None:
        self.data_jobs.discard(job_id)
        self.intents.pop(job_id, None)
        self.runtimes.pop(job_id, None)
        self.data_waits.pop(job_id, None)

    def data_costs(self, job: JobRun, workers: Sequence[WorkerRun]) -> list[tuple[str, Node | None, bool, int]]:
        """explain's table for the job's first waiting task: each connected worker, its node, whether it
        holds every input, and the bytes to copy there."""
        pending = self._pending(job)[:1]
        if not pending:
            return []
        slots = [Slot(w.info.name, w.info.data_node, w.credit) for w in workers]
        return costs(self._inputs(job, pending[0]), slots, self.data)
