"""Sites: where a job may run, and which one to choose for it.

A site is the pool of connected workers or a batch system (Slurm, Grid
Engine, …) driven in one of two modes: *native*, where tasks become elements
of the batch system's own arrays, or *pilot*, where the site starts Tiercel
workers as batch jobs and they pull tasks like pool workers. To the engine both
are just places tagged with their site; this module decides which site a job's
waiting tasks go to, and says why every other site was passed over.

The choice is made per job, once its tasks wait (CSF4: "choose a satisfied
cluster for each job automatically"): first the sites that can run it at all
(tags, cores, memory, walltime within the site's limits), then the healthy
ones, then the one with the most room for it now — free slots less the work
already bound there — with the order of the configuration breaking ties.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from tiercel.core.model import WorkerId
from tiercel.core.policy import OK, Group, Status, never, wait
from tiercel.core.problems import MISSING, Problem

POOL = "pool"


SITE_WORKER = "site:"  # a native site runs its tasks as one virtual worker, named after it


def site_worker(site: str) -> WorkerId:
    """The virtual worker through which a native site takes its tasks."""
    return WorkerId(SITE_WORKER + site)


def site_of_worker(worker: str) -> str | None:
    """The native site behind a virtual worker, or None for a real worker."""
    return worker[len(SITE_WORKER):] if worker.startswith(SITE_WORKER) else None


PEER_WORKER = "peer:"  # a peer manager takes forwarded work as one virtual worker, named after it


def peer_worker(peer: str) -> WorkerId:
    """The virtual worker through which a peer manager takes forwarded ranges."""
    return WorkerId(PEER_WORKER + peer)


def peer_of_worker(worker: str) -> str | None:
    """The peer behind a virtual worker, or None for any other place."""
    return worker[len(PEER_WORKER):] if worker.startswith(PEER_WORKER) else None


class Mode(enum.Enum):
    POOL = "pool"  # workers connect by themselves
    NATIVE = "native"  # tasks become elements of the batch system's arrays
    PILOT = "pilot"  # the site starts workers as batch jobs
    PEER = "peer"  # another manager's sites, as its summaries describe them: work goes there forwarded


@dataclass(frozen=True, slots=True)
class Limits:
    """What one task may ask of a site. None: no limit known."""

    max_cpus: int | None = None
    max_memory_mb: int | None = None
    max_walltime: float | None = None
    tags: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class SiteInfo:
    """A site as configured, and what its shell knows now."""

    name: str
    kind: str  # "pool", "local", "slurm", "sge", "pbs", "lsf", "htcondor", "peer"
    mode: Mode
    limits: Limits = Limits()
    problem: str | None = None  # degraded: the last error, and work goes elsewhere
    headroom: int = 0  # slots it could still add (pilots not yet started)


@dataclass(frozen=True, slots=True)
class SiteLoad:
    """A site's slots as the engine sees them: its places, and the work bound to it."""

    total: int = 0
    free: int = 0
    queued: int = 0  # slots of waiting tasks already bound to it


def fits(group: Group, site: SiteInfo) -> Status:
    """Can this site ever run the group's tasks? NEVER names the limit; OK otherwise."""
    lim = site.limits
    missing = group.requires - lim.tags if site.mode is not Mode.POOL else frozenset()
    if missing:
        return never("sites", f"site {site.name} lacks tag(s) {', '.join(sorted(missing))}")
    if lim.max_cpus is not None and group.cpus > lim.max_cpus:
        return never("sites", f"site {site.name} allows {lim.max_cpus} core(s) per task; a task needs {group.cpus}")
    if lim.max_memory_mb is not None and group.memory_mb > lim.max_memory_mb:
        return never("sites", f"site {site.name} allows {lim.max_memory_mb} MB per task; "
                              f"a task needs {group.memory_mb} MB")
    if lim.max_walltime is not None and group.walltime is not None and group.walltime > lim.max_walltime:
        return never("sites", f"site {site.name} allows a walltime of {lim.max_walltime:g}s; "
                              f"a task needs {group.walltime:g}s")
    return OK


