"""`tiercel store copy SRC DST`: a manager's whole state from one store into a new one.

Jobs (finished or not, with every attempt and its output), tokens, workers, reservations, the
batch jobs of sites and the key of the seals go over as the very writes that made them, read
from one snapshot of SRC (a manager may keep running on it). DST must be empty: a copy never
merges two managers' states, whose job ids would collide.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tiercel.store.base import AddJob, Loaded, Record, SaveReservation, SaveToken, Store
from tiercel.store.config import SCHEMES, check_url
from tiercel.store.sqlite import SqliteStore

CHUNK = 5_000


class CopyError(Exception):
    """One line: what stopped the copy and what to do."""


@dataclass
class Copied:
    jobs: int = 0
    attempts: int = 0
    tokens: int = 0
    reservations: int = 0


def is_url(location: str) -> bool:
    return location.split(":", 1)[0] in SCHEMES


def sqlite_path(location: str, *, must_exist: bool) -> Path:
    """A state directory (its tiercel.db) or the database file itself."""
    path = Path(location).expanduser()
    db = path / "tiercel.db" if path.is_dir() or (not path.suffix and not must_exist) else path
    if must_exist and not db.is_file():
        raise CopyError(f"{location}: no store there (neither a state directory with tiercel.db nor a SQLite file)")
    return db


def open_store(location: str, *, source: bool) -> Store:
    if is_url(location):
        problem = check_url(location, "source" if source else "destination")
        if problem is not None:
            raise CopyError(problem.message())
        from tiercel.store.postgres import PostgresStore  # only when PostgreSQL is in use

        return PostgresStore(location, name="tiercel store copy")
    if "://" in location:
        raise CopyError(f"{location.split('@')[-1]!r} is neither a postgresql:// URL nor a path to a state directory "
                        "or SQLite file")
    return SqliteStore(sqlite_path(location, must_exist=source))


def empty(loaded: Loaded) -> bool:
    return loaded.next_job_id == 1 and not loaded.tokens and not loaded.reservations and not loaded.site_jobs \
        and not loaded.workers


def copy(src: Store, dst: Store, dst_shown: str, progress: Callable[[int], None] | None = None) -> Copied:
    """Copy every row of ``src`` into the empty ``dst`` (opened and closed here)."""
    loaded = dst.open()
    try:
        if not empty(loaded):
            raise CopyError(f"{dst_shown} is not empty ({loaded.next_job_id - 1} jobs, {len(loaded.tokens)} tokens): "
                            "copy only into a new store (a new database, or a state directory without tiercel.db)")
        done = Copied()
        for batch in src.export(CHUNK):
            dst.write(batch).result()
            rows = 0
            for op in batch:
                if isinstance(op, AddJob):
                    done.jobs += 1
                elif isinstance(op, Record):
                    done.attempts += len(op.records)
                    rows += len(op.records)
                elif isinstance(op, SaveToken):
                    done.tokens += 1
                elif isinstance(op, SaveReservation):
                    done.reservations += 1
                rows += not isinstance(op, Record)
            if progress is not None:
                progress(rows)
        return done
    finally:
        dst.close()
