"""The manager's configuration file (``tiercel manager --config tiercel.toml``), read in one place.

    load(path) ──► source.read: the file once, tomllib once (a syntax error names file and line)
                    │ each top-level table, in file order
                    ▼
                  tables.TABLES: name → parser           unknown name → refused, known ones listed
                    queues  → tiercel.queues.parse        → ManagerConfig.queues
                    sites   → tiercel.sites.config.parse  → ManagerConfig.pool, .sites
                    xmpp    → tiercel.gateways.xmpp.config.parse → ManagerConfig.xmpp
                    store   → tiercel.store.config.parse  → ManagerConfig.store
                    data    → tiercel.data.config.parse   → ManagerConfig.data
                    peers   → refused: "not supported yet", by key
                    │ a Problem (dotted key) ──► source.locate: "FILE: line N: key: value what is allowed"
                    ▼
                  ManagerConfig ──► cli/commands/daemons.py fills manager.settings.Settings

- ``source``: reading, ``ConfigError`` and finding a key's line in the text;
- ``tables``: the registry of tables, one parser each (where [peers] plugs in);
- ``model``: ``ManagerConfig``, typed;
- ``loader``: ``load``/``loads``, and ``load_queues`` for the simulator.

The models of the tables stay beside the code that uses them (``Queue`` in ``tiercel.queues``,
``SiteConfig`` in ``tiercel.sites.config``, ``XmppConfig`` in ``tiercel.gateways.xmpp.config``):
each is that subsystem's contract and changes with it (a new site option is a change to the
sites package alone), ``tiercel simulate`` builds queues without a manager, and the XMPP worker
shares the gateway's checks. This package owns what is about the file: reading it once, which
tables it may have, and errors that name the file, the line and the key. So it imports those
modules and none of them imports it.
"""

from __future__ import annotations

from tiercel.config.loader import load, load_queues, loads
from tiercel.config.model import ManagerConfig
from tiercel.config.source import ConfigError

__all__ = ["ConfigError", "ManagerConfig", "load", "load_queues", "loads"]