def admissible(group: Group, sites: Sequence[SiteInfo]) -> Problem | None:
    """At submission: the pinned site must exist and fit; an unpinned job must fit some site."""
    names = [s.name for s in sites]
    if group.site is not None:
        site = next((s for s in sites if s.name == group.site), None)
        if site is None:
            return Problem("site", group.site, f"is not a site; sites: {', '.join(names)}")
        verdict = fits(group, site)
        return None if verdict.ok else Problem("site", group.site, f"cannot run this job: {verdict.reason}")
    verdicts = [fits(group, s) for s in sites]
    if any(v.ok for v in verdicts):
        return None
    # at submission the job has no number yet: name what it asks for, which is what fits nowhere
    return Problem("job", MISSING, f"{needs(group)} fits no site: " + "; ".join(v.reason for v in verdicts))


def needs(group: Group) -> str:
    """What each of the group's tasks asks of a site, in the words of the sites' limits."""
    asks = [f"{group.cpus} core(s)"]
    if group.memory_mb:
        asks.append(f"{group.memory_mb} MB")
    if group.walltime is not None:
        asks.append(f"a walltime of {group.walltime:g}s")
    if group.requires:
        asks.append(f"tag(s) {', '.join(sorted(group.requires))}")
    return "a task needing " + ", ".join(asks)


@dataclass(frozen=True, slots=True)
class Choice:
    site: str | None  # None: no site may take it now (all passed over)
    passed: tuple[tuple[str, Status], ...]  # every other site, and why

    def reason(self) -> str:
        chosen = f"runs on site {self.site}" if self.site else "no site can take it now"
        if not self.passed:
            return chosen
        return chosen + "; passed over: " + "; ".join(f"{st.reason}" for _, st in self.passed)


def choose(group: Group, sites: Sequence[SiteInfo], loads: dict[str, SiteLoad]) -> Choice:
    """Which site the group's waiting tasks go to.

    A pinned job goes to its site whatever its load (it waits there). Otherwise
    sites without any slot now are passed over while another has some; when
    none has, the job waits on the first that fits (the pool, unless
    configured otherwise), so that work is not lost for want of workers.

    A peer is chosen only when no local site can take the job at all: a job bound to a local
    site still overflows to peers task by task when the local places are full (the queue's
    policies decide, see policies/requirements.py), so one array can run at home and away.
    """
    local = [s for s in sites if s.mode is not Mode.PEER]
    peers = [s for s in sites if s.mode is Mode.PEER and not group.stay]
    choice = _choose(group, local, loads)
    if choice.site is not None or not peers or (group.site is not None and any(s.name == group.site for s in local)):
        return choice
    away = _choose(group, peers, loads)
    if away.site is None:
        return Choice(None, choice.passed + away.passed)
    return Choice(away.site, choice.passed + tuple((n, st) for n, st in away.passed))


def _choose(group: Group, sites: Sequence[SiteInfo], loads: dict[str, SiteLoad]) -> Choice:
    passed: list[tuple[str, Status]] = []
    healthy: list[tuple[int, SiteInfo]] = []  # (room, site), in configuration order
    for site in sites:
        if group.site is not None and site.name != group.site:
            continue
        verdict = fits(group, site)
        if not verdict.ok:
            passed.append((site.name, verdict))
        elif site.problem is not None:
            passed.append((site.name, wait("sites", f"site {site.name} is degraded: {site.problem}")))
        else:
            load = loads.get(site.name, SiteLoad())
            healthy.append((load.free + site.headroom - load.queued, site))
    if not healthy:
        return Choice(None, tuple(passed))
    if group.site is not None:
        return Choice(healthy[0][1].name, tuple(passed))
    with_slots = [(room, site) for room, site in healthy if _capacity(site, loads) >= group.cpus]
    if not with_slots:
        return Choice(healthy[0][1].name, tuple(passed))
    best_room, best = max(with_slots, key=lambda rs: rs[0])  # max keeps the first of equals
    for room, site in healthy:
        if site is best:
            continue
        if _capacity(site, loads) < group.cpus:
            load = loads.get(site.name, SiteLoad())
            passed.append((site.name, wait("sites", f"site {site.name} has no slots now "
                                                    f"({load.total} connected, {site.headroom} it could start)")))
        else:
            passed.append((site.name, wait("sites", f"site {site.name} has less room ({room} vs {best_room} slots)")))
    return Choice(best.name, tuple(passed))


def _capacity(site: SiteInfo, loads: dict[str, SiteLoad]) -> int:
    return loads.get(site.name, SiteLoad()).total + site.headroom
