"""The worker agent: one asyncio loop, a thread per busy slot.

The agent keeps a small local queue (``prefetch`` slots beyond its own) so a
slot never waits a round trip for its next task. Results stay in ``unacked``
until the manager says they are durable; after a lost connection the agent
reconnects with backoff and its hello carries everything it still holds and
every result not yet acknowledged, so nothing it ran is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import random
import signal
import socket
import threading
import time
import uuid
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import websockets
from websockets.asyncio.client import connect

from tiercel import eventloop
from tiercel.client import TiercelError, manager_urls, next_url, standby_active
from tiercel.core.model import JobId, JobSpec, Report, TaskRef, WorkerId, WorkerInfo
from tiercel.wire.codec import WireError, decode_from_manager, encode, pack, unpack
from tiercel.wire.messages import (
    Ack,
    Bye,
    Cleanup,
    Drain,
    Error,
    Heartbeat,
    Hello,
    Kill,
    ManagerMessage,
    Reconnect,
    Tasks,
    Welcome,
)
from tiercel.worker.options import Link, WorkerOptions
from tiercel.worker.runner import run_cleanup
from tiercel.worker.slots import Key, Running, Slots, send_quietly

log = logging.getLogger("tiercel.worker")

STOP_WAIT = 5.0  # on SIGTERM, how long to wait for killed tasks and for the manager's acknowledgements


_DRAIN = pack([encode(Drain())])
_HEARTBEAT = pack([encode(Heartbeat())])


class Agent(Slots):
    busy_by_drain = True  # busy is said with a drain frame (an XMPP worker says it with presence)

    def __init__(self, opts: WorkerOptions) -> None:
        self.opts = opts
        self.id = uuid.uuid4().hex
        self.name = opts.name or f"{socket.gethostname()}-{os.getpid()}"
        # Extra tasks queued locally. Unless fixed by --prefetch, it grows for short tasks so that
        # the queue covers about PREFETCH_SECONDS of work, enough to hide a round trip to the manager.
        self.prefetch = opts.slots if opts.prefetch is None else opts.prefetch
        self.adaptive = opts.prefetch is None
        self.avg_run = 1.0
        self._flush_timer: asyncio.TimerHandle | None = None
        self.specs: dict[JobId, JobSpec] = {}
        self.queued: deque[TaskRef] = deque()
        self.running: dict[Key, Running] = {}
        self.unacked: dict[tuple[int, int, int], Report] = {}
        self.outbox: list[Report] = []
        self.credit_due = 0
        self.cleanups: dict[JobId, JobSpec] = {}
        self.free = opts.slots
        self.ws: Link | None = None
        self.connected_to = opts.manager  # the manager's URL of the session (or where it is, for XMPP)
        # One thread per slot takes tasks from `_work`; finished ones land in `_done` and the loop
        # is woken once per batch rather than once per task.
        self._work: queue.SimpleQueue[Running | None] = queue.SimpleQueue()
        self._done: deque[tuple[Running, Report]] = deque()
        self._wake_pending = False
        self._threads: list[threading.Thread] = []
        # Guards queued, running and free, which slot threads also touch: a slot that
        # finishes a task takes the next one itself, without waiting for the event loop.
        self._lock = threading.Lock()
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tiercel-cleanup")
        self.base_env = dict(os.environ)
        self.heartbeat = 5.0
        self.last_busy = time.monotonic()
        self.stopping = False
        self.tasks_run = 0
        self._flush_scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._background: set[asyncio.Future[Any]] = set()
        # A pilot's end: tasks whose walltime would run past it are not sent to it; from
        # `retire_at` on it takes nothing new, and at `ends_at` it hands back what still runs.
        self.ends_at: float | None = None
        self.retire_at: float | None = None
        self.retiring = False
        self.busy = False  # SIGUSR1 until SIGUSR2: run what is held, take nothing new
        if opts.lifetime is not None:
            self.ends_at = time.time() + opts.lifetime - min(30.0, opts.lifetime * 0.05)
            drain = opts.drain_before if opts.drain_before is not None else min(300.0, opts.lifetime * 0.1)
            self.retire_at = self.ends_at - drain

    def _spawn(self, aw: Any) -> None:
        """Run a coroutine in the background, holding a reference until it ends."""
        fut = asyncio.ensure_future(aw)
        self._background.add(fut)
        fut.add_done_callback(self._background.discard)

    # ---- capacity ------------------------------------------------------

    def _capacity(self) -> int:
        return self.opts.slots + self.prefetch

    # ---- connection ----------------------------------------------------

    def _start(self) -> None:
        """Slot threads and signal handlers, whatever the transport."""
        self._loop = asyncio.get_running_loop()
        for n in range(self.opts.slots):
            t = threading.Thread(target=self._slot, name=f"tiercel-slot-{n}", daemon=True)
            t.start()
            self._threads.append(t)
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                self._loop.add_signal_handler(sig, self._request_stop)
        for sig, busy in ((signal.SIGUSR1, True), (signal.SIGUSR2, False)):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                self._loop.add_signal_handler(sig, self._set_busy, busy)

    async def run(self) -> int:
        try:
            urls = manager_urls(self.opts.manager, "manager")
        except TiercelError as exc:
            log.error("%s", exc)
            return 2
        self._start()
        delay = 0.1
        url = urls[0]
        tried: list[str] = []  # this round's URLs, each tried at most once
        hint: str | None = None  # the active manager a standby named this round
        while not self.stopping:
            tried.append(url)
            active, standby, connected, silent = None, False, False, False
            try:
                async with connect(_ws_url(url), additional_headers={"Authorization": f"Bearer {self.opts.token}"},
                                   max_size=None, open_timeout=10, compression=None,
                                   ping_interval=self.opts.ping_interval, ping_timeout=self.opts.ping_timeout,
                                   close_timeout=self.opts.close_timeout) as ws:
                    connected = True
                    delay = 0.1
                    self.connected_to = url
                    code = await self._session(ws)
                    if code is not None:
                        return code
                    # No close frame from the manager: it fell silent (keepalive) or the network broke.
                    silent = ws.protocol.close_rcvd is None
            except (TimeoutError, OSError, websockets.exceptions.WebSocketException) as exc:
                if isinstance(exc, websockets.exceptions.InvalidStatus):
                    status = exc.response.status_code
                    if status in (401, 403):
                        log.error("the manager at %s refused the token", url)
                        return 2
                    if status == 503:
                        standby, active = standby_active(exc.response.headers, bytes(exc.response.body or b""))
                        if standby:
                            log.info("the manager at %s is a standby; the active one is %s", url,
                                     f"at {active}" if active else "not known yet")
                            hint = active or hint
                silent = connected
                if connected:
                    log.info("lost the manager at %s (%s)", url, exc.__class__.__name__)
                elif not standby:
                    log.info("manager at %s unreachable (%s)", url, exc.__class__.__name__)
            finally:
                self.ws = None
            if self.stopping:
                break
            if self._idle_expired():
                return 0
            if connected:
                # After a session, a new round: the same manager first when it closed the connection
                # (restarted, or handed over: it then names the active one), else the next one.
                tried, hint = [], None
                if silent:
                    url = next_url(urls, url, [url]) or url
            else:
                nxt = next_url(urls, url, tried, active) if len(tried) < len(urls) + 2 else None
                if nxt is not None:  # on to the next manager at once: backoff is between rounds
                    url = nxt
                    continue
                log.info("no manager to work for; trying again in %.1fs", delay)
                url = hint or next_url(urls, url, ()) or url
                tried, hint = [], None
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, self.opts.backoff_max)
        await self._drain_on_stop()
        return 0

    def _set_busy(self, busy: bool) -> None:
        """SIGUSR1: busy, take no new tasks (those held run to the end); SIGUSR2: available again.

        Over WebSocket busy is a drain, and available again is a new session, whose hello
        counts the free slots afresh.
        """
        if busy == self.busy or self.stopping:  # leaving: SIGTERM's own drain and goodbye run their course
            return
        self.busy = busy
        log.info("now %s", "busy: no new tasks" if busy else "available for tasks")
        ws = self.ws
        if ws is None or self.retiring:  # a retiring pilot stays drained either way
            return
        self._spawn(send_quietly(ws, _DRAIN) if busy else ws.close())

    def _request_stop(self) -> None:
        """SIGINT/SIGTERM: stop the tasks, hand their results in, say goodbye, then exit."""
        if self.stopping:
            return
        self.stopping = True
        with self._lock:
            runs = list(self.running.values())
        for run in runs:
            run.handle.cancel()
        self._spawn(self._leave())

    async def _leave(self) -> None:
        deadline = time.monotonic() + STOP_WAIT
        if self.ws is not None:  # first of all, so that nothing new is sent our way
            with contextlib.suppress(websockets.exceptions.WebSocketException):
                await self.ws.send(_DRAIN)
        while (self.running or self._done) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        self._drain_done()
        ws = self.ws
        if ws is not None:
            self._flush_now()
            while self.unacked and self.ws is ws and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            await self._say_bye(ws)

    async def _drain_on_stop(self) -> None:
        deadline = time.monotonic() + STOP_WAIT
        while self.running and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        self.pool.shutdown(wait=False, cancel_futures=True)
        for _ in self._threads:
            self._work.put(None)

    def _idle_expired(self) -> bool:
        """Nothing to run and nothing left to hand in for --idle-exit seconds."""
        idle = self.opts.idle_exit
        return idle is not None and not self.running and not self.queued and not self._done and \
            not self.unacked and time.monotonic() - self.last_busy > idle

    async def _session(self, ws: Link) -> int | None:
        # One snapshot under the lock: every task is either held, or finished with its result
        # among the unacknowledged ones, and the credit matches exactly what is held.
        with self._lock:
            while self._done:
                self._finished(*self._done.popleft())
            held = [*self.queued, *(r.ref for r in self.running.values())]
            used = sum(self.specs[r.job].cpus for r in self.queued) + \
                sum(r.spec.cpus for r in self.running.values())
        self.ws = ws
        self.outbox.clear()
        self.credit_due = 0
        free = 0 if self.busy or self.retiring else max(0, self._capacity() - used)
        info = WorkerInfo(name=self.name, host=socket.gethostname(), slots=self.opts.slots, tags=self.opts.tags,
                          cpus=os.cpu_count() or 1, memory_mb=_memory_mb(), site=self.opts.site,
                          ends_at=self.ends_at, reservation=self.opts.reservation, data_node=self.opts.data_node)
        hello = Hello(WorkerId(self.id), info, free, tuple(held), tuple(self.unacked.values()), tuple(self.cleanups))
        await ws.send(pack([encode(hello)]))
        log.info("connected to the manager at %s as %s", self.connected_to, self.name)
        if self.retiring or (self.busy and self.busy_by_drain):
            await ws.send(_DRAIN)
        beat = asyncio.create_task(self._beat(ws))
        try:
            async for frame in ws:
                if isinstance(frame, str):
                    continue
                for raw in unpack(frame):
                    try:
                        m = decode_from_manager(raw)
                    except WireError as exc:  # a newer manager's message, or a damaged one: skipped
                        log.warning("manager sent %s; skipped", exc)
                        continue
                    code = self._handle(m)
                    if code is not None:
                        return code
                if self._idle_expired():
                    await self._say_bye(ws)
                    return 0
        except websockets.exceptions.ConnectionClosed:
            pass
        finally:
            beat.cancel()
        if self.stopping:
            await self._drain_on_stop()
            return 0
        return None

    async def _say_bye(self, ws: Link) -> None:
        with contextlib.suppress(websockets.exceptions.WebSocketException):
            await ws.send(pack([encode(Bye())]))
            await ws.close()

    async def _beat(self, ws: Link) -> None:
        # Wakes often so that the interval the manager asks for in its welcome applies at once.
        last = time.monotonic()
        with contextlib.suppress(websockets.exceptions.WebSocketException):
            while True:
                await asyncio.sleep(min(self.heartbeat / 2, 0.25))
                if time.monotonic() - last >= self.heartbeat:
                    last = time.monotonic()
                    await ws.send(_HEARTBEAT)
                await self._near_end(ws)
                if self._idle_expired():
                    await self._say_bye(ws)
                    return

    async def _near_end(self, ws: Link) -> None:
        """A pilot close to its batch walltime: first take nothing new, then give back what still runs."""
        if self.retire_at is None or self.ends_at is None:
            return
        now = time.time()
        if now >= self.ends_at:
            log.info("pilot lifetime over: handing back unfinished tasks")
            self._request_stop()
        elif now >= self.retire_at and not self.retiring:
            self.retiring = True
            log.info("pilot near its end: taking no new tasks")
            await ws.send(_DRAIN)
        elif self.retiring and not self.running and not self.queued and not self._done and not self.unacked:
            self.stopping = True
            await self._say_bye(ws)

    # ---- messages from the manager ------------------------------------

    def _handle(self, m: ManagerMessage) -> int | None:
        match m:
            case Tasks(tasks, specs):
                self.specs.update(specs)
                with self._lock:
                    self.queued.extend(tasks)
                self.last_busy = time.monotonic()
                self._start_more()
            case Ack(done):
                for r in done:
                    self.unacked.pop((r.job, r.index, r.attempt), None)
            case Kill(tasks):
                self._kill(tasks)
            case Cleanup(job):
                spec = self.cleanups.pop(job, None)
                if spec is not None and spec.cleanup:
                    self.pool.submit(run_cleanup, spec.cleanup, int(job), spec.env, spec.cwd, self.base_env)
            case Welcome(heartbeat):
                self.heartbeat = heartbeat
            case Reconnect():  # the manager lost track of us: start over with a fresh hello
                if self.ws is not None:
                    self._spawn(self.ws.close())
            case Error(message):
                log.error("manager: %s", message)
                return 3
        return None

    def _kill(self, refs: list[TaskRef]) -> None:
        doomed = {(r.job, r.index, r.attempt) for r in refs}
        kept: deque[TaskRef] = deque()
        with self._lock:
            for r in self.queued:
                if (r.job, r.index, r.attempt) in doomed:
                    self.credit_due += self.specs[r.job].cpus
                else:
                    kept.append(r)
            self.queued = kept
            runs = [self.running.get((r.job, r.index)) for r in refs]
        for r, run in zip(refs, runs, strict=True):
            if run is not None and run.ref.attempt == r.attempt:
                run.handle.cancel()
        self._schedule_flush()


def _ws_url(url: str) -> str:
    """A manager's URL as its worker channel's WebSocket URL."""
    scheme, sep, rest = url.partition("://")
    return f"{'wss' if scheme == 'https' else 'ws'}{sep}{rest.rstrip('/')}/v1/worker"


def _memory_mb() -> int:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024))
    except (ValueError, OSError):
        return 0


def run_worker(opts: WorkerOptions) -> int:
    return eventloop.run(Agent(opts).run())
