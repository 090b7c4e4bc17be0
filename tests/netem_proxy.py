"""A small user-space TCP proxy that delays every byte by a fixed time each way (the kernel here has no netem).

    python -m tests.netem_proxy --listen 127.0.0.1:0 --to 10.250.7.2:8750 --delay 0.025 --port-file P

Each direction of each connection is a queue of (due time, bytes): a chunk read now is written
``delay`` seconds later, in order, so a 25 ms proxy makes a 50 ms round trip without cutting
bandwidth. Started by tests and benchmarks, stopped by its PID.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from pathlib import Path


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def pump() -> None:
        while True:
            due, data = await queue.get()
            if not data:
                break
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()

    sender = asyncio.create_task(pump())
    try:
        while True:
            data = await reader.read(65536)
            queue.put_nowait((time.monotonic() + delay, data))
            if not data:
                break
        await sender
    except (ConnectionError, OSError):
        pass
    finally:
        sender.cancel()
        with contextlib.suppress(Exception):
            writer.close()


async def serve(listen: tuple[str, int], to: tuple[str, int], delay: float, port_file: Path | None) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*to)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer, delay), _pipe(up_reader, writer, delay),
                             return_exceptions=True)

    server = await asyncio.start_server(handle, *listen)
    port = server.sockets[0].getsockname()[1]
    if port_file is not None:
        tmp = port_file.with_suffix(".tmp")
        tmp.write_text(str(port))
        tmp.replace(port_file)
    async with server:
        await server.serve_forever()


def _addr(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--listen", required=True, type=_addr)
    ap.add_argument("--to", required=True, type=_addr)
    ap.add_argument("--delay", type=float, default=0.025, help="seconds each direction")
    ap.add_argument("--port-file", type=Path)
    args = ap.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.listen, args.to, args.delay, args.port_file))


if __name__ == "__main__":
    main()
