"""``ManagerConfig``: everything the manager's ``--config`` file says, checked and typed."""

from __future__ import annotations

from dataclasses import dataclass, field

from tiercel.core.sites import POOL
from tiercel.data.config import DataConfig
from tiercel.gateways.xmpp.config import XmppConfig
from tiercel.peerconfig import Peer
from tiercel.queues import Queue
from tiercel.sites.config import PoolConfig, SiteConfig
from tiercel.store.config import StoreConfig


@dataclass(frozen=True)
class ManagerConfig:
    """One field per table of the file; a table the file leaves out keeps its default.

    Every table of the file has its field here.
    ``config.tables`` refuses it rather than leave it unread.
    """

    queues: dict[str, Queue] = field(default_factory=dict)  # [queues.NAME]; empty: the one built-in queue
    pool: PoolConfig | None = None  # [sites.pool]; None when there is no [sites] table at all
    sites: dict[str, SiteConfig] = field(default_factory=dict)  # the other [sites.NAME], in file order
    xmpp: XmppConfig | None = None  # [xmpp]: the chat gateway and XMPP workers; None: no XMPP
    store: StoreConfig | None = None  # [store]: PostgreSQL; None: SQLite in the state directory
    data: DataConfig = field(default_factory=DataConfig)  # [data]: data-aware placement over Gfarm
    peers: dict[str, Peer] = field(default_factory=dict)  # [peers.NAME]: other managers to exchange work with

    def site_tables(self) -> dict[str, SiteConfig | PoolConfig]:
        """The sites as the manager's settings keep them: the pool first, then the rest; empty without [sites].

        Without a [sites] table the manager places on its pool alone and keeps no site views at
        all, so an absent table and a lone ``[sites.pool]`` are not the same.
        """
        if self.pool is None:
            return {}
        return {POOL: self.pool, **self.sites}
