"""The event loop a long-running Tiercel process runs on: uvloop when it is installed.

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


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on the best loop available."""
    if os.environ.get("TIERCEL_LOOP", "").lower() != "asyncio":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return asyncio.run(main)
