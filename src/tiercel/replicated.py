"""One of several managers on one PostgreSQL store: a standby until it holds the lease, then active.

A standby binds its port at once and answers there (``gateways/rest/standby.py``: 503 with the
active manager's URL, which clients and workers follow) while it tries to take the store's lease
every fifth of the lease. Once it holds it, it builds the whole manager exactly as a manager on
SQLite (``server.build``), loads the unfinished jobs, and the same port serves the API: a
take-over is a restart that found its state in the database.

Stepping down is a restart too. A manager that loses its lease (another took over while this one
was paused or cut off, or a write failed) must not act on a state the store no longer backs: it
closes everything by running itself again as a standby (``os.execv``), which drops every
connection (workers reconnect to the active one and hand in what they hold), and waits for the
lease like any standby. No half-torn-down manager ever serves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from typing import Any

import psycopg
import uvicorn

from tiercel import eventloop
from tiercel.core.problems import SetupError
from tiercel.gateways.rest.standby import create_standby_app
from tiercel.gateways.xmpp.config import XmppConfig
from tiercel.manager.settings import Settings
from tiercel.server import Server, announce, bind_or_fail, build, lock_state_dir
from tiercel.store.config import StoreConfig
from tiercel.store.lease import LeaseLost, StoreUnreachable, knows_token, roster
from tiercel.store.postgres import PostgresStore, SchemaTooNew

log = logging.getLogger("tiercel.manager")

STEPPED_DOWN = "TIERCEL_STEPPED_DOWN"  # set in the environment of a manager run again after losing its lease

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]


class _DenialNoise(logging.Filter):
    """uvicorn logs a refused WebSocket handshake that sent its own HTTP answer (the standby's 503
    to a worker) as an error, though the answer went out whole: not an error here."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "returned without completing handshake" not in record.getMessage()


class _Server(Server):
    """uvicorn, leaving the process's signals to serve_replicated: uvicorn raises a signal it caught
    again once it has stopped serving, which would end the process before the active manager,
    stopped after the server, has shut down in order and given its lease up."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class Switch:
    """The ASGI app on the port: the standby's answers until the take-over, then the manager's API."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Any]],
                       send: Callable[[Any], Awaitable[None]]) -> None:
        await self.app(scope, receive, send)


def serve_replicated(host: str, port: int, settings: Settings, config: StoreConfig, *, quiet: bool = False,
                     xmpp: XmppConfig | None = None) -> None:
    lock = lock_state_dir(settings.state_dir)
    sock = bind_or_fail(host, port, lock)
    shown_host = host if host not in ("0.0.0.0", "::", "") else "127.0.0.1"
    url = f"http://{shown_host}:{sock.getsockname()[1]}"
    advertise = config.advertise or url
    settings.url = advertise
    name = config.name or f"{socket.gethostname()}:{sock.getsockname()[1]}"
    store = PostgresStore(config.connect_url(), name=name, advertise=advertise, ttl=config.lease)
    stepped_down = os.environ.pop(STEPPED_DOWN, None)
    if stepped_down is None:  # a first start on a database out of reach: one line, and no manager
        try:
            store.prepare()
        except (StoreUnreachable, SchemaTooNew) as exc:
            lock.close()
            sock.close()
            raise SetupError(str(exc)) from None
    else:
        log.warning("running again as a standby after stepping down: %s", stepped_down)
    switch = Switch(create_standby_app(name, lambda: roster(store.lease),
                                       lambda d: knows_token(store.lease, d)))
    uconfig = uvicorn.Config(switch, host=host, port=port, log_level="warning", ws_max_size=64 * 1024 * 1024,
                             ws_ping_interval=None, ws_per_message_deflate=False, lifespan="off", access_log=False)
    server = _Server(uconfig)
    logging.getLogger("uvicorn.error").addFilter(_DenialNoise())

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):  # stop serving, then shut the manager down in order
            loop.add_signal_handler(sig, lambda: setattr(server, "should_exit", True))
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            if task.done():
                await task
                return
            await asyncio.sleep(0.02)
        if not quiet:
            print(f"tiercel manager {name} listening on {url} as a standby (store {store.shown})", flush=True)
        ruling = asyncio.create_task(_rule(store, settings, switch, server, xmpp, quiet, url))
        await asyncio.wait([task, ruling], return_when=asyncio.FIRST_COMPLETED)
        if ruling.done():
            ruling.result()  # a start-up failure of the active manager: raised here
            server.should_exit = True
            await task
            return
        server_done = task  # a signal stopped the server: the active manager shuts down in order
        stopping.set()
        await ruling
        await server_done

    stopping = asyncio.Event()

    async def _rule(store: PostgresStore, settings: Settings, switch: Switch, server: uvicorn.Server,
                    xmpp: XmppConfig | None, quiet: bool, url: str) -> None:
        poll = min(1.0, max(0.2, store.lease.ttl / 5))  # a lease given up is taken within a second
        while not stopping.is_set():
            try:
                if stepped_down is not None:
                    await asyncio.to_thread(store.prepare)
                held = await asyncio.to_thread(store.lease.acquire)
            except (psycopg.Error, StoreUnreachable) as exc:
                log.warning("standby: the store is out of reach (%s); trying again", exc)
                held = False
            if not held:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), poll)
                continue
            await _active(store, settings, switch, xmpp, quiet, url)
            return
        store.lease.leave()

    async def _active(store: PostgresStore, settings: Settings, switch: Switch, xmpp: XmppConfig | None,
                      quiet: bool, url: str) -> None:
        loop = asyncio.get_running_loop()
        lost: asyncio.Future[BaseException] = loop.create_future()

        def lose(exc: BaseException) -> None:
            if not lost.done():
                lost.set_result(exc)

        def lost_in_thread(exc: BaseException) -> None:
            loop.call_soon_threadsafe(lose, exc)

        store.on_lost = lost_in_thread
        try:  # pilots started from here reach whichever manager is active when they start
            others = [m.url for m in await asyncio.to_thread(roster, store.lease) if m.url != settings.url]
            settings.url = ",".join([settings.url, *others])
        except psycopg.Error:
            pass
        manager, app = build(settings, store, xmpp=xmpp, roster=lambda: roster(store.lease))
        if isinstance(server, Server):
            server.on_stop.append(manager.events.stop)
        manager.on_store_failure = lose
        async with app.router.lifespan_context(app):
            switch.app = app
            log.info("active: holding the store's lease, epoch %s", store.lease.epoch)
            announce(settings.state_dir, url, manager, quiet=True)
            if not quiet:
                print(f"tiercel manager {store.lease.name} is active (epoch {store.lease.epoch}); "
                      f"export TIERCEL_URL={settings.url}", flush=True)
                for role, path in manager.created_tokens.items():
                    print(f"  {role} token written to {path}", flush=True)
            halt: asyncio.Future[Any] = asyncio.ensure_future(stopping.wait())
            await asyncio.wait([lost, halt], return_when=asyncio.FIRST_COMPLETED)
            halt.cancel()
            if lost.done():
                _step_down(lost.result())

    try:
        eventloop.run(main())
    finally:
        lock.close()


def _step_down(why: BaseException) -> None:
    """Run this manager again, from scratch, as a standby: nothing of the lost term survives."""
    reason = str(why) if isinstance(why, (LeaseLost, StoreUnreachable)) else f"{type(why).__name__}: {why}"
    log.critical("stepping down to a standby: %s", reason)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    logging.shutdown()
    os.environ[STEPPED_DOWN] = reason
    os.execv(sys.executable, sys.orig_argv)

