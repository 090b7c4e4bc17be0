"""What every interface checks beyond a job's own fields: its queue, its reservation, its site.

Pure reads of the engine's state: nothing is stored or changed either way.
"""

from __future__ import annotations

import dataclasses

from tiercel.core.engine import Engine
from tiercel.core.model import JobId, JobSpec, UserName
from tiercel.core.policy import Group
from tiercel.core.problems import MISSING, Problem
from tiercel.core.reservations import when
from tiercel.core.sites import admissible


def admit(engine: Engine, user: UserName, spec: JobSpec, now: float) -> JobSpec | Problem:
    """The spec with its queue (and a reservation's site) filled in, or the first problem."""
    if not spec.queue:
        spec = dataclasses.replace(spec, queue=engine.default_queue)
    elif spec.queue not in engine.queues:
        return Problem("queue_name", spec.queue,
                       f"is not a queue here (queues: {', '.join(engine.queues)}; see 'tiercel queues')")
    if spec.reservation is not None:
        spec_or_problem = _reservation(engine, user, spec, now)
        if isinstance(spec_or_problem, Problem):
            return spec_or_problem
        spec = spec_or_problem
    return check_sites(engine, spec) or spec


def _reservation(engine: Engine, user: UserName, spec: JobSpec, now: float) -> JobSpec | Problem:
    if spec.walltime is None:
        return Problem("walltime", MISSING, "is required with a reservation, so its tasks provably end "
                                            "with the window (e.g. --walltime 30m)")
    r = engine.reservations.get(spec.reservation or "")
    if r is None:
        return Problem("reservation", spec.reservation, "does not exist (see 'tiercel reserve list')")
    if not r.allows(user):
        return Problem("reservation", spec.reservation,
                       f"is not open to {user} (it is for {', '.join(sorted(r.users))})")
    if r.end <= now:
        return Problem("reservation", spec.reservation, f"has ended (at {when(r.end)})")
    left = r.end - max(now, r.start)
    if spec.walltime > left:
        since = "now" if now >= r.start else f"its start at {when(r.start)}"
        return Problem("walltime", f"{spec.walltime:g}s",
                       f"is longer than what is left of reservation {r.name}: {left:.0f}s from {since} "
                       f"to its end at {when(r.end)}; its tasks could never start (ask for less)")
    if spec.site is None:
        return dataclasses.replace(spec, site=r.site)  # its tasks run where its slots are held
    if spec.site != r.site:
        return Problem("site", spec.site, f"is not where reservation {r.name} holds its slots ({r.site}); "
                                          "leave --site out or name that site")
    return spec


def check_sites(engine: Engine, spec: JobSpec) -> Problem | None:
    """A pinned site must exist and fit; any job must fit some site."""
    group = Group(JobId(0), UserName(""), spec.size, spec.cpus, walltime=spec.walltime, requires=spec.requires,
                  memory_mb=spec.memory_mb, site=spec.site)
    return admissible(group, engine.sites)
