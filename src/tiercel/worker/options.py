"""What a worker runs with (``tiercel worker``'s options), and what carries its messages."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol


@dataclass
class WorkerOptions:
    # The manager's URL, or several separated by commas (an active manager and its standbys): the worker
    # connects to the active one, and to the next that answers when its manager goes away or falls silent.
    manager: str
    token: str
    slots: int = 1
    tags: frozenset[str] = frozenset()
    name: str = ""
    prefetch: int | None = None  # extra slots of tasks queued locally; default: as many as slots
    max_output: int = 1024 * 1024
    executor: str = "process"  # "process", or "noop" to measure the manager without spawning
    idle_exit: float | None = None  # exit after this long with nothing to do
    backoff_max: float = 5.0  # longest wait between two rounds of the managers' URLs
    # WebSocket keepalive: a ping every `ping_interval` seconds, and a manager that has not answered one
    # within `ping_timeout` (then not closed within `close_timeout`) is left for another: a silent manager
    # (a paused process, a lost network) is noticed within 10-15 s, one busy for a few seconds is kept.
    ping_interval: float | None = 5.0
    ping_timeout: float | None = 8.0
    close_timeout: float = 2.0
    site: str = "pool"  # the site this worker belongs to (a pilot names its batch site)
    lifetime: float | None = None  # a pilot's batch walltime: it leaves before the batch system kills it
    drain_before: float | None = None  # stop taking tasks this long before the end (default: 10 %, at most 5 min)
    reservation: str | None = None  # a pilot inside a mirrored reservation: it runs only that reservation's work
    data_node: str | None = None  # the Gfarm file-system node it runs on or next to (its inputs are read there)


class Link(Protocol):
    """A session's connection to the manager: send a frame, receive frames, close.

    A WebSocket, or an XMPP session (gateways/xmpp/worker_link.py): the session does not care which.
    """

    async def send(self, message: bytes, /) -> None: ...
    async def close(self) -> None: ...
    def __aiter__(self) -> AsyncIterator[str | bytes]: ...
