"""Queues from TOML: each names its ordered chain of policies and its limits.

    [queues.default]
    policies = ["fairshare", "fcfs", "backfill"]   # in order; fcfs is always implied
    default = true
    max_running = 1000            # tasks running in this queue at once
    max_running_per_user = 200
    max_per_cycle = 100           # tasks started per scheduling cycle

    [queues.default.fairshare]    # a policy's arguments, in a table named after it
    half_life = 604800

Limits become a throttle policy at the end of the chain. Any error names the
queue, the key and what is allowed, and nothing of a bad file is applied. The file is read by
``tiercel.config`` (the manager's ``--config``, ``tiercel simulate --queue-config``), which adds
the file and the line to a problem's key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tiercel.core.pipeline import Chain
from tiercel.core.policies import ALWAYS
from tiercel.core.problems import Problem
from tiercel.plugins import build

QUEUE_KEYS = ("policies", "default", "max_running", "max_running_per_user", "max_per_cycle", "description")
LIMITS = {"max_running": "per_queue", "max_running_per_user": "per_user", "max_per_cycle": "per_cycle"}


@dataclass(frozen=True)
class Queue:
    name: str
    chain: Chain
    policies: tuple[str, ...]
    limits: dict[str, int]
    default: bool = False
    description: str = ""


def parse(data: dict[str, Any]) -> dict[str, Queue] | Problem:
    queues = data.get("queues")
    if not isinstance(queues, dict) or not queues:
        return Problem("queues", queues, "must be a table with at least one [queues.NAME]")
    out: dict[str, Queue] = {}
    for name, spec in queues.items():
        queue = _queue(name, spec)
        if isinstance(queue, Problem):
            return queue
        out[name] = queue
    defaults = [q.name for q in out.values() if q.default]
    if len(defaults) > 1:
        return Problem("queues", defaults, "more than one queue says default = true; choose one")
    if not defaults:
        first = next(iter(out.values()))
        out[first.name] = Queue(first.name, first.chain, first.policies, first.limits, True, first.description)
    return out


def _queue(name: str, spec: Any) -> Queue | Problem:
    where = f"queues.{name}"
    if not isinstance(spec, dict):
        return Problem(where, spec, "must be a table")
    names = spec.get("policies", [ALWAYS])
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        return Problem(f"{where}.policies", names, "must be a list of policy names, e.g. [\"fairshare\", \"fcfs\"]")
    for key, value in spec.items():
        if key not in QUEUE_KEYS and not (isinstance(value, dict) and key in names):
            allowed = ", ".join(QUEUE_KEYS)
            return Problem(f"{where}.{key}", value, f"is not a queue setting (allowed: {allowed}, "
                                                    "or a table of arguments named after a listed policy)")
    limits: dict[str, int] = {}
    for key, arg in LIMITS.items():
        if key in spec:
            value = spec[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                return Problem(f"{where}.{key}", value, "must be a whole number of at least 1")
            limits[arg] = value
    policies = []
    for policy_name in dict.fromkeys([*names, ALWAYS]):
        args = spec.get(policy_name, {})
        if policy_name == "throttle":
            args = {**args, **limits}
        made = build(policy_name, args)
        if isinstance(made, Problem):
            return Problem(f"{where}.{made.field}" if made.field != "policy" else f"{where}.policies",
                           made.value, made.allowed)
        policies.append(made)
    if limits and "throttle" not in names:
        made = build("throttle", limits)
        if isinstance(made, Problem):
            return made
        policies.append(made)
    default = spec.get("default", False)
    if not isinstance(default, bool):
        return Problem(f"{where}.default", default, "must be true or false")
    return Queue(name, Chain.of(name, policies), tuple(dict.fromkeys([*names, ALWAYS])), limits, default,
                 str(spec.get("description", "")))


def single(policies: list[str]) -> Queue | Problem:
    """A one-off queue from a list of policy names (for ``simulate --policy``)."""
    queues = parse({"queues": {"cli": {"policies": policies}}})
    if isinstance(queues, Problem):  # speak of what the user typed, not of a queue they never named
        field = queues.field.replace("queues.cli.policies", "policy").replace("queues.cli.", "")
        return Problem(field, queues.value, queues.allowed)
    return queues["cli"]
