"""Fakes for unit tests of the site shells: a clock, the manager as a site sees it, and Slurm.

``FakeHost`` implements ``sites.site.Host``: it records every command a site sends the
manager, in order, and answers what the test sets. ``FakeSlurm`` stands in for the site's
``runner``: it keeps arrays and their elements' states in memory, records every command, and
answers ``sbatch``, ``squeue`` and ``scancel`` in the formats of Slurm 22.05 recorded in
test_adapters_slurm.py, so the real Slurm adapter builds and parses every command. Nothing
here sleeps or reads the wall clock: a command takes one turn of the event loop.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tiercel.core.engine import KillTasks, SendTasks
from tiercel.core.model import Report, TaskRef, WorkerId, WorkerInfo
from tiercel.core.reservations import Reservation
from tiercel.core.sites import SiteLoad
from tiercel.sites.adapters.base import Invocation
from tiercel.sites.runner import CommandFailed
from tiercel.store import SaveSiteJob, WriteOp


class Clock:
    """Time as the test sets it."""

    def __init__(self, now: float = 1_750_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeQueries:
    """What a site may read of the manager's state: whatever the test puts here."""

    def __init__(self) -> None:
        self.booked: dict[str, Reservation] = {}
        self.load: tuple[SiteLoad, int, int] = (SiteLoad(), 0, 0)

    def site_load(self, site: str) -> tuple[SiteLoad, int, int]:
        return self.load

    def reservation(self, name: str) -> Reservation | None:
        return self.booked.get(name)

    def reservations(self) -> list[Reservation]:
        return list(self.booked.values())


@dataclass
class Attached:
    worker: WorkerId
    info: WorkerInfo
    deliver: Callable[[SendTasks | KillTasks], None]
    held: list[TaskRef]
    credit: int


@dataclass
class FakeHost:
    """The manager as a site sees it: records what the site tells it, answers what the test sets."""

    clock_: Clock
    tmp: Path
    queries: FakeQueries = field(default_factory=FakeQueries)
    # in the order the site called them: ("write", op), ("reports", (worker, reports, freed)),
    # ("attach", Attached), ("detach", worker)
    calls: list[tuple[str, Any]] = field(default_factory=list)
    settled_meanwhile: list[TaskRef] = field(default_factory=list)  # attach_site's answer: what the site must kill
    work: dict[str | None, int] = field(default_factory=dict)  # slots waiting, by reservation (None: none)
    free: dict[str | None, int] = field(default_factory=dict)  # free slots of connected pilots, by reservation
    work_asked: list[tuple[str, str | None, frozenset[str]]] = field(default_factory=list)
    changed: int = 0  # sites_changed calls
    durable_later: bool = False  # write and site_reports answer futures the test settles with make_durable()
    unsettled: list[asyncio.Future[None]] = field(default_factory=list)

    def clock(self) -> float:
        return self.clock_()

    def _future(self) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.durable_later:
            self.unsettled.append(fut)
        else:
            fut.set_result(None)
        return fut

    def make_durable(self) -> None:
        """Everything written or reported so far is now in the store."""
        for fut in self.unsettled:
            fut.set_result(None)
        self.unsettled.clear()

    def write(self, ops: list[WriteOp]) -> asyncio.Future[None]:
        self.calls.extend(("write", op) for op in ops)
        return self._future()

    def site_reports(self, worker: WorkerId, reports: list[Report], freed: int) -> asyncio.Future[None]:
        self.calls.append(("reports", (worker, reports, freed)))
        return self._future()

    def attach_site(self, worker: WorkerId, info: WorkerInfo, deliver: Callable[[SendTasks | KillTasks], None],
                    *, held: list[TaskRef], credit: int) -> list[TaskRef]:
        self.calls.append(("attach", Attached(worker, info, deliver, list(held), credit)))
        return list(self.settled_meanwhile)

    def detach_site(self, worker: WorkerId) -> None:
        self.calls.append(("detach", worker))

    def site_work(self, site: str, reservation: str | None = None, *,
                  besides: frozenset[str] = frozenset()) -> int:
        # as Engine.waiting_on: with a reservation only its work; besides leaves those reservations' work out
        self.work_asked.append((site, reservation, besides))
        return sum(n for r, n in self.work.items() if (reservation is None or r == reservation) and r not in besides)

    def site_free(self, site: str) -> dict[str | None, int]:
        return dict(self.free)

    def sites_changed(self) -> None:
        self.changed += 1

    def pilot_url(self) -> str:
        return "http://manager.example:8750"

    def worker_token_file(self) -> Path:
        return self.tmp / "worker.token"

    # ---- what the test reads back ------------------------------------------

    def of(self, kind: str) -> list[Any]:
        return [what for k, what in self.calls if k == kind]

    def written(self) -> list[WriteOp]:
        return self.of("write")

    def saves(self) -> list[SaveSiteJob]:
        return [op for op in self.written() if isinstance(op, SaveSiteJob)]

    def reports(self) -> list[Report]:
        return [r for _, reports, _ in self.of("reports") for r in reports]

    def attached(self) -> list[Attached]:
        return self.of("attach")


