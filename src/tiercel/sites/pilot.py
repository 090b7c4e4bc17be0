"""Pilot mode: the site starts Tiercel workers as batch jobs when work waits for it.

Pilots are ordinary workers (``tiercel worker --site NAME --lifetime …``) that
connect back and pull many small tasks each; the engine places tasks on them
like on any worker of the site. This shell only decides how many pilots to
have (``pilots_wanted``, pure) and keeps count of them: one array submission
per cycle at most (and one more for each mirrored reservation open now, whose
pilots start inside the batch system's reservation and run only its work), one
batched status query, never more than ``max_pilots`` alive, and after
``max_failures`` pilots in a row end without ever connecting the site is
degraded and submits nothing until a back-off has passed.

``kind = "local"`` is the same with processes on the manager's machine in place
of batch jobs.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import shlex
import signal
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tiercel.core.reservations import Reservation
from tiercel.sites.adapters import ADAPTERS
from tiercel.sites.adapters.base import ArrayRequest, ElementState, NativeState, ParseError
from tiercel.sites.config import SiteConfig
from tiercel.sites.runner import CommandFailed, Runner
from tiercel.sites.site import Host, Site, log
from tiercel.store import DeleteSiteJob, SaveSiteJob

BACKOFF_CYCLES = 12  # polls a site rests after pilots keep failing, before it tries one again
MISSING_POLLS = 3
MIN_PILOT_LIFE = 120  # seconds: a reservation with less left gets no more pilots of its own


def pilots_wanted(*, waiting_slots: int, free_slots: int, alive: int, pending: int, slots: int,
                  min_pilots: int, max_pilots: int) -> int:
    """How many pilots to submit now: enough for the work waiting beyond free and coming slots, within limits."""
    need = max(0, waiting_slots - free_slots)
    more = math.ceil(need / slots) - pending
    more = max(more, min_pilots - alive)
    return max(0, min(more, max_pilots - alive))


def data_host(nodes: Sequence[str]) -> tuple[str, str]:
    """Shell lines that choose a pilot's Gfarm node among its site's ``data_nodes``, and its ``--data-host``.

    One node: that one. Several: the one this host is named as (Gfarm names nodes by host name),
    else one by the pilot's element number, so a site's pilots spread evenly over the nodes its
    hosts see. (Node names are checked host names: nothing in them needs quoting.)"""
    if not nodes:
        return "", ""
    if len(nodes) == 1:
        return "", f"--data-host {nodes[0]} "
    named = " ".join(f"{n}|{n}.*) node={n} ;;" for n in nodes)
    spread = (f"set -- {' '.join(nodes)}; shift $(( (${{TIERCEL_ELEMENT:-1}} - 1) % {len(nodes)} )); "
              "node=$1 ;;")
    return f'case "$(uname -n)" in {named} *) {spread} esac\n', '--data-host "$node" '


@dataclass
class Pilots:
    native_id: str
    key: str
    count: int
    submitted: float
    state: dict[int, NativeState] = field(default_factory=dict)
    connected: set[int] = field(default_factory=set)
    ended: set[int] = field(default_factory=set)
    missing: dict[int, int] = field(default_factory=dict)
    reservation: str | None = None  # started inside this reservation's batch-system mirror, for its work only

    def alive(self) -> int:
        return self.count - len(self.ended)

    def pending(self) -> int:
        return sum(1 for n in range(1, self.count + 1)
                   if n not in self.ended and n not in self.connected)


class PilotSite(Site):
    mode = "pilot"

    def __init__(self, name: str, cfg: SiteConfig, host: Host, spool: Path, *, runner: Runner | None = None) -> None:
        super().__init__(name, cfg, host, spool, runner=runner)
        self.mode = cfg.mode_of().value
        self.pilots: dict[str, Pilots] = {}
        self.failures = 0
        self.resting = 0
        self._seq = 0
        self._procs: dict[str, list[asyncio.subprocess.Process]] = {}  # local kind: its worker processes

    def alive(self) -> int:
        return sum(p.alive() for p in self.pilots.values())

    def headroom(self) -> int:
        return 0 if self.problem else max(0, self.cfg.max_pilots - self.connected()) * self.cfg.slots

    def connected(self) -> int:
        return sum(len(p.connected - p.ended) for p in self.pilots.values())

    def batch_jobs(self) -> int:
        return self.alive()

    def restore(self, rows: Sequence[Any]) -> None:
        for row in rows:
            data = json.loads(row.payload)
            self.pilots[row.native_id] = Pilots(row.native_id, data["key"], int(data["count"]), row.submitted,
                                                reservation=data.get("reservation"))

    def worker_connected(self, name: str) -> None:
        _, _, rest = name.partition(".")
        key, _, element = rest.partition(".")
        for p in self.pilots.values():
            if p.key == key and element.isdigit():
                p.connected.add(int(element))
                self.failures = 0
                self.resting = 0
                self.recover()

    # ---- the cycle -------------------------------------------------------

    async def cycle(self) -> None:
        await self._poll()
        if self.resting:
            self.resting -= 1
            if self.resting:
                return
        now = self.host.clock()
        # mirrored reservations open now: their work gets pilots of its own, inside the batch system's reservation
        reservations = self.host.queries.reservations()
        mine = frozenset(r.name for r in reservations if r.site == self.name and r.mirror)
        mirrored = {r.name: r for r in reservations
                    if r.name in mine and r.start <= now and r.end - now >= MIN_PILOT_LIFE}
        free = self._free_slots()
        # reserved work first: its pilots are the only ones that may use the cores Slurm holds for it
        sets: list[tuple[Reservation | None, int, int]] = [
            (r, self.host.site_work(self.name, r.name), math.ceil(r.slots / self.cfg.slots))
            for r in mirrored.values()]
        # the work of a mirrored reservation never runs on the other pilots: they are not started for it
        sets.append((None, self.host.site_work(self.name, besides=mine), self.cfg.max_pilots))
        for r, waiting, most in sets:
            name = r.name if r is not None else None
            own = [p for p in self.pilots.values() if p.reservation == name]
            alive = sum(p.alive() for p in self.pilots.values())
            want = pilots_wanted(waiting_slots=waiting, free_slots=free.get(name, 0),
                                 alive=sum(p.alive() for p in own), pending=sum(p.pending() for p in own),
                                 slots=self.cfg.slots, min_pilots=self.cfg.min_pilots if r is None else 0,
                                 max_pilots=most)
            want = min(want, max(0, self.cfg.max_pilots - alive))  # never past max_pilots in all
            if self.problem and want:
                want = 1  # after resting, one pilot tells whether the site works again
            if want:
                await self._submit(want, r)
                if self.problem:
                    return

    def _free_slots(self) -> dict[str | None, int]:
        """Free slots of this site's connected pilots, by the reservation they serve (None: any work)."""
        return self.host.site_free(self.name)

    def _lifetime(self, r: Reservation | None) -> float:
        """A pilot's walltime: the site's, and inside a reservation no longer than what is left of it."""
        lifetime = self.cfg.seconds("pilot_walltime")
        if r is None:
            return lifetime
        # whole minutes (what batch systems count in), rounded down so the pilot ends with the reservation;
        # under a minute, the seconds themselves (a minute would outlive it)
        left = min(lifetime, r.end - self.host.clock())
        return math.floor(left / 60) * 60 or left

    def _script(self, key: str, r: Reservation | None = None) -> str:
        token = self.host.worker_token_file()
        url = self.cfg.url or self.host.pilot_url()
        only = f"--reservation {r.name} " if r is not None else ""
        # the site's tags are what placed a job requiring them here: its pilots must have them to take it
        tags = f"--tags {shlex.quote(','.join(sorted(self.cfg.tags)))} " if self.cfg.tags else ""
        choose, data = data_host(self.cfg.data_nodes)
        return (f"{choose}exec {self.python} -m tiercel worker --manager {shlex.quote(url)} --token-file {token} "
                f"--site {self.name} --slots {self.cfg.slots} {tags}--lifetime {self._lifetime(r):g} {only}{data}"
                f"--idle-exit {self.cfg.seconds('idle_timeout'):g} --name {self.name}.{key}.$TIERCEL_ELEMENT\n")

    async def _submit(self, count: int, r: Reservation | None = None) -> None:
        self._seq += 1
        key = f"p{int(self.host.clock())}{self._seq}"
        folder = self.spool / key
        folder.mkdir(parents=True, exist_ok=True)
        try:
            native = await self._launch(key, folder, count, r)
        except (CommandFailed, ParseError, ValueError) as exc:
            self.degrade(f"pilot submit failed: {exc}")
            self.resting = BACKOFF_CYCLES
            return
        name = r.name if r is not None else None
        self.pilots[native] = Pilots(native, key, count, self.host.clock(), reservation=name)
        payload = {"key": key, "count": count, **({"reservation": name} if name else {})}
        self.host.write([SaveSiteJob(self.name, native, json.dumps(payload), self.host.clock())])
        log.info("site %s: submitted %d pilot(s) as %s%s", self.name, count, native,
                 f" inside reservation {r.mirror}" if r is not None else "")

    async def _launch(self, key: str, folder: Path, count: int, r: Reservation | None = None) -> str:
        if self.cfg.kind == "local":
            procs = []
            for n in range(1, count + 1):
                out = open(folder / f"{n}.log", "ab")  # noqa: SIM115 - handed to the child
                procs.append(await asyncio.create_subprocess_exec(
                    "/bin/sh", "-c", self._script(key, r), stdout=out, stderr=out, start_new_session=True,
                    env={**os.environ, "TIERCEL_ELEMENT": str(n)}))
                out.close()
            self._procs[key] = procs
            return key
        adapter = ADAPTERS[self.cfg.kind]()
        req = ArrayRequest(
            name=f"tiercel-pilot-{self.name}", count=count, script=self._script(key, r), workdir=str(folder),
            walltime=self._lifetime(r), cpus=self.cfg.slots,
            queue=self.cfg.partition or self.cfg.queue, account=self.cfg.account,
            directives=tuple(self.cfg.directives), reservation=r.mirror if r is not None else None)
        return adapter.parse_submit(await self.runner.run(adapter.submit(req)))

    async def _poll(self) -> None:
        if not self.pilots:
            return
        rows = await self.poll(self._states)
        if rows is None:
            return
        if self.failures < self.cfg.max_failures and self.problem and "pilot" not in self.problem:
            self.recover()
        by = {(r.native_id, r.element): r for r in rows}
        for p in list(self.pilots.values()):
            self._update(p, by)
            if p.alive() == 0:
                del self.pilots[p.native_id]
                self._procs.pop(p.key, None)
                self.host.write([DeleteSiteJob(self.name, p.native_id)])

    def _update(self, p: Pilots, by: dict[tuple[str, int | None], ElementState]) -> None:
        for n in range(1, p.count + 1):
            if n in p.ended:
                continue
            row = by.get((p.native_id, n)) or by.get((p.native_id, None))
            if row is not None and not row.state.terminal:
                p.state[n] = row.state
                p.missing.pop(n, None)  # listed again: only absences in a row count
                continue
            p.missing[n] = p.missing.get(n, 0) + 1
            if row is None and p.missing[n] < MISSING_POLLS:
                continue
            p.ended.add(n)
            if n in p.connected:
                continue
            self.failures += 1
            log.warning("site %s: pilot %s[%d] ended without connecting (%s)", self.name, p.native_id, n,
                        row.reason if row else "gone from the batch system")
            if self.failures >= self.cfg.max_failures:
                self.degrade(f"{self.failures} pilots in a row ended without connecting; "
                             f"see their output in {self.spool}")
                self.resting = BACKOFF_CYCLES

    async def _states(self) -> list[ElementState]:
        if self.cfg.kind == "local":
            rows = []
            for key, procs in self._procs.items():
                for n, proc in enumerate(procs, start=1):
                    state = NativeState.RUNNING if proc.returncode is None else \
                        NativeState.DONE if proc.returncode == 0 else NativeState.FAILED
                    rows.append(ElementState(key, n, state, proc.returncode))
            return rows
        adapter = ADAPTERS[self.cfg.kind]()
        return adapter.parse_status(await self.runner.run(adapter.status(list(self.pilots))))

    async def close(self) -> None:
        for procs in self._procs.values():  # local pilots are children: they leave with the manager
            for proc in procs:
                if proc.returncode is None:
                    try:
                        os.killpg(proc.pid, signal.SIGTERM)
                    except ProcessLookupError:
                        pass
