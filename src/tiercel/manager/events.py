"""What the manager tells the world about jobs: their summaries, and the fan-out of job events."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from tiercel.core.model import Counts, JobId, JobSpec, JobState, UserName

MAX_QUEUED_EVENTS = 10_000  # a subscriber that reads no more misses events rather than growing without bound


@dataclass
class JobSummary:
    id: JobId
    owner: UserName
    spec: JobSpec
    submitted: float
    state: JobState
    counts: Counts
    ended: float | None = None
    waiting: str | None = None
    reason: str | None = None  # why it ended before all its tasks ran

    def to_json(self) -> dict[str, Any]:
        c = self.counts
        return {
            "id": self.id, "name": self.spec.name, "owner": self.owner, "state": self.state.value,
            "total": c.total, "queued": c.queued, "running": c.running, "done": c.done,
            "failed": c.failed, "cancelled": c.cancelled, "submitted": self.submitted,
            "ended": self.ended, "command": list(self.spec.command), "waiting": self.waiting,
            "reason": self.reason, "held": self.spec.held, "max_running": self.spec.max_running,
            "max_failures": self.spec.max_failures, "priority": self.spec.priority,
        }


@dataclass
class Events:
    """Fan-out of job events to event-stream subscribers and in-process listeners."""

    queues: set[asyncio.Queue[dict[str, Any]]] = field(default_factory=set)
    on_job_ended: list[Callable[[JobSummary], Awaitable[None] | None]] = field(default_factory=list)
    waiting: dict[int, set[asyncio.Future[None]]] = field(default_factory=dict)  # requests waiting for a job's end

    stopped: bool = False  # the server stops serving: nobody is held any longer

    async def until_ended(self, job: int, timeout: float) -> None:
        """Return when the job ends, or after ``timeout`` seconds, or when the server stops, whichever
        comes first."""
        if self.stopped:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiters = self.waiting.setdefault(job, set())
        waiters.add(fut)
        try:
            await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            pass
        finally:
            waiters.discard(fut)
            if not waiters and self.waiting.get(job) is waiters:
                del self.waiting[job]

    def job_ended(self, job: int) -> None:
        for fut in self.waiting.pop(job, ()):
            if not fut.done():
                fut.set_result(None)

    def stop(self) -> None:
        """Answer every request held for a job's end now (the server waits for them before it stops)."""
        self.stopped = True
        for job in list(self.waiting):
            self.job_ended(job)

    def publish(self, event: dict[str, Any]) -> None:
        for q in list(self.queues):
            if q.qsize() < MAX_QUEUED_EVENTS:
                q.put_nowait(event)
