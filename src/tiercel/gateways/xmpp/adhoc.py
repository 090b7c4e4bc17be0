"""Ad-hoc commands (XEP-0050) for chat clients with command menus: submit, status, cancel, pool.

They answer with the same dict-syntax replies as the chat messages, as the command's note,
and obey the same rules: only a JID that maps to a Tiercel user may use them, a user sees
and cancels only their own jobs, and each JID's requests count against the same rate limit
as its chat messages.

Sessions are kept here, not by slixmpp's timer (which, on expiry, sends the user a cancel
request nobody asked for and keeps a copy of the session): a finished session is forgotten at
the next request, a form left unanswered for ``SESSION_TTL`` too, and at most
``SESSIONS_MAX`` are kept.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import slixmpp
from slixmpp.exceptions import XMPPError

from tiercel.core.model import MAX_JOB_ID, UserName
from tiercel.core.problems import Problem
from tiercel.gateways.xmpp import kestrel
from tiercel.gateways.xmpp.chat import Answer, Chat, refusal
from tiercel.jobspec.request import spec_from_mapping

COMMANDS = {"submit": "Submit a job", "status": "Status of my jobs", "cancel": "Cancel jobs",
            "pool": "Pool status"}
SUBMIT_FIELDS = (("command", "Command (run with the task index as its last argument)", True),
                 ("queue", "Number of tasks (indexes 0..N-1)", True),
                 ("requires", "Required worker tags, comma-separated", False),
                 ("cleanup", "Cleanup command, run once per worker after the job", False),
                 ("name", "Job name", False))

SESSION_TTL = 600.0  # seconds a form may wait for its answer
SESSIONS_MAX = 1_000

Session = dict[str, Any]
Step = Callable[[Any, Session], Awaitable[Session]]


class AdHoc:
    def __init__(self, client: slixmpp.ClientXMPP, chat: Chat, user_of: Callable[[str], UserName | None],
                 on_answer: Callable[[str, Answer], None], allow: Callable[[str], str | None]) -> None:
        self.client = client
        self.chat = chat
        self.user_of = user_of
        self.on_answer = on_answer  # the gateway remembers who submitted what, for job_finished
        self.allow = allow  # None to go on, else why this JID must wait (its rate limit)
        self.answering: set[str] = set()  # sessions whose form answer is being acted on

    def register(self) -> None:
        """On each session start: the command list is reset whenever the client binds."""
        handlers: dict[str, Callable[[Any, Session], Awaitable[Session] | Session]] = {
            "submit": self._submit, "status": self._status, "cancel": self._cancel, "pool": self._pool}
        for node, name in COMMANDS.items():
            self.client.plugin["xep_0050"].add_command(node=node, name=name, handler=handlers[node])

    @property
    def sessions(self) -> dict[str, Session]:
        sessions: dict[str, Session] = self.client.plugin["xep_0050"].sessions
        return sessions

    def _sweep(self, now: float) -> None:
        """Forget finished sessions, forms unanswered for SESSION_TTL, and the oldest beyond SESSIONS_MAX.

        Sessions being answered right now (slixmpp deletes those itself once they complete) stay.
        """
        sessions = self.sessions
        for sid, s in list(sessions.items()):
            if sid not in self.answering and (s.get("next") is None or now - s.get("tiercel_seen", now) > SESSION_TTL):
                del sessions[sid]
        for sid in [sid for sid in sessions if sid not in self.answering][:max(0, len(sessions) - SESSIONS_MAX)]:
            del sessions[sid]

    def _answer_once(self, session: Session) -> None:
        """A form is acted on once: the same answer sent twice at once is refused the second time."""
        if session["id"] in self.answering:
            raise XMPPError("bad-request", text="this form is being answered already", etype="modify")
        self.answering.add(session["id"])

    def _acting(self, step: Step) -> Step:
        """A form's answer step, marked as being answered while it runs (so it is not swept)."""
        async def act(payload: Any, session: Session) -> Session:
            self._answer_once(session)
            try:
                return await step(payload, session)
            finally:
                self.answering.discard(session["id"])
        return act

    def _user(self, jid: slixmpp.JID, session: Session) -> UserName:
        """The Tiercel user of a request's JID; every request (each step of a form too) passes here."""
        now = time.monotonic()
        if now - session.get("tiercel_seen", now) > SESSION_TTL:
            raise XMPPError("not-allowed", text="this form waited too long for its answer: run the command again",
                            etype="cancel")
        self._sweep(now)
        session["tiercel_seen"] = now
        bare = str(jid.bare)
        wait = self.allow(bare)
        if wait is not None:
            raise XMPPError("resource-constraint", text=wait, etype="wait")
        user = self.user_of(bare)
        if user is None:
            raise XMPPError("forbidden", text=refusal(bare), etype="auth")
        return user

    def _form(self, title: str, instructions: str) -> Any:
        make_form: Callable[..., Any] = self.client.plugin["xep_0004"].make_form
        return make_form(ftype="form", title=title, instructions=instructions)

    @staticmethod
    def _done(session: Session, text: str, kind: str = "info") -> Session:
        session.update(payload=None, next=None, has_next=False, notes=[(kind, text)])
        return session

    # ---- submit --------------------------------------------------------------

    def _submit(self, iq: Any, session: Session) -> Session:
        self._user(iq["from"], session)
        form = self._form("Submit a job", "Runs the command once for each index 0..N-1.")
        for var, label, required in SUBMIT_FIELDS:
            form.add_field(var=var, ftype="text-single", label=label, required=required)
        session.update(payload=form, next=self._acting(self._submitted), has_next=False)
        return session

    async def _submitted(self, payload: Any, session: Session) -> Session:
        user = self._user(session["from"], session)
        values = _values(payload)
        fields: dict[str, Any] = {k: v.strip() for k, v in values.items()
                                  if k in dict.fromkeys(f[0] for f in SUBMIT_FIELDS) and isinstance(v, str)
                                  and v.strip()}
        queue = fields.get("queue", "")
        if queue.isascii() and queue.isdigit():
            fields["queue"] = int(queue)
        spec = spec_from_mapping(fields, max_tasks=self.chat.manager.settings.max_tasks)
        if isinstance(spec, Problem):
            return self._done(session, kestrel.job_rejected(spec.message()), "error")
        answer = await self.chat.submit(user, spec)
        self.on_answer(str(session["from"].bare), answer)
        return self._done(session, answer.text, "info" if answer.submitted else "error")

    # ---- status, pool --------------------------------------------------------

    async def _status(self, iq: Any, session: Session) -> Session:
        return self._done(session, await self.chat.status(self._user(iq["from"], session), None))

    def _pool(self, iq: Any, session: Session) -> Session:
        self._user(iq["from"], session)
        return self._done(session, kestrel.reply("pool", **self.chat.manager.queries.pool()))

    # ---- cancel --------------------------------------------------------------

    async def _cancel(self, iq: Any, session: Session) -> Session:
        user = self._user(iq["from"], session)
        mine = [s for s in await self.chat.mine(user) if not s.state.terminal]
        if not mine:
            return self._done(session, kestrel.reply("cancelled", job_ids=[]))
        form = self._form("Cancel jobs", "Choose one of your unfinished jobs, or all of them.")
        choice = form.add_field(var="job_id", ftype="list-single", label="Job", required=True, value="all")
        choice.add_option(label="all of my jobs", value="all")
        for s in mine:
            c = s.counts
            choice.add_option(label=f"{s.id} {s.spec.name or ' '.join(s.spec.command)[:40]} "
                                    f"({c.done}/{c.total} done)", value=str(s.id))
        session.update(payload=form, next=self._acting(self._cancelled), has_next=False)
        return session

    async def _cancelled(self, payload: Any, session: Session) -> Session:
        user = self._user(session["from"], session)
        value = str(_values(payload).get("job_id") or "all").strip()
        if value != "all" and not (value.isascii() and value.isdigit() and 1 <= int(value) <= MAX_JOB_ID):
            return self._done(session, kestrel.reply("error", reason=f"job_id: {value!r} must be a job number "
                                                                     "or all"), "error")
        text = await self.chat.cancel(user, None if value == "all" else int(value))
        return self._done(session, text, "error" if text.startswith("{'type':'error'") else "info")


def _values(payload: Any) -> dict[str, Any]:
    if isinstance(payload, list):
        payload = payload[0] if payload else None
    if payload is None:
        return {}
    values = payload.get_values()
    return dict(values) if isinstance(values, dict) else {}
