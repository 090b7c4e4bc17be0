"""The Kestrel conversation: what the manager answers to each chat message.

Independent of XMPP: it takes the Tiercel user a message comes from and its text, and
returns the reply in the manual's dict syntax. The chat gateway adds who may talk, rate
limits and the ``job_finished`` notifications around it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from tiercel.core.model import JobId, JobSpec, UserName
from tiercel.core.problems import Problem
from tiercel.gateways.xmpp import kestrel
from tiercel.manager.auth import Identity
from tiercel.manager.events import JobSummary
from tiercel.manager.shell import Manager, Unavailable

log = logging.getLogger("tiercel.chat")


@dataclass(frozen=True)
class Answer:
    text: str
    submitted: JobId | None = None  # the job a 'job' message started


def refusal(jid: str) -> str:
    return (f"Sorry, {jid} is not allowed to use this Tiercel manager. "
            f"Ask its administrator to link your address to your account (tiercel user link-jid {jid} USER).")


def rate_limited(burst: int, per_minute: float) -> str:
    return kestrel.reply("error", reason=f"too many messages: at most {burst} at once and {per_minute:g} a minute; "
                                         "the ones above that were not read, send them again in a little while")


class Chat:
    def __init__(self, manager: Manager, max_status_jobs: int = 20) -> None:
        self.manager = manager
        self.max_status_jobs = max_status_jobs

    async def answer(self, user: UserName, text: str) -> Answer:
        msg = kestrel.parse(text, max_tasks=self.manager.settings.max_tasks)
        if isinstance(msg, kestrel.SubmitJob):
            return await self.submit(user, msg.spec)
        if isinstance(msg, kestrel.Status):
            return Answer(await self.status(user, msg.job_id))
        if isinstance(msg, kestrel.Cancel):
            return Answer(await self.cancel(user, msg.job_id))
        if isinstance(msg, kestrel.Control):
            return Answer(await self.control(user, msg))
        if msg.about == "job":  # a job message that cannot be run: the manual's job_rejected
            return Answer(kestrel.job_rejected(msg.reason))
        return Answer(help_text(msg.reason))

    # ---- job -------------------------------------------------------------

    async def submit(self, user: UserName, spec: JobSpec) -> Answer:
        checked = self.check(user, spec)
        if isinstance(checked, str):
            return Answer(kestrel.job_rejected(checked))
        try:
            summary = await self.manager.submit(user, checked)
        except Unavailable as exc:  # its disk is full: say so rather than pretend
            log.error("chat submission by %s refused: %s", user, exc)
            return Answer(kestrel.job_rejected(str(exc)))
        except Exception as exc:  # the store failed: say so rather than pretend
            log.error("chat submission by %s failed: %s", user, exc)
            return Answer(kestrel.job_rejected("the manager could not store the job; try again later"))
        return Answer(kestrel.job_started(summary.id), summary.id)

    def check(self, user: UserName, spec: JobSpec) -> JobSpec | str:
        """The same checks as every other interface: its queue, reservation and site."""
        admitted = self.manager.admit(user, spec)
        return admitted.message() if isinstance(admitted, Problem) else admitted

    # ---- status ----------------------------------------------------------

    async def status(self, user: UserName, job_id: int | None) -> str:
        if job_id is not None:
            summary = await self.own(user, job_id)
            if summary is None:
                return not_yours(job_id)
            return kestrel.reply("status", **job_fields(summary, detailed=True))
        jobs = await self.mine(user)
        shown = [job_fields(s) for s in jobs[:self.max_status_jobs]]
        if len(jobs) > self.max_status_jobs:
            return kestrel.reply("status", jobs=shown, more=len(jobs) - self.max_status_jobs)
        return kestrel.reply("status", jobs=shown)

    async def own(self, user: UserName, job_id: int) -> JobSummary | None:
        summary = await self.manager.queries.summary(JobId(job_id))
        return summary if summary is not None and summary.owner == user else None

    async def mine(self, user: UserName) -> list[JobSummary]:
        """The user's unfinished jobs (all of them) first, then the most recent ended ones."""
        queries = self.manager.queries
        live = [s for j in reversed(queries.unfinished(user)) if (s := queries.live(j)) is not None]
        seen = {s.id for s in live}
        recent = await queries.jobs(Identity(user, "user"), everyone=False, limit=self.max_status_jobs)
        ended = [s for s in recent if s.id not in seen and s.state.terminal]
        return live + ended

    # ---- cancel ----------------------------------------------------------

    async def cancel(self, user: UserName, job_id: int | None) -> str:
        if job_id is not None:
            summary = await self.own(user, job_id)
            if summary is None:
                return not_yours(job_id)
            if summary.state.terminal:
                return kestrel.reply("error", reason=f"job_id: {job_id} has already ended ({summary.state.value}); "
                                                     "there is nothing to cancel")
            await self.manager.cancel(summary.id)
            return kestrel.reply("cancelled", job_id=job_id)
        ids = await self.manager.cancel_all(user)
        return kestrel.reply("cancelled", job_ids=[int(j) for j in ids])


    # ---- hold, release, retry --------------------------------------------

    async def control(self, user: UserName, msg: kestrel.Control) -> str:
        summary = await self.own(user, msg.job_id)
        if summary is None:
            return not_yours(msg.job_id)
        controls = self.manager.controls
        try:
            if msg.action == "retry":
                done = await controls.retry(summary, failed=True, cancelled=False, tasks=None)
                if isinstance(done, Problem):
                    return kestrel.reply("error", reason=done.message())
                return kestrel.reply("retried", job_id=msg.job_id, tasks=len(done))
            problem = await controls.hold(summary, msg.action == "hold")
        except Unavailable as exc:
            return kestrel.reply("error", reason=str(exc))
        if problem is not None:
            return kestrel.reply("error", reason=problem.message())
        return kestrel.reply("held" if msg.action == "hold" else "released", job_id=msg.job_id)


def not_yours(job_id: int) -> str:
    return kestrel.reply("error", reason=f"job_id: {job_id} is not a job of yours; send {{'type':'status'}} "
                                         "to list yours")


def job_fields(s: JobSummary, detailed: bool = False) -> dict[str, Any]:
    c = s.counts
    out: dict[str, Any] = {"job_id": int(s.id)}
    if s.spec.name:
        out["name"] = s.spec.name
    out.update({"state": s.state.value, "total": c.total, "done": c.done, "failed": c.failed,
                "running": c.running})
    if detailed:
        out.update({"queued": c.queued, "cancelled": c.cancelled})
        if s.waiting:
            out["waiting"] = s.waiting
    return out


def help_text(reason: str) -> str:
    if not reason:
        return kestrel.HELP
    return f"Sorry, {reason}.\n{kestrel.HELP}"
