"""What GT2 RSL and GT4 XML job descriptions share: GRAM's job attributes and what they become.

Both formats describe a job to Globus GRAM with the same attributes (``executable``,
``arguments``, ``count``, ``maxWallTime``, ...); ``rsl.py`` and ``gt4.py`` read their syntax into a
list of ``Attr`` and ``to_request`` maps those onto JobRequest fields (the README's table). An
attribute Tiercel cannot honour is refused by name, never ignored: a description that says
``(fileStageIn=...)`` expects files to be staged, and silently running without them would be
worse than saying so.

What substitution adds is limited (``MAX_EXPANDED_CHARS``) and charged to a ``Budget`` before each
value is built: ten ``rsl_substitution`` definitions that each repeat the one before ten times
would otherwise build 10⁹ characters out of a few hundred.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, TypeAlias

from tiercel.core.problems import MISSING, Problem
from tiercel.jobspec.request import MAX_TASKS

MAX_DESCRIPTION_CHARS = 256 * 1024
# What substitution may add to a description, definitions included: generous for paths and
# arguments (a job request holds strings of at most 64 KiB), far below what hurts to build
MAX_EXPANDED_CHARS = 1024 * 1024

Value: TypeAlias = "str | list[Value]"


@dataclass(frozen=True, slots=True)
class JobDescription:
    """A job description as Tiercel will run it."""

    kind: str  # "rsl" or "xml"
    request: dict[str, Any]  # JobRequest fields: command, queue, cwd, env, queue_name, walltime, memory, cpus
    stdout: str | None  # where 'tiercel job data' writes the tasks' output (None: NAME.stdout)
    stderr: str | None


class Fail(Exception):
    """Unwinds the parser to its entry point, which returns the Problem."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem


# ---- attributes and what they become ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Attr:
    label: str  # how errors name it: "count (line 3)" or "<count>"
    key: str  # canonical: lower case, without underscores
    value: list[Value]  # the relation's value sequence


RSL_SUPPORTED = ("executable", "arguments", "directory", "environment", "count", "jobType", "queue", "maxWallTime",
                 "maxTime", "maxMemory", "stdout", "stderr", "rsl_substitution", "fileStageIn", "fileStageOut")
XML_SUPPORTED = ("executable", "argument", "directory", "environment", "count", "jobType", "queue", "maxWallTime",
                 "maxTime", "maxMemory", "stdout", "stderr", "fileStageIn", "fileStageOut")

_NO_STAGING = "is not supported: Tiercel stages files of Gfarm only, with fileStageIn and fileStageOut"
_REFUSED = {
    "stdin": "is not supported: tasks run without standard input (let the program open the file)",
    "project": "is not supported: Tiercel keeps no project accounts (fair share is per user); leave it out",
    "hostcount": "is not supported: Tiercel runs count independent tasks, it does not spread one job over hosts",
    "maxcputime": "is not supported: Tiercel limits wall-clock time only (maxWallTime)",
    "minmemory": "is not supported: give the memory a task needs as maxMemory",
    "filestageinshared": _NO_STAGING,
    "filecleanup": _NO_STAGING,
    "multijob": "is not supported: describe one job per file",
}
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def canonical(name: str) -> str:
    """An attribute's name as GRAM compares it: case and underscores do not count."""
    return name.lower().replace("_", "")


def _show(value: list[Value]) -> str:
    def one(v: Value) -> str:
        if isinstance(v, list):
            return "(" + " ".join(one(x) for x in v) + ")"
        return v if v and re.fullmatch(r"[^\s()\"]+", v) else '"' + v.replace('"', '""') + '"'

    return " ".join(one(v) for v in value)


def _one(a: Attr) -> str:
    if len(a.value) != 1 or not isinstance(a.value[0], str):
        hint = " (quote it, or join its parts with #)" if len(a.value) > 1 else ""
        raise Fail(Problem(a.label, _show(a.value), f"must be a single value{hint}"))
    return a.value[0]


def _whole(a: Attr, low: int, high: int, unit: str) -> int:
    text = _one(a).strip()
    if not text.isascii() or not text.isdigit() or not low <= int(text) <= high:
        raise Fail(Problem(a.label, text, f"must be a whole number of {unit} from {low} to {high}"))
    return int(text)


def _path(a: Attr, what: str) -> str:
    text = _one(a)
    if not text.strip():
        raise Fail(Problem(a.label, text, "must not be empty"))
    if _URL.match(text):
        raise Fail(Problem(a.label, text, f"must be {what}: Tiercel does not transfer files to or from URLs"))
    return text


def _strings(a: Attr) -> list[str]:
    if not all(isinstance(v, str) for v in a.value):
        raise Fail(Problem(a.label, _show(a.value), "must be plain values, not parenthesised lists"))
    return [v for v in a.value if isinstance(v, str)]


def pairs(a: Attr) -> list[tuple[str, str]]:
    """``(NAME value)(NAME2 value2)``: an environment, or RSL's substitution definitions."""
    out = []
    for v in a.value:
        if not (isinstance(v, list) and len(v) == 2 and all(isinstance(x, str) for x in v)):
            raise Fail(Problem(a.label, _show(a.value), "must be pairs: (NAME value)(NAME2 value2)"))
        name = str(v[0])
        if not name or "=" in name or "\0" in name:
            raise Fail(Problem(a.label, name, "is not a variable name: it must be non-empty, without '=' or NUL"))
        out.append((name, str(v[1])))
    return out


