"""A worker's slots: the threads that run its tasks, and the frames that carry their results back.

A base of the worker agent (``Agent`` in worker/agent.py), which owns and sets the state declared
here. One thread per slot takes tasks from ``_work`` and, when one ends, takes the next queued task
itself, without waiting for the event loop; finished tasks land in ``_done`` and the loop is woken
once per frame, not once per task. A busy worker's results gather for up to FLUSH_WAIT (or FLUSH_MAX
of them) and go as one frame with the slots they freed.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import websockets

from tiercel.core.model import JobId, JobSpec, Outcome, Report, TaskRef
from tiercel.wire.codec import encode, pack
from tiercel.wire.messages import Results
from tiercel.worker.options import Link, WorkerOptions
from tiercel.worker.runner import Handle, run_task
from tiercel.worker.spawn import Spawner

Key = tuple[JobId, int]

PREFETCH_SECONDS = 0.05  # adaptive prefetch keeps about this much work queued per slot
PREFETCH_MAX = 256
# Longest a finished result of a busy worker waits to be sent with others. Each frame costs the manager
# a commit, an acknowledgement and a dispatch: at 25 ms rather than 10 its CPU a task at 2 slots of
# /bin/true went from 43-48 to 29-37 us; prefetch keeps 50 ms of work queued, so slots do not run dry.
FLUSH_WAIT = 0.025
FLUSH_MAX = 512  # ... or until this many have gathered


@dataclass
class Running:
    ref: TaskRef
    spec: JobSpec
    handle: Handle = field(default_factory=Handle)


class Slots:
    """Running tasks and sending their results: the part of the agent its slot threads share."""

    opts: WorkerOptions
    prefetch: int
    adaptive: bool
    avg_run: float
    specs: dict[JobId, JobSpec]
    queued: deque[TaskRef]
    running: dict[Key, Running]
    unacked: dict[tuple[int, int, int], Report]
    outbox: list[Report]
    credit_due: int
    cleanups: dict[JobId, JobSpec]
    free: int
    ws: Link | None
    base_env: dict[str, str]
    last_busy: float
    stopping: bool
    tasks_run: int
    busy: bool
    retiring: bool
    _work: queue.SimpleQueue[Running | None]
    _done: deque[tuple[Running, Report]]
    _wake_pending: bool
    _lock: threading.Lock
    _flush_timer: asyncio.TimerHandle | None
    _flush_scheduled: bool
    _loop: asyncio.AbstractEventLoop | None
    _spawn: Callable[[Any], None]

    def _admit_locked(self) -> Running | None:
        """Take the next local task if its slots are free (caller holds the lock)."""
        if not self.queued or self.stopping:
            return None
        ref = self.queued[0]
        spec = self.specs[ref.job]
        if spec.cpus > self.free:
            return None
        self.queued.popleft()
        self.free -= spec.cpus
        run = Running(ref, spec)
        self.running[(ref.job, ref.index)] = run
        if spec.cleanup:
            self.cleanups[ref.job] = spec
        return run

    def _start_more(self) -> None:
        while True:
            with self._lock:
                run = self._admit_locked()
            if run is None:
                return
            if self.opts.executor == "noop":
                now = time.time()
                with self._lock:
                    self.running.pop((run.ref.job, run.ref.index), None)
                    self.free += run.spec.cpus
                self._finished(run, Report(run.ref.job, run.ref.index, run.ref.attempt, Outcome.DONE, 0, now, now))
            else:
                self._work.put(run)

    def _slot(self) -> None:
        """A slot thread: run a task, then take the next one itself while there is one."""
        spawner = Spawner()
        try:
            run = self._work.get()
            while run is not None:
                try:
                    report = run_task(run.spec, run.ref, run.handle, base_env=self.base_env,
                                      max_output=self.opts.max_output, data_node=self.opts.data_node,
                                      spawner=spawner)
                except Exception as exc:  # a bug, not the task's failure: report it rather than lose the slot
                    now = time.time()
                    report = Report(run.ref.job, run.ref.index, run.ref.attempt, Outcome.FAILED, None, now, now,
                                    b"", f"tiercel worker: {exc}\n".encode())
                nxt = self._settle(run, report)
                # The loop is woken for the first result of a frame (it starts the frame's timer; the
                # timer takes what finishes meanwhile), and when this slot has nothing left to run.
                if nxt is None or not self._wake_pending:
                    self._wake_pending = True
                    assert self._loop is not None
                    self._loop.call_soon_threadsafe(self._drain_done)
                run = nxt if nxt is not None else self._work.get()
        finally:
            spawner.close()

    def _settle(self, run: Running, report: Report) -> Running | None:
        with self._lock:
            self.running.pop((run.ref.job, run.ref.index), None)
            self.free += run.spec.cpus
            self._done.append((run, report))
            return self._admit_locked()

    def _drain_done(self) -> None:
        self._take_done()
        self._start_more()
        if self._flush_timer is not None:
            self._wake_pending = True  # the frame's timer takes the next results: slots need not wake the loop

    def _take_done(self) -> None:
        self._wake_pending = False  # before taking: a result added after this wakes the loop again
        while self._done:
            run, report = self._done.popleft()
            self._finished(run, report)

    def _finished(self, run: Running, report: Report) -> None:
        """On the loop: queue the result for the manager and return the slots as credit."""
        if not self.stopping:  # a leaving worker takes no new work
            self.credit_due += run.spec.cpus
        self._adapt_prefetch(report.ended - report.started)
        self.tasks_run += 1
        self.last_busy = time.monotonic()
        report.seal = run.ref.seal  # handed back: the manager's proof that this attempt was ours
        self.unacked[(report.job, report.index, report.attempt)] = report
        self.outbox.append(report)
        self._schedule_flush()

    def _adapt_prefetch(self, seconds: float) -> None:
        self.avg_run = 0.8 * self.avg_run + 0.2 * max(seconds, 1e-4)
        if not self.adaptive:
            return
        want = min(PREFETCH_MAX, max(self.opts.slots, math.ceil(self.opts.slots * PREFETCH_SECONDS / self.avg_run)))
        if want > self.prefetch:
            self.credit_due += want - self.prefetch
            self.prefetch = want

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled and self._loop is not None:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        """Send finished results and freed slots.

        A busy worker lets results gather for up to FLUSH_WAIT (or FLUSH_MAX of them), and
        while a frame waits for its acknowledgement (the manager's commit) the next one
        gathers: the busier the worker, the larger its frames and the fewer messages and
        commits per task. An idle worker, or one at the end of its work, sends at once.
        """
        self._flush_scheduled = False
        if self.ws is None or (not self.outbox and not self.credit_due):
            return
        busy = bool(self.running or self.queued)
        if self.outbox and busy and len(self.outbox) < FLUSH_MAX:
            if self._flush_timer is None and self._loop is not None:
                self._flush_timer = self._loop.call_later(FLUSH_WAIT, self._flush_now)
            return
        self._flush_now()

    def _flush_now(self) -> None:
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        if self._done:
            self._take_done()
            self._start_more()
        ws = self.ws
        # Busy or retiring, freed slots are not offered: the next hello counts them afresh.
        credit = 0 if self.busy or self.retiring else self.credit_due
        if ws is None or (not self.outbox and not credit):
            return
        frame = pack([encode(Results(self.outbox, credit))])
        self.outbox = []
        self.credit_due = 0
        self._spawn(send_quietly(ws, frame))


async def send_quietly(ws: Link, frame: bytes) -> None:
    # A lost frame is re-sent in the next hello: results stay unacked until the manager confirms.
    with contextlib.suppress(websockets.exceptions.WebSocketException):
        await ws.send(frame)
