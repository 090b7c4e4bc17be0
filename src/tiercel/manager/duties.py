"""The manager's periodic duties, paced here and carried out by the shell's commands.

Liveness (silent workers' tasks re-queued), the end of the restart hold, and progress
events for jobs whose counts moved. A thin loop around synchronous calls, one tree of
tasks with the server: cancelled when the manager stops.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from tiercel.core.engine import Engine
from tiercel.core.model import JobId
from tiercel.manager.events import Events
from tiercel.manager.queries import Queries
from tiercel.manager.settings import Settings


class Shell(Protocol):
    """The shell, as its duties need it."""

    engine: Engine
    events: Events
    queries: Queries
    settings: Settings

    def check_liveness(self) -> None: ...
    def end_hold(self) -> None: ...


class Progress:
    """Publishes a job_progress event for each job whose counts changed since the last look."""

    def __init__(self, shell: Shell) -> None:
        self.shell = shell
        self.seen: dict[JobId, tuple[int, int, int, int]] = {}

    def publish(self) -> None:
        live = self.shell.queries
        jobs = self.shell.engine.jobs
        for job_id in [j for j in self.seen if j not in jobs]:  # ended: its end is an event of its own
            del self.seen[job_id]
        for job_id, job in jobs.items():
            if job.spec.hops:
                continue  # a peer's range: one job of the origin's, whose progress is told there
            key = (job.pending, len(job.running), job.done, job.failed)
            if self.seen.get(job_id) != key:
                self.seen[job_id] = key
                s = live.live(job_id)
                if s is not None:
                    self.shell.events.publish({"event": "job_progress", "job": s.to_json()})


async def run(shell: Shell) -> None:
    tick = min(0.5, shell.settings.worker_timeout / 4)
    progress = Progress(shell)
    was_held = shell.queries.held()
    while True:
        await asyncio.sleep(tick)
        shell.check_liveness()
        held = shell.queries.held()
        if was_held and not held:
            shell.end_hold()
        was_held = held
        progress.publish()
