"""Checking a policy's arguments: a Problem names the argument, the value and what is allowed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tiercel.core.problems import Problem


def arg_int(args: Mapping[str, Any], policy: str, key: str, default: int | None, *, low: int = 0
            ) -> int | Problem | None:
    value = args.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        return Problem(f"{policy}.{key}", value, f"must be a whole number of at least {low}")
    return value


def arg_float(args: Mapping[str, Any], policy: str, key: str, default: float, *, low: float = 0.0
              ) -> float | Problem:
    value = args.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < low:
        return Problem(f"{policy}.{key}", value, f"must be a number of at least {low:g}")
    return float(value)


def unknown_args(args: Mapping[str, Any], policy: str, known: tuple[str, ...]) -> Problem | None:
    extra = sorted(set(args) - set(known))
    if extra:
        allowed = ", ".join(known) if known else "none"
        return Problem(f"{policy}.{extra[0]}", args[extra[0]], f"is not an argument of {policy} (allowed: {allowed})")
    return None


_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def arg_duration(args: Mapping[str, Any], policy: str, key: str, default: float) -> float | Problem:
    """Seconds, given as a number or as "30s", "5m", "2h", "1d"."""
    value = args.get(key, default)
    if isinstance(value, str) and value[-1:] in _UNITS:
        try:
            seconds = float(value[:-1]) * _UNITS[value[-1]]
        except ValueError:
            seconds = -1.0
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        seconds = -1.0
    if not 0 <= seconds < 1e9:
        return Problem(f"{policy}.{key}", value, "must be a duration: seconds, or e.g. '30s', '5m', '2h', '1d'")
    return seconds
