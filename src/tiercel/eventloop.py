"""The event loop a long-running Tiercel process (a manager, a worker) runs on: uvloop when it is
installed; and the process's limit of open files raised to what the system allows.

The manager's loop carries every worker's frames, every HTTP request and dispatch; uvloop (libuv,
shipped with ``uvicorn[standard]``) does the socket work of each frame in C, where asyncio's own
loop spends Python time per read, write and reader registration. ``TIERCEL_LOOP=asyncio`` keeps
asyncio's loop (for debugging, or a platform without uvloop).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def raise_open_files() -> None:
    """Raise the soft limit of open files to the hard one: a manager holds a socket per worker, a worker
    pipes per running task (the default soft limit, often 1,024, would cap either long before the machine)."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY or hard > soft:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else 1 << 20, hard))
    except (ImportError, ValueError, OSError):
        pass  # not allowed here, or no such limit: run with what there is


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on the best loop available, with open files raised (raise_open_files)."""
    raise_open_files()
    if os.environ.get("TIERCEL_LOOP", "").lower() != "asyncio":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return asyncio.run(main)
