"""Job files: TOML (``[job]`` table) and Kestrel ``.job`` files (``[job]`` with key = value), and the
files a sweep over data reads its entries from (``each_line``, ``each_json``)."""

from __future__ import annotations

import configparser
import json
import tomllib
from pathlib import Path
from typing import Any

from tiercel.core.problems import Problem
from tiercel.jobspec.request import MAX_ENTRY_BYTES

SWEEPS = {"each_line": "line", "each_json": "element"}  # a job file's keys, and what one task gets


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
    return sweep_entries(path, dict(job))


def sweep_entries(path: Path, job: dict[str, Any]) -> dict[str, Any] | Problem:
    """A job file's ``each_line`` or ``each_json`` (a file name, relative to the job file's directory)
    read into the request's ``entries``."""
    given = [key for key in SWEEPS if key in job]
    if not given:
        return job
    key = given[0]
    value = job.pop(key)
    if len(given) > 1:
        return Problem(key, value, f"cannot be given together with {given[1]} (choose one)")
    if not isinstance(value, str) or not value.strip():
        return Problem(key, value, "must name a file (relative to the job file's directory)")
    for other in ("queue", "array", "entries"):
        if other in job:
            return Problem(key, value, f"cannot be given together with {other}: "
                                       f"the job has one task per {SWEEPS[key]}")
    file = path.parent / Path(value).expanduser()
    entries = read_lines(file) if key == "each_line" else read_json_entries(file)
    if isinstance(entries, Problem):
        return entries
    job["entries"] = entries
    return job


def read_lines(path: Path, field: str = "each_line") -> list[str] | Problem:
    """The lines of a UTF-8 text file, one entry per task: task 0 gets the first line.

    A line ends with a newline (or CR LF); the last one needs none. Lines may be empty; a line may
    not hold a NUL, nor be longer than MAX_ENTRY_BYTES. Errors name the line (from 1)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        return Problem(field, str(path), f"cannot be read: {exc.strerror or exc}")
    if not data:
        return Problem(field, str(path), "is empty: it must hold one line per task")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        return Problem(field, str(path), f"is not UTF-8 text: line {line} holds byte {data[exc.start]:#04x}")
    text = text.removeprefix("\ufeff")  # a byte order mark some editors write
    if "\0" in text:
        line = text.count("\n", 0, text.index("\0")) + 1
        return Problem(field, str(path), f"holds a NUL character on line {line}, which no task argument can hold")
    lines = text.split("\n")
    if len(lines) > 1 and lines[-1] == "":
        lines.pop()  # the newline that ends the last line
    if "\r" in text:
        lines = [line[:-1] if line.endswith("\r") else line for line in lines]
    too_long = _too_long(lines)
    if too_long is not None:
        i, size = too_long
        return Problem(field, str(path), f"has a line too long: line {i + 1} has {size:,} bytes, "
                                         f"at most {MAX_ENTRY_BYTES:,} are allowed")
    return lines


def read_json_entries(path: Path, field: str = "each_json") -> list[str] | Problem:
    """The elements of a JSON array in a file, one entry per task, each as compact JSON
    (``{"a":1}``: no spaces, no newline; text is kept as it is, not escaped to ASCII)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        return Problem(field, str(path), f"cannot be read: {exc.strerror or exc}")
    except UnicodeDecodeError as exc:
        line = exc.object.count(b"\n", 0, exc.start) + 1
        return Problem(field, str(path), f"is not UTF-8 text: line {line} holds byte {exc.object[exc.start]:#04x}")

    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not a JSON value")

    try:
        value = json.loads(text.removeprefix("\ufeff"), parse_constant=refuse)
    except json.JSONDecodeError as exc:
        return Problem(field, str(path), f"is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")
    except (ValueError, RecursionError) as exc:
        return Problem(field, str(path), f"is not valid JSON: {exc}")
    if not isinstance(value, list):
        kind = {dict: "an object", str: "a string", bool: "true or false", type(None): "null"}.get(type(value),
                                                                                                "a number")
        return Problem(field, str(path), f"must hold a JSON array, one element per task (it holds {kind})")
    if not value:
        return Problem(field, str(path), "is an empty array: it must hold one element per task")
    entries = [json.dumps(v, ensure_ascii=False, separators=(",", ":")) for v in value]
    too_long = _too_long(entries)
    if too_long is not None:
        i, size = too_long
        return Problem(field, str(path), f"has an element too long: element {i} is {size:,} bytes as JSON, "
                                         f"at most {MAX_ENTRY_BYTES:,} are allowed")
    return entries


def _too_long(entries: list[str]) -> tuple[int, int] | None:
    """The first entry over MAX_ENTRY_BYTES in UTF-8, and its size (a character takes at most 4 bytes)."""
    if max(map(len, entries)) <= MAX_ENTRY_BYTES // 4:
        return None
    for i, e in enumerate(entries):
        if len(e) > MAX_ENTRY_BYTES // 4 and (size := len(e.encode(errors="surrogatepass"))) > MAX_ENTRY_BYTES:
            return i, size
    return None


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
    return sweep_entries(path, out)