def _check(attrs: list[Attr], kind: str) -> dict[str, Attr]:
    """Each attribute once, every unknown one refused by name; by canonical key."""
    supported = RSL_SUPPORTED if kind == "rsl" else XML_SUPPORTED
    known = {canonical(s) for s in RSL_SUPPORTED} - {"rslsubstitution"}  # XML's <argument>s come as arguments
    seen: dict[str, Attr] = {}
    for a in attrs:
        if a.key not in known:
            reason = _REFUSED.get(a.key, "is not a job attribute Tiercel supports")
            raise Fail(Problem(a.label, MISSING, f"{reason} (supported: {', '.join(supported)})"))
        if a.key in seen:
            raise Fail(Problem(a.label, MISSING, f"is given twice (first as {seen[a.key].label})"))
        seen[a.key] = a
    if "executable" not in seen:
        example = "(executable=/path/to/program)" if kind == "rsl" else "<executable>/path/to/program</executable>"
        raise Fail(Problem("executable", MISSING, f"is required: {example}"))
    if "maxwalltime" in seen and "maxtime" in seen:
        raise Fail(Problem(seen["maxtime"].label, MISSING, "cannot be given with maxWallTime (choose one)"))
    return seen


def to_request(attrs: list[Attr], kind: str, home: str | None) -> JobDescription:
    """Attributes → JobRequest fields (the README's table)."""
    seen = _check(attrs, kind)
    # the executable runs as written, with its arguments, without a shell and without the index
    # appended: GRAM's meaning; each task finds its index in TIERCEL_TASK_INDEX
    command = [_path(seen["executable"], "a program on the worker")]
    if "arguments" in seen:
        command += _strings(seen["arguments"])
    req: dict[str, Any] = {"command": command, "shell": False, "append_index": False}
    if "directory" in seen:
        cwd = _path(seen["directory"], "a directory on the worker")
        # GRAM takes a relative directory under the user's home
        req["cwd"] = cwd if cwd.startswith("/") or not home else home.rstrip("/") + "/" + cwd
    if "environment" in seen:
        req["env"] = dict(pairs(seen["environment"]))
    count = _whole(seen["count"], 1, MAX_TASKS, "tasks") if "count" in seen else 1
    job_type = _one(seen["jobtype"]).strip().lower() if "jobtype" in seen else "multiple"
    if job_type in ("mpi", "condor"):
        raise Fail(Problem(seen["jobtype"].label, job_type, "is not supported: Tiercel runs independent "
                                                            "processes (jobType single or multiple)"))
    if job_type not in ("single", "multiple"):
        raise Fail(Problem(seen["jobtype"].label, job_type, "must be single or multiple"))
    # GRAM: multiple (the default) starts count processes: here a job array of count tasks;
    # single starts one process on count CPUs: here one task that takes count slots
    req["queue"] = count if job_type == "multiple" else 1
    if job_type == "single" and count > 1:
        req["cpus"] = count
    if "queue" in seen:
        req["queue_name"] = _one(seen["queue"]).strip()
        if not 1 <= len(req["queue_name"]) <= 64:
            raise Fail(Problem(seen["queue"].label, req["queue_name"], "must be a queue name of 1 to 64 characters"))
    wall = seen.get("maxwalltime") or seen.get("maxtime")
    if wall is not None:  # minutes in GRAM
        req["walltime"] = 60 * _whole(wall, 1, 365 * 24 * 60, "minutes")
    if "maxmemory" in seen:  # megabytes in GRAM, as in Tiercel
        req["memory"] = _whole(seen["maxmemory"], 1, 64 * 1024 * 1024, "megabytes")
    outputs = {k: _path(seen[k], "a file name") if k in seen else None for k in ("stdout", "stderr")}
    _staging(seen, req)
    return JobDescription(kind, req, outputs["stdout"], outputs["stderr"])


def _staging(seen: dict[str, Attr], req: dict[str, Any]) -> None:
    """fileStageIn ((gfarm:///in/x_${I}.dat x_${I}.dat)) and fileStageOut ((out.dat gfarm:///out/out.dat)) as the
    job's inputs and outputs: a task runs in its data directory, where the inputs are under their own names
    and its outputs are picked up under theirs (so a local name must be the Gfarm file's own)."""
    for key, remote_first, field in (("filestagein", True, "inputs"), ("filestageout", False, "outputs")):
        if key not in seen:
            continue
        a = seen[key]
        if "directory" in seen:
            raise Fail(Problem(a.label, MISSING, "cannot be given with directory: a task that stages files runs in "
                                                 "its own data directory, where its files are"))
        urls = []
        for pair in pairs(a):
            remote, local = pair if remote_first else pair[::-1]
            if not remote.startswith("gfarm://"):
                raise Fail(Problem(a.label, remote, "must be a URL in Gfarm (gfarm:///path): Tiercel stages files of "
                                                    "Gfarm only"))
            own = remote.rsplit("/", 1)[-1]
            if local != own:
                raise Fail(Problem(a.label, local, f"must be the file's own name, {own!r}: a task finds its files "
                                                   "in its data directory under their names in Gfarm"))
            urls.append(remote)
        req[field] = urls


# ---- substitution budget --------------------------------------------------------------------


class Budget:
    """What substitution may still add to one description, charged before a value is used.

    Every substituted value is either a variable of the environment or one defined earlier in
    the description, itself built under this budget; charging its length before it is joined
    into anything keeps every string built here below the limit, however the definitions nest.
    """

    def __init__(self) -> None:
        self.left = MAX_EXPANDED_CHARS
        self.context = ""  # what is being expanded, for the message: "the definition of OUT"

    def charge(self, where: str, shown: str, size: int) -> None:
        if size > self.left:
            used = MAX_EXPANDED_CHARS - self.left
            inside = f" in {self.context}" if self.context else ""
            raise Fail(Problem(where, shown, f"expands to {size:,} characters{inside}: substitution may add at most "
                                             f"{MAX_EXPANDED_CHARS:,} characters to a job description, definitions "
                                             f"included ({used:,} already added)"))
        self.left -= size