_ARRAY = re.compile(r"^#SBATCH --array=1-(\d+)", re.M)
_OUTPUT = re.compile(r"^#SBATCH --output=(\S+)/%A_%a\.out$", re.M)
_ELEMENTS = re.compile(r"(\d+)(?:_(\d+)|_\[(\d+)-(\d+)\])?")


class FakeSlurm:
    """Slurm in memory, as the site's runner: sbatch, squeue and scancel, recorded and answered."""

    def __init__(self, first_id: int = 17) -> None:
        self.next_id = first_id
        self.issued: Counter[str] = Counter()
        self.calls: list[Invocation] = []
        self.arrays: dict[str, dict[int, str]] = {}  # native id -> element -> Slurm state code
        self.scripts: dict[str, str] = {}  # native id -> what sbatch was fed
        self.failing: dict[str, tuple[str, int | None]] = {}  # command -> its error, and how many more times
        self.prints: dict[str, str] = {}  # command -> what it prints instead of its own answer
        self.on_submit: Callable[[Invocation], None] | None = None  # looks at the world as sbatch runs

    async def run(self, inv: Invocation, *, retries: int | None = None) -> str:
        name = inv.argv[0]
        self.calls.append(inv)
        self.issued[name] += 1
        await asyncio.sleep(0)  # a command takes a turn of the loop, as a subprocess would
        if name in self.failing:
            message, times = self.failing[name]
            if times == 1:
                del self.failing[name]
            elif times is not None:
                self.failing[name] = (message, times - 1)
            raise CommandFailed(f"{name} failed (exit 1): {message}")
        if name == "sbatch" and self.on_submit is not None:
            self.on_submit(inv)
        answer = {"sbatch": self._sbatch, "squeue": self._squeue, "scancel": self._scancel}[name](inv)
        return self.prints.get(name, answer)

    def _sbatch(self, inv: Invocation) -> str:
        assert inv.argv == ("sbatch", "--parsable") and inv.stdin is not None
        m = _ARRAY.search(inv.stdin)
        assert m is not None, inv.stdin
        native = str(self.next_id)
        self.next_id += 1
        self.arrays[native] = dict.fromkeys(range(1, int(m.group(1)) + 1), "PENDING")
        self.scripts[native] = inv.stdin
        return f"{native}\n"

    def _squeue(self, inv: Invocation) -> str:
        wanted = inv.argv[inv.argv.index("-j") + 1].split(",")
        lines = [f"{native}_{n}|{code}|{'NonZeroExitCode' if code == 'FAILED' else 'None'}"
                 for native in wanted for n, code in self.arrays.get(native, {}).items()]
        return "".join(line + "\n" for line in lines)

    def _scancel(self, inv: Invocation) -> str:
        for word in inv.argv[1:]:
            m = _ELEMENTS.fullmatch(word)
            assert m is not None, word
            native, one, first, last = m.groups()
            elements = self.arrays.get(native, {})
            picked = list(elements) if one is None and first is None else \
                [int(one)] if one is not None else list(range(int(first), int(last) + 1))
            for n in picked:
                if n in elements:
                    elements[n] = "CANCELLED"
        return ""

    # ---- what the test does to the batch system and reads back -----------------

    def fail(self, name: str, message: str, times: int | None = None) -> None:
        """The command fails with this message (on stderr, exit 1), ``times`` times or until ``heal``."""
        self.failing[name] = (message, times)

    def heal(self, name: str) -> None:
        self.failing.pop(name, None)

    def set(self, native: str, code: str, *elements: int) -> None:
        """These elements (all when none are named) are now in this Slurm state."""
        for n in elements or list(self.arrays[native]):
            self.arrays[native][n] = code

    def purge(self, native: str, *elements: int) -> None:
        """These elements are no longer listed (MinJobAge passed, or an admin purged them)."""
        for n in elements:
            self.arrays[native].pop(n, None)

    def commands(self, name: str) -> list[Invocation]:
        return [inv for inv in self.calls if inv.argv[0] == name]

    def header(self, native: str) -> dict[str, str]:
        """The #SBATCH options the array was submitted with."""
        out = {}
        for line in self.scripts[native].splitlines():
            if line.startswith("#SBATCH --"):
                key, _, value = line.removeprefix("#SBATCH ").partition("=")
                out[key] = value
        return out

    def workdir(self, native: str) -> Path:
        m = _OUTPUT.search(self.scripts[native])
        assert m is not None
        return Path(m.group(1))


def finish(folder: Path, element: int, code: int, *, started: float, ended: float, out: bytes = b"",
           err: bytes = b"", timeout_used: bool = False) -> None:
    """What the shim leaves in the array's folder when an element's task ends (see sites/shim.py)."""
    (folder / f"{element}.out").write_bytes(out)
    (folder / f"{element}.err").write_bytes(err)
    (folder / f"{element}.end").write_text(f"{code} {started:.3f} {ended:.3f} {int(timeout_used)}\n")


async def turns(n: int = 10) -> None:
    """Let the loop run what the site started (fake commands take one turn each) and the callbacks after."""
    for _ in range(n):
        await asyncio.sleep(0)
