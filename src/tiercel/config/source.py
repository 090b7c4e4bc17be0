"""The file itself: read once, parsed once, and the line of any key in it.

tomllib gives values without positions, so a problem found later (a bad site option, an
unknown policy) would name only its key. ``locate`` finds the key's line in the text again: it
follows the table headers and the keys at the start of lines, the way a reader scans the file,
and takes the line that says the most of the key (the key itself, else its table).
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tiercel.core.problems import MISSING, Problem, SetupError


class ConfigError(SetupError):
    """A configuration the manager cannot start with; its text is the one line for the user."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.message())
        self.problem = problem  # for callers that report problems as values (tiercel simulate)


@dataclass(frozen=True)
class Source:
    """One configuration file's text and its parsed tables."""

    path: Path | None  # None for text that never was a file (tests)
    text: str
    doc: dict[str, Any]

    def problem(self, found: Problem) -> Problem:
        """``found`` (its field a dotted key) with the file and the key's line in front."""
        line = locate(self.text, found.field)
        where = found.field if line is None else f"line {line}: {found.field}"
        return Problem(where if self.path is None else f"{self.path}: {where}", found.value, found.allowed)

    def error(self, found: Problem) -> ConfigError:
        return ConfigError(self.problem(found))


def parse_text(text: str, path: Path | None = None, label: str = "config") -> Source:
    try:
        return Source(path, text, tomllib.loads(text))
    except tomllib.TOMLDecodeError as exc:  # its message ends "(at line N, column M)"
        raise ConfigError(Problem(label, MISSING, f"{path or 'the text'} is not valid TOML: {exc}")) from None


def read(path: Path, label: str = "config") -> Source:
    """The file at ``path``, parsed; ``label`` is what messages call it (the command's option)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(Problem(label, str(path), f"cannot be read: {exc.strerror or exc}")) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(Problem(label, MISSING, f"{path} is not valid TOML: {exc}")) from None
    return parse_text(text, path, label)


# ---- where a key is written --------------------------------------------------------------------

BARE = re.compile(r"[A-Za-z0-9_-]+")
QUOTES = ('"""', "'''")


def locate(text: str, key: str) -> int | None:
    """The 1-based line that best names the dotted ``key``: its own line, else its table's; None if absent.

    Of equally good lines the first wins, so a table's header beats the keys under it.
    """
    best, depth = None, 0
    table: tuple[str, ...] = ()
    open_string: str | None = None  # inside a multi-line string: no keys there
    for number, line in enumerate(text.splitlines(), 1):
        if open_string is not None:
            if line.count(open_string) % 2 == 1:
                open_string = None
            continue
        stripped = line.strip()
        if stripped.startswith("["):
            header = _header(stripped)
            if header is None:
                continue
            table = path = header
        else:
            found = _dotted(stripped, 0)
            if found is None or not stripped[found[1]:].lstrip().startswith("="):
                continue
            path = table + found[0]
            rest = stripped[found[1]:]
            open_string = next((q for q in QUOTES if rest.count(q) % 2 == 1), None)
        said = _depth(path, key)
        if said > depth:
            best, depth = number, said
    return best


def _depth(path: tuple[str, ...], key: str) -> int:
    """How many leading parts of ``path`` the key spells (compared as text, so quoted dots count)."""
    for n in range(len(path), 0, -1):
        joined = ".".join(path[:n])
        if key == joined or key.startswith(joined + "."):
            return n
    return 0


def _header(line: str) -> tuple[str, ...] | None:
    start = 2 if line.startswith("[[") else 1
    found = _dotted(line, start)
    if found is None or not line[found[1]:].lstrip().startswith("]"):
        return None
    return found[0]


def _dotted(s: str, i: int) -> tuple[tuple[str, ...], int] | None:
    """The dotted key starting at ``s[i]`` (bare, "basic" or 'literal' parts) and where it ends."""
    parts: list[str] = []
    while True:
        while i < len(s) and s[i] in " \t":
            i += 1
        if i < len(s) and s[i] in "\"'":
            quote = s[i]
            end = i + 1
            while end < len(s) and s[end] != quote:
                end += 2 if quote == '"' and s[end] == "\\" else 1
            if end >= len(s):
                return None
            raw = s[i + 1:end]
            parts.append(_unescape(raw) if quote == '"' else raw)
            i = end + 1
        else:
            bare = BARE.match(s, i)
            if bare is None:
                return None
            parts.append(bare.group())
            i = bare.end()
        j = i
        while j < len(s) and s[j] in " \t":
            j += 1
        if j < len(s) and s[j] == ".":
            i = j + 1
            continue
        return tuple(parts), i


def _unescape(raw: str) -> str:
    try:  # TOML's basic-string escapes are JSON's, bar \e and \U, which keys hardly use
        return str(json.loads(f'"{raw}"'))
    except ValueError:
        return raw
