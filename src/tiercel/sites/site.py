"""What every site shell shares: health, the poll loop, and the manager it reports to.

A site shell is a thin loop around pure parts: the adapter builds commands and
parses output, the core chooses sites and places tasks; the shell runs the
commands (``CommandRunner``), one batched status poll per interval, and turns
what it learns into engine events through the manager (``Host``).
"""

from __future__ import annotations

import asyncio
import getpass
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from tiercel.core.engine import KillTasks, SendTasks
from tiercel.core.model import Report, TaskRef, WorkerId, WorkerInfo
from tiercel.core.reservations import Reservation
from tiercel.core.sites import SiteInfo, SiteLoad
from tiercel.sites.adapters import ADAPTERS
from tiercel.sites.adapters.base import ElementState, NativeReservation, ParseError, Reserving
from tiercel.sites.config import SiteConfig
from tiercel.sites.runner import CommandFailed, CommandRunner, Runner
from tiercel.store import SaveSiteJob, WriteOp

log = logging.getLogger("tiercel.sites")
UNMIRROR_RETRY = 10.0  # seconds between tries to delete a mirrored reservation that jobs still run in


class MirrorFailed(Exception):
    """The batch system would not create or delete a mirrored reservation; the message says what it said."""


class HostQueries(Protocol):
    """What a site may read of the manager's state."""

    def site_load(self, site: str) -> tuple[SiteLoad, int, int]: ...  # slots, waiting slots, running tasks
    def reservation(self, name: str) -> Reservation | None: ...
    def reservations(self) -> list[Reservation]: ...


class Host(Protocol):
    """The manager, as a site sees it: the commands a site sends it and what it may read.

    A site never sees the engine: it reports what its batch system did (``site_reports``,
    ``attach_site``, ``detach_site``) and asks what waits for it (``site_work``, ``site_free``).
    """

    @property
    def queries(self) -> HostQueries: ...
    def clock(self) -> float: ...
    def write(self, ops: list[WriteOp]) -> asyncio.Future[None]: ...
    def site_reports(self, worker: WorkerId, reports: list[Report], freed: int) -> asyncio.Future[None]: ...
    def attach_site(self, worker: WorkerId, info: WorkerInfo, deliver: Callable[[SendTasks | KillTasks], None],
                    *, held: list[TaskRef], credit: int) -> list[TaskRef]: ...
    def detach_site(self, worker: WorkerId) -> None: ...
    def site_work(self, site: str, reservation: str | None = None, *,
                  besides: frozenset[str] = frozenset()) -> int: ...
    def site_free(self, site: str) -> dict[str | None, int]: ...
    def sites_changed(self) -> None: ...
    def pilot_url(self) -> str: ...
    def worker_token_file(self) -> Path: ...


