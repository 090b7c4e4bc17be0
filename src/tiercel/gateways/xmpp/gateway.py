"""The XMPP gateway: the manager logged in to an XMPP server, as Kestrel's manager was.

One XMPP session carries three things:

- chat: users send the Kestrel messages from any chat client and get answers in the same
  dict syntax (``chat``); who may talk is the JID directory's business (``jids``), each
  JID is rate-limited, and when a job ends its submitter gets
  ``{'type':'job_finished', 'job_id': N}``;
- ad-hoc commands (XEP-0050) for clients with command menus (``adhoc``);
- XMPP workers: the worker protocol in stanzas, and their presence (``workers``).

When the server goes away the manager keeps running and logs in again with backoff;
replies and job_finished notices due meanwhile are kept (up to ``PENDING_MAX``) and sent on
return. A bug in handling one message or one worker is logged and that one is dropped; should
the gateway itself fail, it is started again rather than taking the manager down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict, deque
from typing import Any

import slixmpp

from tiercel.core.model import JobId, UserName
from tiercel.gateways.xmpp import kestrel
from tiercel.gateways.xmpp.adhoc import AdHoc
from tiercel.gateways.xmpp.chat import Answer, Chat, rate_limited, refusal
from tiercel.gateways.xmpp.config import XmppConfig
from tiercel.gateways.xmpp.jids import JidDirectory
from tiercel.gateways.xmpp.link import Assembler, Connector, make_client, on_frames
from tiercel.gateways.xmpp.ratelimit import RateLimits
from tiercel.gateways.xmpp.workers import XmppWorkers
from tiercel.manager.events import JobSummary
from tiercel.manager.shell import Manager

log = logging.getLogger("tiercel.xmpp")

PENDING_MAX = 10_000  # notices kept while the server is away
SUBMITTERS_MAX = 100_000  # chat-submitted jobs whose submitting JID is remembered
REFUSED_RETRY = 60.0  # after the server refused the password, try again this much later
REFUSE_EVERY = 600.0  # a JID not allowed gets one polite refusal in this time, then silence
REFUSED_MAX = 10_000  # JIDs whose last refusal is remembered
RESTART_DELAY = 5.0  # after the gateway failed, start it again this much later
STATUS = "Tiercel manager: send help for the message forms"


class XmppGateway:
    def __init__(self, manager: Manager, config: XmppConfig, jids: JidDirectory) -> None:
        self.manager = manager
        self.config = config
        self.jids = jids
        self.client = make_client(config.jid, config.secret(), config.endpoint(),
                                  xep_0030={}, xep_0004={}, xep_0050={}, xep_0199={})
        self.connector = Connector(self.client, config.endpoint(), on_refused=self._refused)
        self.chat = Chat(manager, config.max_status_jobs)
        self.workers = XmppWorkers(manager, self.client, config)
        self.limits = RateLimits(config.rate_burst, config.rate_per_minute)
        self.adhoc = AdHoc(self.client, self.chat, self.jids.user_of, self._remember, self._adhoc_limit)
        self.refused: OrderedDict[str, float] = OrderedDict()
        self.assembler = Assembler()
        self.submitted_by: dict[JobId, str] = {}
        self.pending: deque[tuple[str, str]] = deque(maxlen=PENDING_MAX)
        self.inbox: asyncio.Queue[tuple[slixmpp.JID, str, str, UserName]] = asyncio.Queue()
        self.answering: str | None = None
        self.held: list[tuple[str, str]] = []
        self.client.auto_authorize = None  # decided per JID in _subscribe
        self.client.auto_subscribe = False
        self.client.add_event_handler("session_start", self._online)
        self.client.add_event_handler("disconnected", self._offline)
        self.client.add_event_handler("message", self._message)
        on_frames(self.client, self._frame)
        self.client.add_event_handler("presence", self._presence)
        self.client.add_event_handler("presence_subscribe", self._subscribe)
        manager.events.on_job_ended.append(self._job_ended)

    @property
    def bare(self) -> str:
        return self.config.bare

    # ---- life cycle --------------------------------------------------------------

    async def run(self) -> None:
        """Until cancelled: stay logged in, answer chat messages, ping XMPP workers."""
        log.info("XMPP gateway: logging in as %s", self.config.jid)
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.connector.run())
                tg.create_task(self._answer_forever())
                tg.create_task(self.workers.ping_forever())
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(self.connector.stop("the manager is stopping"))
            with contextlib.suppress(ValueError):
                self.manager.events.on_job_ended.remove(self._job_ended)

    def _refused(self) -> float:
        log.error("the XMPP server refused the password of %s; trying again in %.0fs", self.bare, REFUSED_RETRY)
        return REFUSED_RETRY

    async def _online(self, _: Any) -> None:
        self.client.send_presence(pstatus=STATUS)
        self.adhoc.register()
        log.info("XMPP gateway online as %s", self.client.boundjid)
        while self.pending and self.connector.online.is_set():
            to, body = self.pending.popleft()
            self.client.send_message(mto=slixmpp.JID(to), mbody=body, mtype="chat")
        with contextlib.suppress(Exception):
            await self.client.get_roster(timeout=10)

    def _offline(self, _: Any) -> None:
        if self.workers.peers:
            log.warning("XMPP gateway offline: %d XMPP worker(s) disconnected", len(self.workers.peers))
        self.workers.on_offline()
        self.assembler = Assembler()

    # ---- incoming ----------------------------------------------------------------

    def _frame(self, msg: Any) -> None:
        sender = msg["from"]
        bare = str(sender.bare)
        if not self.config.may_work(bare):  # nothing is kept for a stranger; the last piece gets a refusal
            if msg["tiercel_frame"]["more"] != "1" and self.limits.take(bare, time.monotonic()) == "ok":
                self.workers.refuse(sender)
            return
        frame = self.assembler.feed(str(sender), msg)
        if frame is not None:
            self.workers.on_frame(sender, frame)

    def _message(self, msg: Any) -> None:
        sender = msg["from"]
        body = msg["body"]
        if msg["type"] not in ("chat", "normal") or not body or str(sender.bare) == self.bare:
            return
        bare = str(sender.bare)
        user = self.jids.user_of(bare)
        if user is None:  # strangers: one refusal now and then, never a rate-limit reply
            self._refuse(sender, bare)
            return
        verdict = self.limits.take(bare, time.monotonic())
        if verdict != "ok":
            if verdict == "warn":
                log.warning("rate limit: ignoring messages from %s for now", bare)
                self._reply(sender, rate_limited(self.config.rate_burst, self.config.rate_per_minute))
            return
        self.inbox.put_nowait((sender, bare, body, user))

    def _refuse(self, sender: slixmpp.JID, bare: str) -> None:
        """One polite refusal per REFUSE_EVERY, then nothing: answers must not become a flood."""
        now = time.monotonic()
        last = self.refused.get(bare)
        if last is not None and now - last < REFUSE_EVERY:
            return
        log.info("refused a chat message from %s (not a known JID)", bare)
        self.refused[bare] = now
        self.refused.move_to_end(bare)
        while len(self.refused) > REFUSED_MAX:
            self.refused.popitem(last=False)
        self._reply(sender, refusal(bare))

    def _adhoc_limit(self, bare: str) -> str | None:
        if self.limits.take(bare, time.monotonic()) == "ok":
            return None
        return rate_limited(self.config.rate_burst, self.config.rate_per_minute)

    async def _answer_forever(self) -> None:
        """One message at a time, in order: a status right after a job sees that job."""
        while True:
            sender, bare, body, user = await self.inbox.get()
            self.answering = bare  # a job this message ends is announced after the answer, not before
            try:
                answer = await self.chat.answer(user, body)
            except Exception:  # a bug must not silence the gateway
                log.exception("chat message from %s could not be answered", bare)
                answer = Answer(kestrel.reply("error", reason="the manager failed to handle that message; "
                                                              "its log says why"))
            finally:
                self.answering = None
            try:
                self._remember(bare, answer)
                self._reply(sender, answer.text)
                held, self.held = self.held, []
                for to, notice in held:
                    self._notify(to, notice)
            except Exception:
                log.exception("the answer to %s could not be sent", bare)

    def _remember(self, bare: str, answer: Answer) -> None:
        if answer.submitted is not None:
            self.submitted_by[answer.submitted] = bare
            while len(self.submitted_by) > SUBMITTERS_MAX:
                del self.submitted_by[next(iter(self.submitted_by))]

    def _presence(self, presence: Any) -> None:
        if str(presence["from"].bare) == self.bare:
            return
        if presence["type"] == "unavailable":
            self.assembler.forget(str(presence["from"]))  # the rest of a frame it was sending never comes
        self.workers.on_presence(presence)

    def _subscribe(self, presence: Any) -> None:
        """Users and workers we know may see the manager's presence; anyone else is declined."""
        bare = str(presence["from"].bare)
        allowed = self.jids.user_of(bare) is not None or self.config.may_work(bare)
        self.client.send_presence(pto=bare, ptype="subscribed" if allowed else "unsubscribed")

    # ---- outgoing ----------------------------------------------------------------

    def _reply(self, to: slixmpp.JID, body: str) -> None:
        self._notify(str(to), body)  # a job_started must not be lost to a server that just went away

    def _job_ended(self, summary: JobSummary) -> None:
        first = self.submitted_by.pop(summary.id, None)
        targets = [first] if first is not None else self.jids.jids_of(summary.owner)
        for to in targets:
            body = kestrel.job_finished(int(summary.id))
            if to == self.answering:
                self.held.append((to, body))
            else:
                self._notify(to, body)

    def _notify(self, to: str, body: str) -> None:
        if self.connector.online.is_set():
            self.client.send_message(mto=slixmpp.JID(to), mbody=body, mtype="chat")
        else:
            self.pending.append((to, body))

