"""What a manager's shell runs with: its state directory, time-outs, and its tables of the config file.

(The [xmpp] table is the XMPP gateway's, handed to it by the server: the shell never reads it.)

The tables arrive checked (``tiercel.config`` reads the file); their types come from the modules
that own them, which import nothing of the manager, so the shell can import this freely.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tiercel.data.config import DataConfig
from tiercel.peerconfig import Peer
from tiercel.queues import Queue
from tiercel.sites.config import PoolConfig, SiteConfig


@dataclass
class Settings:
    state_dir: Path
    worker_timeout: float = 30.0  # silence after which a worker's tasks are re-queued
    heartbeat: float = 5.0  # how often workers say they are alive
    reconnect_grace: float = 10.0  # after a restart, how long to wait for workers to reclaim tasks
    max_tasks: int = 100_000_000
    queues: dict[str, Queue] = field(default_factory=dict)  # from the config file; empty: one default queue
    pool_slots: int = 0  # the pool's size for reservations, when more than the workers connected now
    # [sites.NAME], the pool first (ManagerConfig.site_tables); empty: no [sites], the pool alone places
    sites: dict[str, SiteConfig | PoolConfig] = field(default_factory=dict)
    data: DataConfig = field(default_factory=DataConfig)  # [data]: copy rate, unreadable replicas' recheck
    url: str = ""  # where the manager serves: what pilots connect to unless a site says otherwise
    peers: dict[str, Peer] = field(default_factory=dict)  # [peers.NAME]: managers to exchange work with
