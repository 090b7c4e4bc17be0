"""What a manager runs with: its state directory, time-outs, and the tables of its config file."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tiercel.queues import Queue


@dataclass
class Settings:
    state_dir: Path
    worker_timeout: float = 30.0  # silence after which a worker's tasks are re-queued
    heartbeat: float = 5.0  # how often workers say they are alive
    reconnect_grace: float = 10.0  # after a restart, how long to wait for workers to reclaim tasks
    max_tasks: int = 100_000_000
    queues: dict[str, Queue] = field(default_factory=dict)  # from the config file; empty: one default queue
    pool_slots: int = 0  # the pool's size for reservations, when more than the workers connected now
    sites: dict[str, Any] = field(default_factory=dict)  # [sites.NAME] from the config file (sites.config)
    url: str = ""  # where the manager serves: what pilots connect to unless a site says otherwise
    xmpp: Any = None  # the [xmpp] table (gateways.xmpp.config.XmppConfig): chat gateway and XMPP workers
