"""Sites from the manager's TOML configuration.

    [sites.pool]                  # the pool of connected workers: always there; limits optional
    max_cpus = 64

    [sites.hpc]
    kind = "slurm"                # local | slurm | sge | pbs | lsf | htcondor
    mode = "pilot"                # native: tasks become array elements; pilot: start workers there
    partition = "short"           # (queue = … for sge, pbs, lsf)
    max_pilots = 8
    pilot_walltime = "1h"

Anything wrong — an unknown kind, a missing or misspelt option, a bad value —
is one problem naming the key, the value and what is allowed; ``tiercel.config``,
which reads the file, puts the file and the key's line in front, and the manager then
refuses to start.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from tiercel.core.problems import Problem
from tiercel.core.sites import POOL, Limits, Mode, SiteInfo
from tiercel.jobspec.values import parse_duration, parse_memory

KINDS = ("local", "slurm", "sge", "pbs", "lsf", "htcondor")


def _seconds(v: str | float) -> float:
    out = parse_duration(v)
    if isinstance(out, Problem):
        raise ValueError(out.allowed)
    return out


def _mb(v: str | int) -> int:
    out = parse_memory(v)
    if isinstance(out, Problem):
        raise ValueError(out.allowed)
    return out


NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,31}$")
NODE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")  # a host name, as Gfarm names its nodes
TAG = re.compile(r"^[A-Za-z0-9_.:+-]{1,64}$")  # what a job may require (--requires), so a tag a job can match


class _Base(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_cpus: int | None = Field(None, ge=1, description="cores one task may ask for")
    max_memory: str | int | None = Field(None, description="memory one task may ask for, e.g. '16G'")
    max_walltime: str | float | None = Field(None, description="the longest walltime a task may ask for")
    tags: list[str] = Field(default_factory=list, description="capabilities its tasks get (for --requires)")

    @field_validator("tags")
    @classmethod
    def _tags(cls, v: list[str]) -> list[str]:
        for tag in v:
            if not TAG.fullmatch(tag):
                raise ValueError(f"{tag!r} must be a tag of letters, digits and . _ : + - (at most 64)")
        return v

    @field_validator("max_memory")
    @classmethod
    def _memory(cls, v: str | int | None) -> str | int | None:
        if v is not None:
            _mb(v)
        return v

    @field_validator("max_walltime")
    @classmethod
    def _walltime(cls, v: str | float | None) -> str | float | None:
        if v is not None:
            _seconds(v)
        return v

    def limits(self) -> Limits:
        return Limits(self.max_cpus, None if self.max_memory is None else _mb(self.max_memory),
                      None if self.max_walltime is None else _seconds(self.max_walltime),
                      frozenset(self.tags))


class PoolConfig(_Base):
    pass


class SiteConfig(_Base):
    """A local or batch-system site."""

    kind: Literal["local", "slurm", "sge", "pbs", "lsf", "htcondor"]
    mode: Literal["native", "pilot"] = "native"
    # where jobs go in the batch system
    partition: str | None = Field(None, description="Slurm partition")
    queue: str | None = Field(None, description="queue (SGE, PBS, LSF)")
    account: str | None = None
    directives: list[str] = Field(default_factory=list, description="extra lines for the batch script header")
    # native mode
    max_in_flight: int = Field(1000, ge=1, description="tasks in the batch system at once")
    max_array: int | None = Field(None, ge=1, description="elements per native array (default: the system's)")
    throttle: int | None = Field(None, ge=1, description="elements of one array running at once (Slurm's %N)")
    # pilot mode (and local)
    slots: int = Field(1, ge=1, le=100_000, description="task slots per pilot (cores it asks for)")
    min_pilots: int = Field(0, ge=0)
    max_pilots: int = Field(4, ge=1)
    pilot_walltime: str | float = "1h"
    idle_timeout: str | float = "5m"
    max_failures: int = Field(3, ge=1, description="pilots that end without connecting before the site degrades")
    url: str | None = Field(None, description="the manager URL pilots connect to (default: its listen address)")
    # how the site is driven
    poll_interval: str | float = "5s"
    command_timeout: str | float = "30s"
    retries: int = Field(2, ge=0, le=10, description="extra tries of a failed batch command")
    spool: str | None = Field(None, description="shared directory for scripts and task outputs")
    python: str | None = Field(None, description="Python that runs Tiercel inside batch jobs")
    path: list[str] = Field(default_factory=list, description="directories searched first for the batch commands")
    # data-aware placement
    data_nodes: list[str] = Field(default_factory=list,
                                  description="the Gfarm file-system nodes its hosts see (its pilots' --data-host)")

    @field_validator("pilot_walltime", "idle_timeout", "poll_interval", "command_timeout")
    @classmethod
    def _durations(cls, v: str | float) -> str | float:
        _seconds(v)
        return v

    @field_validator("directives", "partition", "queue", "account")
    @classmethod
    def _one_line(cls, v: Any) -> Any:
        for item in v if isinstance(v, list) else [v]:
            if isinstance(item, str) and ("\n" in item or "\r" in item):
                raise ValueError("must be a single line")
        return v

    @field_validator("data_nodes")
    @classmethod
    def _data_nodes(cls, v: list[str], info: ValidationInfo) -> list[str]:
        for node in v:
            if not NODE.fullmatch(node):
                raise ValueError(f"{node!r} must be a Gfarm node's host name as 'gfhost -l' lists it (letters, "
                                 "digits, . and -, at most 253)")
        if len(set(v)) != len(v):
            raise ValueError("names a node twice")
        if v and info.data.get("kind") != "local" and info.data.get("mode") != "pilot":
            raise ValueError("only a site that starts pilots (mode = \"pilot\", or kind = \"local\") has workers "
                             "that read inputs on a node; this site's mode is native")
        return v

    def seconds(self, key: str) -> float:
        return _seconds(getattr(self, key))

    def mode_of(self) -> Mode:
        return Mode.PILOT if self.kind == "local" else Mode(self.mode)

    def limits(self) -> Limits:
        lim = super().limits()
        if self.mode_of() is not Mode.PILOT:
            return lim
        # a task runs inside one pilot: asking for more cores than a pilot has, it would wait for ever
        return dataclasses.replace(lim, max_cpus=min(lim.max_cpus or self.slots, self.slots))


def parse(data: dict[str, Any]) -> dict[str, SiteConfig | PoolConfig] | Problem:
    """The [sites.*] tables of a configuration (in file order; the pool first), or the first problem."""
    sites = data.get("sites", {})
    if not isinstance(sites, dict):
        return Problem("sites", sites, "must be tables [sites.NAME]")
    out: dict[str, SiteConfig | PoolConfig] = {}
    for name, table in sites.items():
        where = f"sites.{name}"
        if not NAME.fullmatch(name):
            return Problem(where, name, "must be a site name: a letter, then letters, digits, - or _")
        if not isinstance(table, dict):
            return Problem(where, table, "must be a table")
        try:
            if name == POOL:
                out[name] = PoolConfig.model_validate(table)
            else:
                if "kind" not in table:
                    return Problem(where, name, f"needs kind = one of {', '.join(KINDS)}")
                out[name] = SiteConfig.model_validate(table)
        except ValidationError as exc:
            err = exc.errors()[0]
            key = ".".join(str(p) for p in err["loc"]) or "?"
            value = table.get(str(err["loc"][0]), err.get("input")) if err["loc"] else err.get("input")
            allowed = _allowed(err, key)
            return Problem(f"{where}.{err['loc'][0]}" if err["loc"] else where, value, allowed)
        except ValueError as exc:
            return Problem(where, name, str(exc))
    pool = out.pop(POOL, None) or PoolConfig.model_validate({})
    return {POOL: pool, **out}


def _allowed(err: Any, key: str) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        fields = ", ".join(sorted(SiteConfig.model_fields))
        return f"is not a site option ({key}); options: {fields}"
    if kind == "literal_error":
        return f"is not allowed for {key}: {err['msg'].lower()}"
    msg = str(err["msg"]).removeprefix("Value error, ")
    return f"is not valid for {key}: {msg}"


def infos(sites: dict[str, SiteConfig | PoolConfig]) -> list[SiteInfo]:
    """The core's view of the configured sites, healthy and empty."""
    out = []
    for name, cfg in sites.items():
        if isinstance(cfg, SiteConfig):
            out.append(SiteInfo(name, cfg.kind, cfg.mode_of(), cfg.limits()))
        else:
            out.append(SiteInfo(name, POOL, Mode.POOL, cfg.limits()))
    return out
