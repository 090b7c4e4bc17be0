"""The manager's cache of where the files of its jobs are, kept up to date off the event loop.

Three kinds of work run in threads, never on the loop that dispatches: learning the replicas of
new paths (batched: every path asked for since the last batch in one ``gfwhere``), making copies
the engine asked for (a pool of ``COPIERS``, each (file, node) once), and watching the nodes
(``gfsched -M`` every ``POLL`` seconds: a node that goes down or comes back, or the metadata
server going out of reach). Each change hands a new ``DataView`` to ``publish`` on the loop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

from tiercel.core.data import DataView
from tiercel.data import gfarm
from tiercel.data.config import DataConfig

log = logging.getLogger(__name__)
POLL = 2.0
COPIERS = 4


class DataService:
    def __init__(self, publish: Callable[[DataView], None], copied: Callable[[str, str, bool], None],
                 config: DataConfig | None = None) -> None:
        self._publish = publish  # called from threads: it must hand over to the loop itself
        self._copied = copied
        self._lock = threading.Lock()
        self.replicas: dict[str, frozenset[str]] = {}
        self.sizes: dict[str, int] = {}
        self.copying: dict[tuple[str, str], float] = {}
        self.up: set[str] | None = None
        self.problem = ""
        self.copied_bytes = 0
        self.copies_made = 0
        self.config = config or DataConfig()
        self.rate = self.config.copy_rate  # bytes/s a copy is held to ([data] copy_rate), None: unheld
        self._wanted: set[str] = set()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._copiers = ThreadPoolExecutor(COPIERS, thread_name_prefix="gfarm-copy")
        self._thread = threading.Thread(target=self._loop, name="gfarm-locate", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        self._copiers.shutdown(wait=False, cancel_futures=True)

    # ---- asked by the shell (on the loop): cheap, never waits on Gfarm --------------------

    def learn(self, paths: Iterable[str], *, again: bool = False) -> None:
        with self._lock:
            new = {p for p in paths if again or p not in self.replicas}
            self._wanted |= new
        if new:
            self._wake.set()

    def replicate(self, path: str, node: str, size: int) -> None:
        with self._lock:
            if (path, node) in self.copying:
                return
            self.copying[(path, node)] = time.time()
        self._copiers.submit(self._copy, path, node, size)
        self._emit()

    def view(self, located: frozenset[str] = frozenset()) -> DataView:
        with self._lock:
            every = set().union(*self.replicas.values()) if self.replicas else set()
            down = frozenset(every - self.up) if self.up is not None else frozenset()
            return DataView(dict(self.replicas), dict(self.sizes), down, dict(self.copying),
                            reachable=not self.problem, problem=self.problem,
                            copy_rate=self.rate or DataView.copy_rate, located=located,
                            recheck_after=self.config.recheck_unreadable)

    def check(self, paths: list[str]) -> list[str] | str:
        """The paths that do not exist (a submission that asked to be refused for them), or why it cannot
        be known. Runs Gfarm's commands: call it in a thread."""
        try:
            where, _ = gfarm.locate(paths)
        except gfarm.GfarmError as exc:
            return str(exc)
        return [p for p in paths if p not in where]

    # ---- threads ---------------------------------------------------------------------------

    def _loop(self) -> None:
        next_poll = 0.0
        while not self._stop.is_set():
            self._wake.wait(timeout=max(0.05, next_poll - time.monotonic()))
            self._wake.clear()
            if self._stop.is_set():
                return
            if time.monotonic() >= next_poll:
                self._poll()
                next_poll = time.monotonic() + POLL
            with self._lock:
                batch, self._wanted = sorted(self._wanted), set()
            if batch:
                self._locate(batch)

    def _poll(self) -> None:
        try:
            up = gfarm.nodes_up()
            problem = ""
        except gfarm.GfarmError as exc:
            up, problem = None, str(exc)
        with self._lock:
            changed = (up is not None and up != self.up) or problem != self.problem
            came_back = up is not None and self.up is not None and bool(up - self.up)
            if up is not None:
                self.up = up
            self.problem = problem
            if came_back or (not problem and changed):
                self._wanted |= set(self.replicas)  # a node is back: ask again where things are
        if changed:
            log.info("Gfarm: nodes up %s%s", sorted(up or ()), f" ({problem})" if problem else "")
            self._emit()

    def _locate(self, paths: list[str]) -> None:
        try:
            where, sizes = gfarm.locate(paths)
        except gfarm.GfarmError as exc:
            with self._lock:
                self.problem = str(exc)
                self._wanted |= set(paths)  # asked again once it answers
            self._emit()
            return
        with self._lock:
            for p in paths:
                self.replicas[p] = where.get(p, (frozenset(), frozenset()))[0]
            self.sizes.update(sizes)
        self._emit(frozenset(paths))

    def _copy(self, path: str, node: str, size: int) -> None:
        ok = False
        log.info("copying %s to %s (%d bytes)", path, node, size)
        try:
            ok = gfarm.replicate(path, node, size, self.rate)
        except Exception as exc:  # whatever it was, the copy is over: its tasks must not wait for it forever
            log.warning("copy of %s to %s failed: %s", path, node, exc)
        with self._lock:
            self.copying.pop((path, node), None)
            if ok:
                self.replicas[path] = self.replicas.get(path, frozenset()) | {node}
                self.copied_bytes += size
                self.copies_made += 1
        if not ok:
            log.warning("copy of %s to %s did not make a replica", path, node)
        self._copied(path, node, ok)
        self._emit()

    def _emit(self, located: frozenset[str] = frozenset()) -> None:
        self._publish(self.view(located))
