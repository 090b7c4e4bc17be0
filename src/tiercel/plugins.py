"""Finding policies: the built-in table first, then the ``tiercel.policies`` entry points.

Entry points are looked up and imported only when a queue names one, so a
broken third-party package cannot break start-up or other queues: it fails
with a clear message naming the package when, and only when, it is selected.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from tiercel.core.policies import BUILTIN, DESCRIPTIONS, Factory
from tiercel.core.policy import Filter, Permit, Reserver, Scorer, Sorter
from tiercel.core.problems import Problem

GROUP = "tiercel.policies"
POINTS = (Sorter, Filter, Scorer, Permit, Reserver)


@dataclass(frozen=True)
class PolicyInfo:
    name: str
    origin: str  # "built-in" or the entry point's module:attribute
    status: str  # "ok", or why it cannot be used
    description: str


def _installed() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def factory(name: str) -> Factory | Problem:
    if name in BUILTIN:
        return BUILTIN[name]
    ep = _installed().get(name)
    if ep is None:
        known = ", ".join([*BUILTIN, *sorted(_installed())])
        return Problem("policy", name, f"is not a known policy (known: {known}; see 'tiercel policies')")
    try:
        loaded = ep.load()
    except Exception as exc:  # a third party's import error, whatever it is
        return Problem("policy", name, f"failed to load from {ep.value}: {type(exc).__name__}: {exc}")
    create = getattr(loaded, "create", loaded)
    if not callable(create):
        return Problem("policy", name, f"{ep.value} is neither a class with create() nor a callable")
    return create  # type: ignore[no-any-return]


def build(name: str, args: Mapping[str, Any]) -> object | Problem:
    """The policy ``name`` made with ``args``, checked to implement at least one extension point."""
    make = factory(name)
    if isinstance(make, Problem):
        return make
    try:
        policy = make(args)
    except Exception as exc:
        return Problem("policy", name, f"could not be created: {type(exc).__name__}: {exc}")
    if isinstance(policy, Problem):
        return policy
    if not any(isinstance(policy, point) for point in POINTS):
        return Problem("policy", name, "implements none of sort, filter, score, permit or reserve")
    return policy


def listing() -> list[PolicyInfo]:
    out = [PolicyInfo(n, "built-in", "ok", DESCRIPTIONS.get(n, "")) for n in BUILTIN]
    for name, ep in sorted(_installed().items()):
        if name in BUILTIN:
            out.append(PolicyInfo(name, ep.value, "shadowed by the built-in of the same name", ""))
            continue
        made = build(name, {})
        status = made.message() if isinstance(made, Problem) else "ok"
        doc = "" if isinstance(made, Problem) else (type(made).__doc__ or "").strip().splitlines()[0:1]
        out.append(PolicyInfo(name, ep.value, status, doc[0] if doc else ""))
    return out
