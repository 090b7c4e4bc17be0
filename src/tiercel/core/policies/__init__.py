"""Built-in scheduling policies, registered in one explicit table, and what the engine asks of them.

Each entry maps a name to a factory taking the policy's arguments (a mapping
from the queue's configuration) and returning the policy, or a Problem naming
the bad argument. Third-party policies join through the ``tiercel.policies``
entry-point group (see ``tiercel.plugins``), never by import side effects.

The engine and the manager know policies only by the names below: the chain a
queue gets when none is configured, the policies live placement always runs,
and which policy keeps the fair-share usage the engine accounts for. This module
is the one place that turns those names into policy objects.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from tiercel.core.pipeline import Chain
from tiercel.core.policies.backfill import Backfill
from tiercel.core.policies.fairshare import FairShare
from tiercel.core.policies.fcfs import Fcfs
from tiercel.core.policies.overflow import Overflow
from tiercel.core.policies.priority import Priority
from tiercel.core.policies.requirements import Requirements
from tiercel.core.policies.reservations import Reservations
from tiercel.core.policies.throttle import Throttle
from tiercel.core.policy import Filter, Permit
from tiercel.core.problems import Problem

Factory = Callable[[Mapping[str, Any]], object]  # -> a policy, or a Problem

BUILTIN: dict[str, Factory] = {
    "fcfs": Fcfs.create,
    "throttle": Throttle.create,
    "priority": Priority.create,
    "fairshare": FairShare.create,
    "backfill": Backfill.create,
    "requirements": Requirements.create,
    "reservations": Reservations.create,
    "overflow": Overflow.create,
}

DESCRIPTIONS: dict[str, str] = {
    "fcfs": "first come, first served (always loaded; breaks every tie)",
    "throttle": "caps tasks started per cycle, and running tasks per user and per queue",
    "priority": "higher job priority first, plus ageing so low priorities are not starved",
    "fairshare": "users furthest below their share of recent usage go first (usage decays by half-life)",
    "backfill": "EASY backfill: later work may start if it does not delay the first blocked job",
    "requirements": "a worker or site must have the job's tags and enough slots and memory",
    "reservations": "reserved slots go only to their reservation's users, inside its window",
    "overflow": "work goes to peer managers only after waiting at home (after = '5m')",
}

ALWAYS = "fcfs"  # every queue loads it, listed or not: its order is the tie-break of every chain

# With no queues configured: job priority (no ageing, so a configured order is never
# overtaken by age), then first come, first served.
DEFAULT: tuple[tuple[str, Mapping[str, Any]], ...] = (
    ("requirements", {}), ("priority", {"per_hour": 0.0}), (ALWAYS, {}),
)

# Live placement checks tags and sizes before any other filter, and honours reservations
# after every other permit, whatever a queue lists.
FIRST_FILTER = "requirements"
LAST_PERMIT = "reservations"

# The policy whose order reads the usage the engine keeps, and the half-life it is kept with
# when no queue has one.
USAGE = "fairshare"
HALF_LIFE = 86400.0


def make(name: str, args: Mapping[str, Any] | None = None) -> object:
    """The built-in ``name`` with ``args``. For the registry's own constants: a Problem here is a bug."""
    made = BUILTIN[name](args or {})
    if isinstance(made, Problem):
        raise ValueError(made.message())
    return made


def default_chain(name: str) -> Chain:
    """The chain of a queue when none is configured."""
    return Chain.of(name, [make(n, args) for n, args in DEFAULT])


def default_names() -> list[str]:
    """The policies of the default chain, by name, as a queue listing shows them."""
    return [n for n, _ in DEFAULT]


def for_placement(chain: Chain) -> Chain:
    """The chain as live placement runs it: requirements first and reservations last, unless already in it."""
    filters = chain.filters if any(f.name == FIRST_FILTER for f in chain.filters) \
        else (_filter(FIRST_FILTER), *chain.filters)
    permits = chain.permits if any(p.name == LAST_PERMIT for p in chain.permits) \
        else (*chain.permits, _permit(LAST_PERMIT))
    return Chain(chain.name, chain.sorters, filters, chain.scorers, permits, chain.reservers)


def placement_names(names: Sequence[str]) -> list[str]:
    """A queue's policy names for a listing: requirements first, as placement runs it.

    The reservations permit, which placement also adds, is left out, as queue listings
    have always shown it.
    """
    return [FIRST_FILTER, *(n for n in names if n != FIRST_FILTER)]


def _filter(name: str) -> Filter:
    made = make(name)
    if not isinstance(made, Filter):
        raise TypeError(f"{name} is not a filter")
    return made


def _permit(name: str) -> Permit:
    made = make(name)
    if not isinstance(made, Permit):
        raise TypeError(f"{name} is not a permit")
    return made


def usage_half_life(chains: Iterable[Chain]) -> float | None:
    """The half-life of the first fair-share policy among the chains (usage is kept once, for all)."""
    for chain in chains:
        for s in chain.sorters:
            if s.name == USAGE:
                return float(getattr(s, "half_life", HALF_LIFE))
    return None
