"""Job files: TOML (``[job]`` table) and Kestrel ``.job`` files (``[job]`` with key = value)."""

from __future__ import annotations

import configparser
import tomllib
from pathlib import Path
from typing import Any

from tiercel.core.problems import Problem


def load_job_file(path: Path) -> dict[str, Any] | Problem:
    """Read a job file into a mapping for JobRequest, or a Problem naming what is wrong."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        return Problem("file", str(path), f"cannot be read: {exc.strerror or exc}")
    except UnicodeDecodeError:
        return Problem("file", str(path), "is not UTF-8 text")
    if path.suffix == ".job":
        return _kestrel(path, text)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        if path.suffix != ".toml" and text.lstrip().startswith("[job]"):
            return _kestrel(path, text)
        return Problem("file", str(path), f"is not valid TOML: {exc}")
    job = data.get("job", data)
    if not isinstance(job, dict):
        return Problem("file", str(path), "must hold a [job] table")
    extra = set(data) - {"job"} if "job" in data else set()
    if extra:
        return Problem("file", str(path), f"has unknown tables or keys beside [job]: {', '.join(sorted(extra))}")
    return dict(job)


def _kestrel(path: Path, text: str) -> dict[str, Any] | Problem:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text, source=str(path))
    except configparser.Error as exc:
        return Problem("file", str(path), f"is not a valid .job file: {str(exc).splitlines()[0]}")
    if not parser.has_section("job"):
        return Problem("file", str(path), "must have a [job] section (keys: queue, command, cleanup, requires)")
    extra = [s for s in parser.sections() if s != "job"]
    if extra:
        return Problem("file", str(path), f"has unknown sections: {', '.join(extra)}")
    out: dict[str, Any] = {}
    for key, value in parser.items("job"):
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        out[key] = value
    return out
