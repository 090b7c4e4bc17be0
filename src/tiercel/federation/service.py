"""The peers together: their links, summaries both ways, round trips, time-outs, and `tiercel peers`.

The server builds one ``Federation`` when the config has ``[peers.NAME]`` tables and gives it to the
shell as its peer hooks (manager/peerhooks.py). ``run`` keeps a link out to each peer with a
``url`` and paces the rest: summaries and pings each ``summary_interval``, results of forwarded
work every ``FLUSH`` seconds, and the time-outs that take ranges back from a silent peer.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
from collections.abc import Sequence
from typing import Any

from starlette.websockets import WebSocket

from tiercel.core.federation import SiteSummary, check_sites, shares
from tiercel.core.model import AttemptRecord, JobId, JobState
from tiercel.core.sites import Limits, Mode, SiteInfo
from tiercel.federation import link
from tiercel.federation.inbound import Inbound
from tiercel.federation.origin import Origin, site_of
from tiercel.federation.peers import PeerState
from tiercel.manager.auth import Identity
from tiercel.peerconfig import Peer
from tiercel.store import SaveSiteJob
from tiercel.wire.peer import (
    PEER_PROTOCOL_VERSION,
    Accepted,
    Cancel,
    Forward,
    PeerHello,
    PeerMessage,
    PeerResults,
    Ping,
    Pong,
    Refused,
    ResultsAck,
    Summary,
)

log = logging.getLogger("tiercel.peers")

FLUSH = 0.05  # seconds between sends of settled forwarded tasks back to their origins
ON_CHANGE = 0.25  # seconds between looks at this manager's own sites: a change is told to the peers at once


class Federation:
    def __init__(self, manager: Any, peers: dict[str, Peer]) -> None:
        self.manager = manager
        now = manager.clock()
        self.peers = {name: PeerState(cfg, now) for name, cfg in peers.items()}
        self.manager_id = ""
        self.origin = Origin(self)
        self.inbound = Inbound(self)
        self._last_summary: dict[str, float] = {}
        self._sent_sites: tuple[SiteSummary, ...] = ()  # the sites of the last summaries sent
        self._sites_checked = 0.0
        self.caps: dict[str, int] = {}  # each peer's share of the work waiting here (core.federation.shares)

    # ---- the shell's hooks (manager/peerhooks.py) -----------------------------------------

    def sites(self) -> list[SiteInfo]:
        out = []
        for p in self.peers.values():
            if not p.cfg.forward or p.summary_at is None:
                continue
            s = p.sites
            lim = Limits(max((x.max_cpus or x.slots_total for x in s), default=None),
                         max((x.max_memory_mb or 0 for x in s), default=0) or None,
                         max((x.max_walltime or 0 for x in s), default=0) or None,
                         frozenset().union(*(x.tags for x in s)) if s else frozenset())
            problem = None if p.up else f"the link to peer {p.name} is down ({p.link_why or p.link_state})"
            out.append(SiteInfo(site_of(p.name), "peer", Mode.PEER, lim, problem))
        return out

    def site_rows(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for p in self.peers.values():
            for s in p.sites:
                rows.append({"name": f"{p.name}/{s.name}", "kind": s.kind, "mode": "peer", "peer": p.name,
                             "state": "ok" if p.up else "down", "slots_total": s.slots_total,
                             "slots_free": s.slots_free, "queued": s.queued, "running": s.running,
                             "batch_jobs": 0, "last_poll": p.summary_at, "last_error": None if p.up else p.link_why,
                             "last_error_at": None, "commands": {}})
        return rows

    def forwarded(self, job: JobId) -> list[dict[str, Any]]:
        return self.origin.forwarded(job)

    def durable(self, records: list[AttemptRecord]) -> None:
        if self.inbound.by_job:
            self.inbound.durable(records)

    def job_ended(self, job: JobId, state: JobState, forwarded_here: bool) -> None:
        if forwarded_here:
            self.inbound.job_ended(job)
        else:
            self.origin.job_ended(job)

    def restore(self, rows: Sequence[SaveSiteJob]) -> None:
        key = self.manager.store.meta("seal_key") or ""
        self.manager_id = hashlib.sha256(f"tiercel-manager:{key}".encode()).hexdigest()[:16]
        self.origin.restore([r for r in rows if r.site.startswith("peer:")])
        self.inbound.restore([r for r in rows if r.site.startswith("from:")])
        self.manager.sites_changed(pump=False)

    # ---- links (link.Handler) ---------------------------------------------------------

    def hello(self) -> PeerHello:
        return PeerHello(self.manager_id, self.manager.settings.url)

    def opened(self, conn: link.Conn) -> str | None:
        p = self.peers[conn.peer]
        hello = conn.remote
        assert hello is not None
        if hello.version != PEER_PROTOCOL_VERSION:
            return f"peer protocol {hello.version}; this manager speaks {PEER_PROTOCOL_VERSION}"
        if hello.manager == self.manager_id:
            return "this is the manager itself: a peer's url must be another manager"
        if p.remote_id is not None and p.remote_id != hello.manager:
            log.warning("peer %s is another manager than before (%s, was %s)", p.name, hello.manager, p.remote_id)
        was_up = p.up
        p.remote_id = hello.manager
        p.conns = [c for c in p.conns if not c.closed] + [conn]
        p.link_state, p.link_why, p.down_since = "up", None, None
        p.last_heard = self.manager.clock()
        log.info("peer %s: link up (%s, manager %s)", p.name, conn.direction, hello.manager)
        if not was_up:
            self._send_summary(p)
            self.origin.link_up(p)
            self.inbound.link_up(p)
            self.manager.sites_changed()
        return None

    def closed(self, conn: link.Conn) -> None:
        p = self.peers[conn.peer]
        p.messages_out_before += sum(c.sent_messages for c in p.conns if c is conn or c.closed)
        p.conns = [c for c in p.conns if c is not conn and not c.closed]
        if not p.up:
            p.link_state = "down"
            p.down_since = self.manager.clock()
            log.warning("peer %s: link down", p.name)
            self.origin.refresh(p)
            self.manager.sites_changed()

    def refuse(self, conn: link.Conn, why: str) -> None:
        self.refusal(self.peers[conn.peer], why)

    def refusal(self, p: PeerState, why: str, *, theirs: bool = False) -> None:
        """Something refused, either way: logged, counted and shown in `tiercel peers`."""
        p.refusals.append((self.manager.clock(), why))
        if theirs:
            p.refused_by_it += 1
        else:
            p.refused += 1
        log.warning("peer %s: %s", p.name, why)

    def message(self, conn: link.Conn, msg: PeerMessage) -> None:
        p = self.peers[conn.peer]
        p.messages_in += 1
        p.last_heard = self.manager.clock()
        match msg:
            case Summary():
                self._summary(p, msg)
            case Ping(sent):
                conn.send(Pong(sent))
            case Pong(sent):
                p.rtt = max(0.0, self.manager.clock() - sent)
            case Forward():
                self.inbound.forward(p, msg)
            case Accepted():
                self.origin.accepted(p, msg)
            case Refused():
                self.origin.refused(p, msg)
            case Cancel():
                self.inbound.cancel(p, msg)
            case PeerResults():
                self.origin.results(p, msg)
            case ResultsAck():
                self.inbound.ack(p, msg)
            case PeerHello():
                self.refusal(p, "a second hello on one link; dropped")

    def send(self, peer: str, msg: PeerMessage) -> bool:
        c = self.peers[peer].conn()
        if c is None:
            return False
        c.send(msg)
        return True

    def _summary(self, p: PeerState, msg: Summary) -> None:
        why = check_sites(msg.sites)
        if why is not None:
            self.refusal(p, f"a summary with nonsense values, ignored: {why}")
            return
        changed = msg.sites != p.sites or p.summary_at is None
        p.sites, p.running_ours = msg.sites, msg.running_yours
        p.started = dict(msg.started)
        p.summary_at = self.manager.clock()
        if changed:
            self.manager.sites_changed(pump=False)
        self.origin.refresh(p)

    def _shares(self) -> dict[str, int]:
        """How the work that may leave splits between home and the peers, in proportion to their room."""
        engine = self.manager.engine
        waiting = sum(j.startable for j in engine.jobs.values() if not j.spec.hops and j.spec.site is None)
        loads = engine.site_loads()
        local = sum(loads[s.name].free for s in engine.sites if s.mode is not Mode.PEER and s.name in loads)
        offers = {p.name: sum(s.slots_free for s in p.sites) + p.running_ours for p in self.peers.values() if p.up}
        return shares(waiting + sum(self.origin.in_flight(n) for n in offers), local, offers)

    def _send_summary(self, p: PeerState) -> None:
        running, started = self.inbound.summary_for(p.name)
        self.send(p.name, Summary(self._sent_sites or self.local_sites(), running, started))
        self.send(p.name, Ping(self.manager.clock()))

    def local_sites(self) -> tuple[SiteSummary, ...]:
        """This manager's own sites as a peer sees them (never another peer's: offers do not travel on)."""
        engine = self.manager.engine
        out = []
        for info in engine.sites:
            if info.mode is Mode.PEER:
                continue
            loads, queued, running = self.manager.queries.site_load(info.name)
            lim = info.limits
            tags = lim.tags
            if info.mode is Mode.POOL:
                tags = tags.union(*(w.info.tags for w in engine.workers.values()
                                    if w.connected and w.info.site == info.name))
            out.append(SiteSummary(info.name, info.kind, loads.total + info.headroom, loads.free + info.headroom,
                                   lim.max_cpus, lim.max_memory_mb, lim.max_walltime, frozenset(tags), queued,
                                   running))
        return tuple(out)

    # ---- the incoming end of a link -----------------------------------------------------------

    async def accept(self, ws: WebSocket, who: Identity | None) -> None:
        from tiercel.gateways.rest.auth import refuse

        if who is None or not who.may_peer:
            await refuse(ws, 401 if who is None else 403, "a peer token is required: 'tiercel token create "
                                                          "--role peer --user NAME' on this manager")
            return
        if who.user not in self.peers:
            log.warning("a peer token of user %s connected, but there is no [peers.%s] table", who.user, who.user)
            await refuse(ws, 403, f"this manager has no [peers.{who.user}] table for the peer token's user")
            return
        await link.accept(ws, who.user, self, self.manager.tokens.on_revoke.setdefault(who.digest, set()))

    # ---- the loops -------------------------------------------------------------------------------

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            for p in self.peers.values():
                if p.cfg.url is not None:
                    tg.create_task(link.connect_out(p.name, p.cfg.url, functools.partial(self._token, p), self,
                                                    functools.partial(self._link_state, p)))
            tg.create_task(self._pace())

    def _token(self, p: PeerState) -> str:
        assert p.cfg.token_file is not None
        return p.cfg.token_file.read_text().strip()

    def _link_state(self, p: PeerState, state: str, why: str | None) -> None:
        if not p.up:
            p.link_state, p.link_why = state, why

    async def _pace(self) -> None:
        while True:
            await asyncio.sleep(FLUSH)
            try:
                self.tick()
            except Exception:  # a bug in one round must not stop federation for good
                log.exception("peers: a round of summaries and time-outs failed")

    def tick(self) -> None:
        now = self.manager.clock()
        self.inbound.flush()
        changed = False
        if now - self._sites_checked >= ON_CHANGE:
            self._sites_checked = now
            sites = self.local_sites()
            changed, self._sent_sites = sites != self._sent_sites, sites
            self.caps = self._shares()
        for p in self.peers.values():
            if p.up and p.last_heard is not None and now - p.last_heard > p.cfg.timeout:
                log.warning("peer %s: nothing heard for %.0fs (time-out %gs): the link is given up", p.name,
                            now - p.last_heard, p.cfg.timeout)
                for c in p.conns:
                    c.abort()
            if p.up and (changed or now - self._last_summary.get(p.name, 0.0) >= p.cfg.summary_interval):
                self._last_summary[p.name] = now
                self._send_summary(p)
            self.origin.check(p, now)

    # ---- `tiercel peers` ---------------------------------------------------------------------

    def rows(self) -> list[dict[str, Any]]:
        out = []
        for p in self.peers.values():
            c = p.conn()
            offer_total = sum(s.slots_total for s in p.sites)
            offer_free = sum(s.slots_free for s in p.sites)
            out.append({
                "name": p.name, "url": p.cfg.url, "user": p.cfg.user, "manager": p.remote_id,
                "state": "up" if p.up else p.link_state, "why": None if p.up else p.link_why,
                "link": c.direction if c is not None else None,
                "rtt_ms": None if p.rtt is None else round(p.rtt * 1000, 1),
                "last_exchange": p.last_heard, "summary_at": p.summary_at,
                "offer": {"sites": len(p.sites), "slots_total": offer_total, "slots_free": offer_free,
                          "tags": sorted(frozenset().union(*(s.tags for s in p.sites))) if p.sites else []},
                "sites": [{"name": s.name, "kind": s.kind, "slots_total": s.slots_total, "slots_free": s.slots_free,
                           "tags": sorted(s.tags)} for s in p.sites],
                "forwarding": p.cfg.forward, "forwarded_tasks": p.forwarded_tasks,
                **self.origin.rows(p.name), **self.inbound.rows(p.name),
                "messages_in": p.messages_in, "messages_out": p.messages_out,
                "refused": p.refused, "refused_by_it": p.refused_by_it,
                "refusals": [{"at": at, "what": what} for at, what in p.refusals],
            })
        return out
