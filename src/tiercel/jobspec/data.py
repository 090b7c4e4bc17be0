"""A job's files in Gfarm (``inputs``, ``outputs``) checked at submit: every URL, and every pattern
where a file per task is needed. The meaning of the URLs is core/data.py's."""

from __future__ import annotations

from tiercel.core.data import parse_url, per_task
from tiercel.core.problems import Problem

MAX_FILES = 64  # URLs a job may name, inputs and outputs each
MISSING_INPUT = ("fail", "refuse")


def check_files(inputs: list[str], outputs: list[str], tasks: int, on_missing_input: str) -> Problem | None:
    """The first thing wrong with a job's inputs and outputs, naming the field, the value and what is allowed."""
    for name, urls in (("inputs", inputs), ("outputs", outputs)):
        if len(urls) > MAX_FILES:
            return Problem(name, f"{len(urls)} URLs", f"must be at most {MAX_FILES} URLs")
        for i, url in enumerate(urls):
            parsed = parse_url(url)
            if isinstance(parsed, str):
                return Problem(f"{name}.{i}", url, parsed)
            if urls.index(url) != i:
                return Problem(f"{name}.{i}", url, "is given twice")
    for i, url in enumerate(outputs):
        if tasks > 1 and not per_task(url):
            return Problem(f"outputs.{i}", url, f"must hold {{index}} (gfarm:///results/{{index}}.out): the job has "
                                                f"{tasks} tasks, and each writes its own file")
    if on_missing_input not in MISSING_INPUT:
        return Problem("on_missing_input", on_missing_input, "must be fail (a task whose input is missing fails, "
                                                             "saying so) or refuse (the job is refused at submit)")
    if on_missing_input == "refuse" and not inputs:
        return Problem("on_missing_input", on_missing_input, "needs inputs to check")
    return None
