"""The manager process: the shell, its gateways and sites in one tree of tasks, on one uvicorn server.

The composition root: it builds the shell (manager/), puts the REST API, the dashboard and the XMPP gateway
(gateways/) in front of it, runs the sites and the duties, and shuts all of it down in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import gc
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import IO

import uvicorn
from fastapi import FastAPI

from tiercel import eventloop
from tiercel.core.problems import SetupError
from tiercel.gateways.rest import peers as peer_routes
from tiercel.gateways.rest.app import create_app
from tiercel.gateways.rest.managers import Roster
from tiercel.gateways.web import attach as attach_web
from tiercel.gateways.xmpp.config import XmppConfig
from tiercel.gateways.xmpp.handle import attach as attach_xmpp
from tiercel.manager import duties, statedir
from tiercel.manager.settings import Settings
from tiercel.manager.shell import Manager
from tiercel.store import SqliteStore, Store

log = logging.getLogger("tiercel.manager")

# Young-generation collections every this many allocations (Python's default: 700). At full
# dispatch the manager allocates a few objects per result, hundreds of thousands a second: with
# the default, collections ran hundreds of times a second and pushed everything to older
# generations, whose full scans then froze the loop for hundreds of milliseconds.
GC_YOUNG = 50_000
# How long a thread may hold the GIL while another waits for it (Python's default: 5 ms). The store's
# writer thread lets go of the GIL at every statement and at the commit's fsync, and then waited up
# to the whole interval for the event loop's thread to give it back: under full dispatch a commit
# of 2,000 results took 6 ms, 5 of them waiting. At 1 ms REST reads under full dispatch answered at
# p99 18-20 ms instead of ~40, and dispatch kept 0.87 of its rate with 200 pollers instead of 0.82.
SWITCH_INTERVAL = 0.001


def tune_interpreter() -> None:
    """Once start-up is done: what it built is never scanned again, the young generation is collected
    less often (GC_YOUNG), and threads waiting for the GIL get it sooner (SWITCH_INTERVAL)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG, *gc.get_threshold()[1:])
    sys.setswitchinterval(SWITCH_INTERVAL)


def build(settings: Settings, store: Store, *, xmpp: XmppConfig | None = None, roster: Roster | None = None
          ) -> tuple[Manager, FastAPI]:
    statedir.secure(settings.state_dir)
    manager = Manager(store, settings)
    federation = None
    if settings.peers:
        from tiercel.federation.service import Federation

        federation = Federation(manager, settings.peers)
        manager.peers = federation

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            await manager.start()
        except Exception as exc:
            manager.start_error = exc  # said in one line by serve(), not as uvicorn's traceback
            raise
        tune_interpreter()
        async with asyncio.TaskGroup() as tg:
            pacing = tg.create_task(duties.run(manager))
            loops = [tg.create_task(site.run()) for site in manager.sites.values()]
            if federation is not None:
                loops.append(tg.create_task(federation.run()))
            gateway.start(tg)  # the chat gateway and XMPP workers, when the config has [xmpp]
            try:
                yield
            finally:
                pacing.cancel()
                gateway.stop()
                for loop in loops:
                    loop.cancel()
                for site in manager.sites.values():
                    await site.close()
        manager.close()

    app = create_app(manager, lifespan, roster)
    attach_web(manager, app)  # the dashboard, at / on the same port
    app.include_router(peer_routes.router(manager, federation))
    gateway = attach_xmpp(manager, app, xmpp)
    return manager, app


class StateDirBusy(Exception):
    pass


def lock_state_dir(state_dir: Path) -> IO[str]:
    """Hold an exclusive lock on the state dir for the manager's lifetime: one manager per store."""
    statedir.secure(state_dir)
    fd = os.open(state_dir / "manager.lock", os.O_RDWR | os.O_CREAT | os.O_APPEND, statedir.FILE_MODE)
    f = os.fdopen(fd, "a+")  # held open until the process ends
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        owner = f.read().strip() or "?"
        f.close()
        raise StateDirBusy(f"state-dir: {str(state_dir)!r} is in use by another manager (pid {owner})") from None
    f.seek(0)
    f.truncate()
    try:
        f.write(str(os.getpid()))
        f.flush()
    except OSError as exc:
        f.close()
        raise SetupError(statedir.disk_full(state_dir) or f"state-dir: cannot write in {str(state_dir)!r}: "
                         f"{exc.strerror or exc}") from None
    return f


