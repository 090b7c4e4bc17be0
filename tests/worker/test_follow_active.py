"""A worker given several managers: it connects to the active one a standby names, and leaves a
manager that falls silent for the next, carrying what it holds and what is not acknowledged."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable

import pytest
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from tiercel.core.model import JobId, JobSpec, TaskRef
from tiercel.core.ranges import IndexRanges
from tiercel.wire.codec import decode_hello, encode, pack, unpack
from tiercel.wire.messages import Error, Hello, Tasks
from tiercel.worker.agent import Agent, _ws_url
from tiercel.worker.options import WorkerOptions

ENOUGH = pack([encode(Error("enough"))])


def url_of(server: Server) -> str:
    return f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"


def hello_of(frame: str | bytes) -> Hello:
    assert isinstance(frame, bytes)
    [raw] = unpack(frame)
    return decode_hello(raw)


def active_manager(hellos: asyncio.Queue[Hello]) -> Callable[[ServerConnection], Awaitable[None]]:
    """A manager that takes the hello, then ends the session (the agent returns 3)."""

    async def handler(ws: ServerConnection) -> None:
        await hellos.put(hello_of(await ws.recv()))
        await ws.send(ENOUGH)
        async for _ in ws:
            pass

    return handler


async def closed(ws: ServerConnection) -> None:
    await ws.close()


def standby(active: str | None, asked: list[str]) -> Callable[[ServerConnection, Request], Response]:
    """A standby manager: every handshake refused with 503, naming the active manager when known."""

    def refuse(_: ServerConnection, request: Request) -> Response:
        asked.append(request.path)
        headers = Headers([("Content-Type", "application/json")])
        if active is not None:
            headers["X-Tiercel-Active"] = active
        body = b'{"error": "this manager is a standby", "active": %s}' % (
            b'"%s"' % active.encode() if active else b"null")
        return Response(503, "Service Unavailable", headers, body)

    return refuse


def stop_agent(agent: Agent) -> None:
    """What ``run`` leaves when it returns early: tasks still running and slot threads waiting."""
    for run in list(agent.running.values()):
        run.handle.cancel()
    for _ in agent._threads:
        agent._work.put(None)
    for t in agent._threads:
        t.join(5)


def test_ws_url() -> None:
    assert _ws_url("http://a:8750") == "ws://a:8750/v1/worker"
    assert _ws_url("https://a/tiercel/") == "wss://a/tiercel/v1/worker"


def test_a_standby_refusal_sends_the_worker_to_the_active_manager() -> None:
    async def scenario() -> None:
        hellos: asyncio.Queue[Hello] = asyncio.Queue()
        asked: list[str] = []
        async with (serve(active_manager(hellos), "127.0.0.1", 0) as active,
                    serve(closed, "127.0.0.1", 0, process_request=standby(url_of(active), asked)) as stand):
            agent = Agent(WorkerOptions(manager=url_of(stand), token="t", backoff_max=0.2))
            try:
                code = await asyncio.wait_for(agent.run(), 5)
            finally:
                stop_agent(agent)
            assert code == 3  # the active manager's Error ended it
            assert asked == ["/v1/worker"]
            assert agent.connected_to == url_of(active)  # not listed, but named by the standby
            assert hellos.get_nowait().worker == agent.id

    asyncio.run(scenario())


def test_a_standby_that_knows_no_active_one_sends_the_worker_down_its_list() -> None:
    async def scenario() -> None:
        hellos: asyncio.Queue[Hello] = asyncio.Queue()
        asked: list[str] = []
        async with (serve(active_manager(hellos), "127.0.0.1", 0) as active,
                    serve(closed, "127.0.0.1", 0, process_request=standby(None, asked)) as stand):
            agent = Agent(WorkerOptions(manager=f"{url_of(stand)},{url_of(active)}", token="t", backoff_max=0.2))
            try:
                code = await asyncio.wait_for(agent.run(), 5)
            finally:
                stop_agent(agent)
            assert code == 3 and len(asked) == 1 and agent.connected_to == url_of(active)

    asyncio.run(scenario())


def test_only_standbys_means_rounds_with_backoff_until_one_takes_over() -> None:
    async def scenario() -> None:
        hellos: asyncio.Queue[Hello] = asyncio.Queue()
        asked: list[str] = []
        refuse = standby(None, asked)
        taken_over = False

        def maybe_refuse(ws: ServerConnection, request: Request) -> Response | None:
            return None if taken_over else refuse(ws, request)

        async with (serve(active_manager(hellos), "127.0.0.1", 0, process_request=maybe_refuse) as b,
                    serve(closed, "127.0.0.1", 0, process_request=refuse) as a):
            agent = Agent(WorkerOptions(manager=f"{url_of(a)},{url_of(b)}", token="t", backoff_max=0.2))
            task = asyncio.create_task(agent.run())
            try:
                await asyncio.sleep(1.0)
                assert not task.done()
                # both asked in each round, with a pause between rounds (0.1 s doubling up to 0.2 s, jittered):
                # several rounds, but no busy loop
                assert 4 <= len(asked) <= 40
                taken_over = True
                assert await asyncio.wait_for(task, 5) == 3
            finally:
                task.cancel()
                stop_agent(agent)
            assert agent.connected_to == url_of(b)

    asyncio.run(scenario())


SILENT_MANAGER = r"""
import asyncio, sys
from websockets.asyncio.server import serve

