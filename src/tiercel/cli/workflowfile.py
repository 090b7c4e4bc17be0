"""Workflow files: a TOML file of named jobs that wait for one another (`tiercel workflow submit`).

    [workflow]
    name = "align"                 # optional; the file's name otherwise

    [vars]                         # {data} in commands, cwd and env values; --var data=... wins
    data = "/data/run1"

    [jobs.prepare]
    command = "./prepare.sh {data}"

    [jobs.sweep]                   # the fields of a job file, and after = [...]
    command = ["./align.sh"]
    each_line = "samples.txt"      # relative to the workflow file
    after = ["prepare"]            # a job of this file, or an earlier job's id; :any :notok :corr
    retries = 2

Read into the REST API's workflow request; the manager checks it whole, and stores it whole or not
at all. A problem names the file, the line and the key.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from tiercel.config.source import locate
from tiercel.core.problems import Problem
from tiercel.jobspec.files import sweep_entries
from tiercel.jobspec.request import request_json

TABLES = ("workflow", "vars", "jobs")
_VAR = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class WorkflowFileError(Exception):
    """One line: the file, the line and the key, the value and what is allowed."""


def load_workflow(path: Path, overrides: dict[str, str] | None = None) -> dict[str, Any]:
    """The workflow request of a file (WorkflowFileError naming what is wrong)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise WorkflowFileError(f"workflow: {str(path)!r} cannot be read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise WorkflowFileError(f"workflow: {str(path)!r} is not UTF-8 text") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise WorkflowFileError(f"workflow: {path} is not valid TOML: {exc}") from None
    found = _read(path, data, overrides or {})
    if isinstance(found, Problem):
        line = locate(text, found.field)
        where = f"line {line}: " if line is not None else ""
        raise WorkflowFileError(f"{path}: {where}{found.message()}")
    return found


def _read(path: Path, data: dict[str, Any], overrides: dict[str, str]) -> dict[str, Any] | Problem:
    for key, value in data.items():
        if key not in TABLES:
            return Problem(key, value if not isinstance(value, dict) else "[...]",
                           f"is not a table of a workflow file (known: {', '.join(f'[{t}]' for t in TABLES)})")
    head = data.get("workflow", {})
    if not isinstance(head, dict) or set(head) - {"name", "max_running", "categories"}:
        return Problem("workflow", sorted(head) if isinstance(head, dict) else head,
                       'may hold only name = "...", max_running = N and a [workflow.categories] table')
    categories = head.get("categories", {})
    if not isinstance(categories, dict):
        return Problem("workflow.categories", categories, "must be a table of category = N (its tasks at once)")
    variables = data.get("vars", {})
    if not isinstance(variables, dict) or not all(isinstance(v, str | int | float) for v in variables.values()):
        return Problem("vars", "[...]", 'must be a table of name = "value"')
    values = {str(k): str(v) for k, v in variables.items()} | overrides
    jobs = data.get("jobs")
    if not isinstance(jobs, dict) or not jobs:
        return Problem("jobs", "(none)", "must hold at least one [jobs.NAME] table")
    out = []
    category_of: dict[str, str] = {}
    for name, table in jobs.items():
        if not isinstance(table, dict):
            return Problem(f"jobs.{name}", table, "must be a table of the job's fields")
        job = dict(table)
        if "name" in job:
            return Problem(f"jobs.{name}.name", job["name"], "is the table's own name: leave it out")
        job["name"] = name
        category = job.pop("category", None)
        if category is not None:
            if not isinstance(category, str) or category not in categories:
                return Problem(f"jobs.{name}.category", category, "must be a category of [workflow.categories] "
                                                                  f"({', '.join(categories) or 'none there'})")
            category_of[name] = category
        job = _substitute(job, values)
        entries = sweep_entries(path, job)
        if isinstance(entries, Problem):
            return Problem(f"jobs.{name}.{entries.field}", entries.value, entries.allowed)
        after = entries.get("after", [])
        if not isinstance(after, list):
            return Problem(f"jobs.{name}.after", after, 'must be a list, e.g. ["prepare", "sweep:corr", 12]')
        out.append(request_json(entries))
    request: dict[str, Any] = {"name": str(head.get("name") or path.stem), "jobs": out}
    if "max_running" in head:
        request["max_running"] = head["max_running"]
    if categories:
        request["categories"], request["category_of"] = categories, category_of
    return request


def _substitute(job: dict[str, Any], values: dict[str, str]) -> dict[str, Any]:
    """{name} of a variable replaced in the command, cwd and env values; other braces left as they are."""

    def sub(text: Any) -> Any:
        if not isinstance(text, str):
            return text
        return _VAR.sub(lambda m: values.get(m.group(1), m.group(0)), text)

    out = dict(job)
    command = out.get("command")
    out["command"] = [sub(c) for c in command] if isinstance(command, list) else sub(command)
    if "cwd" in out:
        out["cwd"] = sub(out["cwd"])
    if isinstance(out.get("env"), dict):
        out["env"] = {k: sub(v) for k, v in out["env"].items()}
    return out
