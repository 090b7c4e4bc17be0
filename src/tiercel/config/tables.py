"""The tables a manager's configuration may hold, and the parser of each: the one place to add one.

Every parser takes its table's value, the file it came from and the configuration read so
far, and returns that configuration with its own fields filled, or a ``Problem`` whose field is
the dotted key at fault (the loader adds the file and the line). The parsers of the tables in
use hand the table to the module that owns its model; those to come refuse, naming the key:
a scheduler that ran on while leaving a ``[data]`` unread would do something other than
what its operator wrote, and say nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from tiercel import peerconfig as peers_config
from tiercel.config.model import ManagerConfig
from tiercel.config.source import Source
from tiercel.core.problems import MISSING, Problem
from tiercel.core.sites import POOL
from tiercel.data import config as data_config
from tiercel.gateways.xmpp import config as xmpp_config
from tiercel.queues import parse as parse_queues
from tiercel.sites import config as sites_config
from tiercel.store import config as store_config

Parser = Callable[[object, Source, ManagerConfig], ManagerConfig | Problem]


@dataclass(frozen=True)
class Table:
    name: str
    shape: str  # how the README writes it, for messages
    parse: Parser
    supported: bool = True


def _queues(table: object, source: Source, into: ManagerConfig) -> ManagerConfig | Problem:
    queues = parse_queues({"queues": table})
    return queues if isinstance(queues, Problem) else dataclasses.replace(into, queues=queues)


def _sites(table: object, source: Source, into: ManagerConfig) -> ManagerConfig | Problem:
    found = sites_config.parse({"sites": table})
    if isinstance(found, Problem):
        return found
    pool = found.pop(POOL)
    assert isinstance(pool, sites_config.PoolConfig)  # parse puts the pool first, and only the pool there
    sites = {name: site for name, site in found.items() if isinstance(site, sites_config.SiteConfig)}
    return dataclasses.replace(into, pool=pool, sites=sites)


def _xmpp(table: object, source: Source, into: ManagerConfig) -> ManagerConfig | Problem:
    # relative password and CA files are the config file's neighbours, wherever the manager runs
    base = source.path.parent if source.path is not None else None
    found = xmpp_config.parse({"xmpp": table}, base)
    return found if isinstance(found, Problem) else dataclasses.replace(into, xmpp=found)


def _store(table: object, source: Source, into: ManagerConfig) -> ManagerConfig | Problem:
    # a relative password file is the config file's neighbour, wherever the manager runs
    found = store_config.parse(table, source.path.parent if source.path is not None else None)
    return found if isinstance(found, Problem) else dataclasses.replace(into, store=found)


def _data(table: object, source: Source, into: ManagerConfig) -> ManagerConfig | Problem:
    found = data_config.parse(table)
    return found if isinstance(found, Problem) else dataclasses.replace(into, data=found)


def _peers(table: object, source: Source, into: ManagerConfig) -> ManagerConfig | Problem:
    # a relative token file is the config file's neighbour, wherever the manager runs
    found = peers_config.parse(table, source.path.parent if source.path is not None else None)
    if isinstance(found, Problem):
        return found
    clash = next((n for n in found if n in into.sites or n == POOL), None)
    if clash is not None:
        return Problem(f"peers.{clash}", clash, "is also a site's name; give the peer another name")
    return dataclasses.replace(into, peers=found)


# The order is the one messages list them in. A table for a feature still to come is listed with
# supported=False and a parser that refuses it, so that the manager never starts leaving settings unread.
TABLES: dict[str, Table] = {t.name: t for t in (
    Table("queues", "[queues.NAME]", _queues),
    Table("sites", "[sites.NAME]", _sites),
    Table("xmpp", "[xmpp]", _xmpp),
    Table("store", "[store]", _store),
    Table("data", "[data]", _data),
    Table("peers", "[peers.NAME]", _peers),
)}


def unknown(name: str) -> Problem:
    known = ", ".join(t.shape for t in TABLES.values() if t.supported)
    later = ", ".join(t.shape for t in TABLES.values() if not t.supported)
    return Problem(name, MISSING, f"is not a table of the manager's configuration (known: {known}"
                                  f"{f'; not supported yet: {later}' if later else ''})")