TASKS = bytes.fromhex(sys.argv[1])

async def handler(ws):
    await ws.recv()  # the hello
    await ws.send(TASKS)
    print("hello", flush=True)
    async for _ in ws:  # results: read, never acknowledged
        pass

async def main():
    async with serve(handler, "127.0.0.1", 0, ping_interval=None) as server:
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.Future()

asyncio.run(main())
"""


@pytest.mark.skipif(not hasattr(signal, "SIGSTOP") and not os.environ.get("CI"),  # in CI: run, or fail
                    reason="needs SIGSTOP")
def test_a_silent_manager_is_left_for_the_next_with_what_the_worker_holds() -> None:
    job = JobId(1)
    # Task 0 runs on (it is held); task 1 ends at once, and its result is never acknowledged.
    spec = JobSpec(command=('[ "$1" = 1 ] || sleep 30',), indexes=IndexRanges.of_size(2), shell=True)
    refs = [TaskRef(job, 0, 1, seal=b"s0"), TaskRef(job, 1, 1, seal=b"s1")]
    tasks = pack([encode(Tasks(refs, {job: spec}))])

    async def scenario() -> None:
        hellos: asyncio.Queue[Hello] = asyncio.Queue()
        proc = await asyncio.create_subprocess_exec(sys.executable, "-c", SILENT_MANAGER, tasks.hex(),
                                                    stdout=asyncio.subprocess.PIPE)
        assert proc.stdout is not None
        agent: Agent | None = None
        try:
            port = int(await asyncio.wait_for(proc.stdout.readline(), 10))
            async with serve(active_manager(hellos), "127.0.0.1", 0) as other:
                agent = Agent(WorkerOptions(manager=f"http://127.0.0.1:{port},{url_of(other)}", token="t", slots=2,
                                            prefetch=0, backoff_max=0.2, ping_interval=0.2, ping_timeout=0.5,
                                            close_timeout=0.3))
                run = asyncio.create_task(agent.run())
                assert await asyncio.wait_for(proc.stdout.readline(), 5) == b"hello\n"
                deadline = time.monotonic() + 5
                while not (agent.running and agent.unacked) and time.monotonic() < deadline:
                    await asyncio.sleep(0.02)
                assert list(agent.running) == [(job, 0)] and list(agent.unacked) == [(1, 1, 1)]
                os.kill(proc.pid, signal.SIGSTOP)  # the manager falls silent, its connection stays open
                stopped = time.monotonic()
                hello = await asyncio.wait_for(hellos.get(), 5)
                noticed = time.monotonic() - stopped
                assert noticed < 3  # ping_interval + ping_timeout + close_timeout, and a little
                assert hello.worker == agent.id
                assert [(r.job, r.index, r.attempt) for r in hello.held] == [(job, 0, 1)]
                assert [(r.job, r.index, r.attempt, r.seal) for r in hello.results] == [(job, 1, 1, b"s1")]
                assert await asyncio.wait_for(run, 5) == 3
                assert agent.connected_to == url_of(other)
        finally:
            if agent is not None:
                stop_agent(agent)
            proc.kill()
            await proc.wait()

    asyncio.run(scenario())


def test_keepalive_defaults_notice_a_silent_manager_within_15s_but_keep_a_busy_one() -> None:
    opts = WorkerOptions(manager="http://a:1", token="t")
    assert opts.ping_interval is not None and opts.ping_timeout is not None
    worst = opts.ping_interval + opts.ping_timeout + opts.close_timeout
    assert 10 <= worst <= 15 and opts.ping_timeout >= 5
