"""Reading a configuration: the file once, then each top-level table to its parser in ``tables``."""

from __future__ import annotations

from pathlib import Path

from tiercel.config.model import ManagerConfig
from tiercel.config.source import ConfigError, Source, parse_text, read
from tiercel.config.tables import TABLES, unknown
from tiercel.core.problems import Problem
from tiercel.queues import Queue
from tiercel.queues import parse as parse_queues


def load(path: Path) -> ManagerConfig:
    """The manager's ``--config`` file, every table checked; ``ConfigError`` names the file, line and key."""
    return _build(read(path))


def loads(text: str, path: Path | None = None) -> ManagerConfig:
    """As ``load``, from text; ``path`` is what messages call it and where relative files are found."""
    return _build(parse_text(text, path))


def _build(source: Source) -> ManagerConfig:
    config = ManagerConfig()
    # in file order, so of several mistakes the first one in the file is the one reported
    for name, value in source.doc.items():
        table = TABLES.get(name)
        made = unknown(name) if table is None else table.parse(value, source, config)
        if isinstance(made, Problem):
            raise source.error(made)
        config = made
    return config


def load_queues(path: Path, label: str = "queue-config") -> dict[str, Queue] | Problem:
    """Only the [queues.NAME] tables of a file, for ``tiercel simulate --queue-config``.

    The simulator replays queues, not a manager: the file may be a manager's whole configuration,
    whose [sites] and [xmpp] (password files and all) are not its business, so they are not read.
    A Problem rather than an exception, as the command reports its other problems.
    """
    try:
        source = read(path, label)
    except ConfigError as exc:
        return exc.problem
    found = parse_queues(source.doc)
    return source.problem(found) if isinstance(found, Problem) else found
