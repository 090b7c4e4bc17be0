"""The manager's ``[data]`` table: how data-aware placement over Gfarm is tuned.

    [data]
    copy_rate = "10MB/s"        # what a copy between nodes moves; copies are held to it (a bandwidth limit)
    recheck_unreadable = "1m"   # a replica a task could not read is passed over this long, then asked again

Anything wrong is one ``Problem`` naming the key, the value and what is allowed;
``tiercel.config`` puts the file and the key's line in front.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from tiercel.core.problems import Problem
from tiercel.jobspec.values import parse_duration

RATE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([kKMGT]i?)?B/s\s*$")
UNITS = {None: 1, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
         "ki": 2**10, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
RATE_ALLOWED = "must be a rate such as \"10MB/s\", \"500kB/s\" or \"1GiB/s\" (bytes per second, above 0)"
KEYS = ("copy_rate", "recheck_unreadable")


@dataclass(frozen=True)
class DataConfig:
    copy_rate: float | None = None  # bytes/s copies are held to; None: as fast as Gfarm copies (50 MB/s assumed)
    recheck_unreadable: float = 60.0  # seconds an unreadable replica is passed over before gfwhere is asked again


def parse_rate(value: object) -> float | None:
    """``"10MB/s"`` → 1e7 bytes per second; None when it is not a rate."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if value > 0 else None
    if not isinstance(value, str):
        return None
    m = RATE.fullmatch(value)
    if m is None:
        return None
    rate = float(m.group(1)) * UNITS[m.group(2)]
    return rate if rate > 0 else None


def parse(table: Any) -> DataConfig | Problem:
    if not isinstance(table, dict):
        return Problem("data", table, "must be a table [data]")
    for key in table:
        if key not in KEYS:
            return Problem(f"data.{key}", table[key], f"is not a [data] option; options: {', '.join(KEYS)}")
    out = DataConfig()
    if "copy_rate" in table:
        rate = parse_rate(table["copy_rate"])
        if rate is None:
            return Problem("data.copy_rate", table["copy_rate"], RATE_ALLOWED)
        out = DataConfig(rate, out.recheck_unreadable)
    if "recheck_unreadable" in table:
        value = table["recheck_unreadable"]
        seconds = parse_duration(value) if isinstance(value, (str, int, float)) else None
        if not isinstance(seconds, float):
            return Problem("data.recheck_unreadable", value, "must be a duration such as \"1m\" or \"30s\" "
                                                             "(more than 0 seconds, at most 365 days)")
        out = DataConfig(out.copy_rate, seconds)
    return out
