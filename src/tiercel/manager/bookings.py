"""Advance reservations in the manager: admitted, mirrored into a batch system, stored, and
acted on when their windows open and close.

Part of the shell (it changes the engine's state through the shell's one write path); split
out because a reservation's life has steps of its own: a mirror made before it is stored and
dropped when any later step fails, a timer for the next window edge, work ended with its window.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Iterable
from typing import Protocol

from tiercel.core.engine import Effect, Engine
from tiercel.core.problems import MISSING, Problem, Refusal
from tiercel.core.reservations import Reservation, admit, when
from tiercel.manager.sessions import Sessions
from tiercel.manager.settings import Settings
from tiercel.sites.site import MirrorFailed, Site
from tiercel.store import DeleteReservation, SaveReservation, Store

log = logging.getLogger("tiercel.manager")


class Shell(Protocol):
    """The shell, as reservations need it: its state and its one write path."""

    engine: Engine
    sessions: Sessions
    sites: dict[str, Site]
    store: Store
    settings: Settings
    clock: Callable[[], float]
    loop: asyncio.AbstractEventLoop | None

    def apply(self, effects: Iterable[Effect]) -> asyncio.Future[None]: ...
    def pump(self) -> None: ...
    def refuse_new_work(self) -> None: ...


class Bookings:
    def __init__(self, shell: Shell) -> None:
        self.shell = shell
        self._timer: asyncio.TimerHandle | None = None
        self._closed: set[str] = set()  # reservations whose end has been acted on

    def pool_slots(self) -> int:
        """What the pool site can hold: its configured size, or the slots of the workers connected now."""
        return max(self.shell.settings.pool_slots, self.shell.sessions.slots())

    def site_capacity(self, name: str) -> int | Problem:
        """The slots a reservation on site ``name`` may take, or why there is no such site."""
        if name == "pool":
            return self.pool_slots()
        site = self.shell.sites.get(name)
        if site is None:
            return Problem("site", name, f"is not a site here (sites: {', '.join(['pool', *self.shell.sites])}; "
                                         "see 'tiercel sites')")
        return site.capacity()

    async def reserve(self, r: Reservation, *, mirror: bool = False) -> Problem | None:
        """Admit, mirror (if asked) and store a reservation; when any step fails, none has an effect."""
        shell, engine = self.shell, self.shell.engine
        shell.refuse_new_work()
        capacity = self.site_capacity(r.site)
        if isinstance(capacity, Problem):
            return capacity
        now = shell.clock()
        site = shell.sites.get(r.site)
        if mirror:
            why = "the pool is no batch system" if site is None else site.mirror_problem()
            if why is not None:
                return Problem("mirror", MISSING, f"a mirror is not possible: {why}")
        problem = admit(r, [x for x in engine.reservations.values() if x.end > now], capacity, now)
        if problem is not None:
            return problem
        if mirror and site is not None:
            try:
                r = dataclasses.replace(r, mirror=await site.mirror(r))
            except MirrorFailed as exc:
                return Refusal("mirror", MISSING, f"{site.cfg.kind} refused the reservation: {exc}")
        problem = engine.reserve(r, capacity, shell.clock())  # again: another may have come meanwhile
        if problem is not None:
            await self._drop_mirror(r)
            return problem
        try:
            await asyncio.wrap_future(shell.store.write([SaveReservation(r, shell.clock())]))
        except Exception:
            engine.unreserve(r.name)  # not durable: not granted
            await self._drop_mirror(r)
            raise
        self.arm()
        shell.pump()  # a window open now changes what may start
        return None

    async def unreserve(self, name: str) -> tuple[bool, str | None]:
        """Delete a reservation and its mirror: (whether it existed, what went wrong with the mirror)."""
        shell, engine = self.shell, self.shell.engine
        r = engine.reservations.get(name)
        if r is None or not engine.unreserve(name):
            return False, None
        await asyncio.wrap_future(shell.store.write([DeleteReservation(name)]))
        self._closed.discard(name)
        await shell.apply(engine.end_reservation(name, f"reservation {name} was deleted before these tasks "
                                                       "could start"))
        self.arm()
        shell.pump()  # the slots it held are free for everyone again
        return True, await self._drop_mirror(r)

    def arm(self) -> None:
        """Wake at the next start or end of a reservation's window: what may start changes then."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        now = self.shell.clock()
        edges = [t for r in self.shell.engine.reservations.values() for t in (r.start, r.end) if t > now]
        loop = self.shell.loop
        if edges and loop is not None:
            self._timer = loop.call_later(min(edges) - now + 0.001, self.window_edge)

    def window_edge(self) -> None:
        """A window opened or closed: place work now, and end the work of reservations that ended."""
        shell = self.shell
        self._timer = None
        now = shell.clock()
        for r in list(shell.engine.reservations.values()):
            if r.end <= now and r.name not in self._closed:
                self._closed.add(r.name)
                shell.apply(shell.engine.end_reservation(
                    r.name, f"reservation {r.name} ended at {when(r.end)} before these tasks could start"))
        self.arm()
        shell.pump()
        for site in shell.sites.values():
            site.wake()  # a pilot site may start (or stop starting) pilots for a window

    async def _drop_mirror(self, r: Reservation) -> str | None:
        """Delete ``r``'s mirror, if it has one; what went wrong, or None."""
        site = self.shell.sites.get(r.site)
        if r.mirror is None or site is None or r.end <= self.shell.clock():
            return None  # Slurm removes a reservation itself when it ends
        try:
            if not await site.unmirror(r.mirror, r.end):
                return (f"{site.cfg.kind} reservation {r.mirror} still has jobs running in it; it is deleted once "
                        "they end (or, at the latest, when it ends)")
        except MirrorFailed as exc:
            log.error("reservation %s: its %s reservation %s could not be deleted: %s", r.name, site.cfg.kind,
                      r.mirror, exc)
            return f"{site.cfg.kind} reservation {r.mirror} could not be deleted: {exc}"
        return None