def bind_or_fail(host: str, port: int, lock: IO[str]) -> socket.socket:
    """The listening socket, or ListenFailed in one line (and the state dir's lock let go)."""
    try:
        return statedir.bind(host, port)
    except OSError as exc:
        lock.close()
        raise ListenFailed(f"listen: cannot serve on {host}:{port}: {exc.strerror or exc} "
                           "(another manager there? pick another port with --listen)") from None


class ListenFailed(Exception):
    pass


def serve(host: str, port: int, settings: Settings, *, synchronous: str = "FULL", quiet: bool = False,
          xmpp: XmppConfig | None = None, listen_fd: int | None = None) -> None:
    """Serve until stopped; on ``listen_fd``, a socket bound and listened on already (by ``tiercel run``,
    so its worker can start with the manager's URL at once), instead of binding ``host:port``."""
    lock = lock_state_dir(settings.state_dir)
    full = statedir.disk_full(settings.state_dir)
    if full is not None:
        lock.close()
        raise SetupError(full)
    if listen_fd is None:
        sock = bind_or_fail(host, port, lock)
    else:
        sock = socket.socket(fileno=listen_fd)
        host, port = sock.getsockname()[:2]
    if not settings.url or settings.url.endswith(":0"):  # what pilots connect to: the port actually bound
        shown = host if host not in ("0.0.0.0", "::", "") else "127.0.0.1"
        settings.url = f"http://{shown}:{sock.getsockname()[1]}"
    store = SqliteStore(settings.state_dir / "tiercel.db", synchronous=synchronous)
    manager, app = build(settings, store, xmpp=xmpp)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", ws_max_size=64 * 1024 * 1024,
                            ws_ping_interval=None, ws_per_message_deflate=False, lifespan="on",
                            access_log=False)
    server = Server(config)
    server.on_stop.append(manager.events.stop)

    async def main() -> None:
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            if task.done():
                await task
                if manager.start_error is not None:
                    raise SetupError(_start_failure(settings.state_dir, manager.start_error))
                return
            await asyncio.sleep(0.02)
        bound = sock.getsockname()
        url = f"http://{host if host not in ('0.0.0.0', '::') else '127.0.0.1'}:{bound[1]}"
        announce(settings.state_dir, url, manager, quiet)
        await task

    try:
        eventloop.run(main())
    finally:
        lock.close()


class Server(uvicorn.Server):
    """uvicorn, which tells the manager as soon as it stops serving: it waits for every request under
    way before it stops, and requests held open (a long poll for a job's end) are answered at once."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.on_stop: list[Callable[[], None]] = []

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for stop in self.on_stop:
            stop()
        await super().shutdown(sockets)


def _start_failure(state_dir: Path, exc: BaseException) -> str:
    """One line for a manager that could not start: what is wrong and what to do."""
    if isinstance(exc, SetupError):
        return str(exc)
    full = statedir.disk_full(state_dir)
    if full is not None or "full" in str(exc):
        return full or f"the manager's disk is full: {exc}; free some space where its state lives ({state_dir})"
    return f"the manager could not start: {type(exc).__name__}: {exc} (state in {state_dir})"


def announce(state_dir: Path, url: str, manager: Manager, quiet: bool) -> None:
    info = {"url": url, "pid": os.getpid()}
    tmp = state_dir / "manager.json.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, statedir.FILE_MODE)
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(info))
    tmp.replace(state_dir / "manager.json")
    if quiet:
        return
    print(f"tiercel manager listening on {url}  (state in {state_dir})", flush=True)
    for role, path in manager.created_tokens.items():
        print(f"  {role} token written to {path}", flush=True)
    print(f"  export TIERCEL_URL={url}", flush=True)


def install_signal_handlers() -> None:
    signal.signal(signal.SIGTERM, signal.default_int_handler)