class Site:
    """Base of the site shells: health, the poll loop, `tiercel sites` rows."""

    mode = "native"

    def __init__(self, name: str, cfg: SiteConfig, host: Host, spool: Path, *, runner: Runner | None = None) -> None:
        self.name = name
        self.cfg = cfg
        self.host = host
        self.spool = spool
        # the batch commands run here; tests hand in a fake batch system
        self.runner: Runner = runner if runner is not None else CommandRunner(
            timeout=cfg.seconds("command_timeout"), retries=cfg.retries, path=cfg.path)
        self.problem: str | None = None
        self.last_poll: float | None = None
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.python = cfg.python or sys.executable
        self._wake = asyncio.Event()
        self.unmirror_later: dict[str, tuple[float, float]] = {}  # mirror -> (its end, when to try again)

    # ---- health ----------------------------------------------------------

    def degrade(self, message: str) -> None:
        self.last_error, self.last_error_at = message, self.host.clock()
        if self.problem != message:
            log.error("site %s degraded: %s", self.name, message)
            self.problem = message
            self.host.sites_changed()

    def recover(self) -> None:
        if self.problem is not None:
            log.warning("site %s works again (was: %s)", self.name, self.problem)
            self.problem = None
            self.host.sites_changed()

    def info(self) -> SiteInfo:
        return SiteInfo(self.name, self.cfg.kind, self.cfg.mode_of(), self.cfg.limits(), self.problem,
                        self.headroom())

    def headroom(self) -> int:
        return 0

    def capacity(self) -> int:
        """The most slots the site holds at once: what a reservation on it may take."""
        return self.cfg.max_pilots * self.cfg.slots

    # ---- mirrored reservations ---------------------------------------------

    def _reserving(self) -> Reserving | None:
        adapter = ADAPTERS.get(self.cfg.kind)
        made = adapter() if adapter is not None else None
        return made if isinstance(made, Reserving) else None

    def mirror_problem(self) -> str | None:
        """Why a reservation on this site cannot be mirrored into its batch system, or None if it can."""
        if self._reserving() is not None:
            return None
        return f"site {self.name} ({self.cfg.kind}) cannot mirror reservations: only Slurm sites can"

    async def mirror(self, r: Reservation) -> str:
        """Create the batch system's own reservation for ``r``; its name there. Raises MirrorFailed."""
        adapter = self._reserving()
        if adapter is None:
            raise MirrorFailed(self.mirror_problem() or "")
        native = NativeReservation(f"tiercel-{r.name}", r.start, r.end, r.slots, (getpass.getuser(),),
                                   self.cfg.partition)
        try:
            name = adapter.parse_reserve(await self.runner.run(adapter.reserve(native, self.host.clock()), retries=0))
        except (CommandFailed, ParseError, ValueError) as exc:
            raise MirrorFailed(str(exc)) from None
        log.info("site %s: reservation %s mirrored as %s", self.name, r.name, name)
        return name

    async def unmirror(self, name: str, end: float) -> bool:
        """Delete a mirrored reservation (True), or, while jobs still run in it, keep trying each
        UNMIRROR_RETRY seconds until they have ended or the reservation has (False). Raises MirrorFailed."""
        adapter = self._reserving()
        if adapter is None:
            raise MirrorFailed(self.mirror_problem() or "")
        try:
            await self.runner.run(adapter.unreserve(name), retries=0)
        except CommandFailed as exc:
            if adapter.in_use not in str(exc):
                raise MirrorFailed(str(exc)) from None
            self.unmirror_later[name] = (end, self.host.clock() + UNMIRROR_RETRY)
            return False
        self.unmirror_later.pop(name, None)
        log.info("site %s: %s reservation %s deleted", self.name, self.cfg.kind, name)
        return True

    async def _unmirror_due(self) -> None:
        now = self.host.clock()
        for name, (end, due) in list(self.unmirror_later.items()):
            if end <= now:
                del self.unmirror_later[name]  # ended: the batch system removes it itself
            elif due <= now:
                try:
                    await self.unmirror(name, end)
                except MirrorFailed as exc:
                    del self.unmirror_later[name]
                    log.error("site %s: reservation %s could not be deleted: %s", self.name, name, exc)

    # ---- the loop --------------------------------------------------------

    async def run(self) -> None:
        interval = self.cfg.seconds("poll_interval")
        while True:
            try:
                if self.unmirror_later:
                    await self._unmirror_due()
                await self.cycle()
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug in a cycle must not stop the site for good
                log.exception("site %s: poll cycle failed", self.name)
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), interval)
            except TimeoutError:
                pass

    def wake(self) -> None:
        """Run a cycle now (work arrived) rather than at the next interval."""
        self._wake.set()

    async def cycle(self) -> None:
        raise NotImplementedError

    async def poll(self, query: Callable[[], Awaitable[list[ElementState]]]) -> list[ElementState] | None:
        """One status query; on failure the site is degraded (unreadable output is logged) and None returned."""
        try:
            rows = await query()
        except CommandFailed as exc:
            self.degrade(f"status query failed: {exc}")
            return None
        except ParseError as exc:
            log.error("site %s: cannot read the status output (%s): %r", self.name, exc, exc.text[:2000])
            self.degrade(f"status output unreadable: {exc}")
            return None
        self.last_poll = self.host.clock()
        return rows

    def restore(self, rows: Sequence[SaveSiteJob]) -> None:
        """Batch jobs this site had submitted before the manager restarted."""

    def attach(self) -> None:
        """Called once the engine holds the restored jobs, before any dispatch."""

    def send(self, e: SendTasks) -> None:
        raise NotImplementedError(f"site {self.name} takes no tasks directly")

    def kill(self, e: KillTasks) -> None:
        raise NotImplementedError(f"site {self.name} runs no tasks directly")

    def worker_connected(self, name: str) -> None:
        """A worker of this site connected (a pilot)."""

    async def close(self) -> None:
        """The manager is stopping: batch jobs keep running and are found again on restart."""

    def describe(self) -> dict[str, Any]:
        loads, queued, running = self.host.queries.site_load(self.name)
        return {
            "name": self.name, "kind": self.cfg.kind, "mode": self.mode,
            "state": "degraded" if self.problem else "ok",
            "slots_total": loads.total + self.headroom(),
            "slots_free": loads.free + self.headroom(),
            "queued": queued, "running": running,
            "batch_jobs": self.batch_jobs(), "last_poll": self.last_poll,
            "last_error": self.last_error, "last_error_at": self.last_error_at,
            "commands": dict(self.runner.issued),
        }

    def batch_jobs(self) -> int:
        return 0
