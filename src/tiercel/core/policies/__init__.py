"""Built-in scheduling policies, registered in one explicit table.

Each entry maps a name to a factory taking the policy's arguments (a mapping
from the queue's configuration) and returning the policy, or a Problem naming
the bad argument. Third-party policies join through the ``tiercel.policies``
entry-point group (see ``tiercel.plugins``), never by import side effects.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from tiercel.core.policies.backfill import Backfill
from tiercel.core.policies.fairshare import FairShare
from tiercel.core.policies.fcfs import Fcfs
from tiercel.core.policies.priority import Priority
from tiercel.core.policies.requirements import Requirements
from tiercel.core.policies.reservations import Reservations
from tiercel.core.policies.throttle import Throttle

Factory = Callable[[Mapping[str, Any]], object]  # -> a policy, or a Problem

BUILTIN: dict[str, Factory] = {
    "fcfs": Fcfs.create,
    "throttle": Throttle.create,
    "priority": Priority.create,
    "fairshare": FairShare.create,
    "backfill": Backfill.create,
    "requirements": Requirements.create,
    "reservations": Reservations.create,
}

DESCRIPTIONS: dict[str, str] = {
    "fcfs": "first come, first served (always loaded; breaks every tie)",
    "throttle": "caps tasks started per cycle, and running tasks per user and per queue",
    "priority": "higher job priority first, plus ageing so low priorities are not starved",
    "fairshare": "users furthest below their share of recent usage go first (usage decays by half-life)",
    "backfill": "EASY backfill: later work may start if it does not delay the first blocked job",
    "requirements": "a worker or site must have the job's tags and enough slots and memory",
    "reservations": "reserved slots go only to their reservation's users, inside its window",
}
