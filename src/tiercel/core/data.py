"""A job's files in a shared file system (Gfarm), and what the scheduler knows of their replicas.

A job names its inputs and outputs as URLs, ``gfarm:///data/sample_{index}.bam``: a pattern with
``{index}`` (zero-padded ``{index:05}``, and ``{job}``) is one file per task, one without it a file
every task reads. ``DataView`` is the replica map one scheduling cycle reads: which file-system
nodes hold each file, its size, the nodes that are down, the copies under way, and whether the
metadata server answers at all. Everything here is pure: the shell (tiercel.data) asks Gfarm.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

SCHEMES = ("gfarm",)
PLACEHOLDERS = ("index", "job")
_PAD = re.compile(r"0[1-9][0-9]?d?")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
MAX_URL = 4096

Node = str  # a file-system node, as the file system names it (gfnode2)
Path = str  # a file's path inside the file system (/data/sample_0042.bam)


def parse_url(url: str) -> tuple[str, list[tuple[str, str | None, int]]] | str:
    """``gfarm:///p/{index}.bam`` → (the path pattern, its parts), or what is wrong with it."""
    if not isinstance(url, str) or not url:
        return "must be a URL such as gfarm:///data/sample_{index}.bam"
    if len(url) > MAX_URL:
        return f"must be at most {MAX_URL} characters"
    if _CONTROL.search(url):
        return "must not contain control characters"
    scheme, sep, rest = url.partition("://")
    if not sep or not scheme:
        return "must be a URL such as gfarm:///data/sample_{index}.bam (a scheme, then ://)"
    if scheme.lower() not in SCHEMES:
        return f"has the scheme {scheme!r}; the file systems Tiercel places data for are: gfarm"
    if not rest.startswith("/"):
        host = rest.split("/", 1)[0]
        return (f"names the metadata server {host!r}: the manager uses its own Gfarm configuration, "
                "write gfarm:///path")
    path = rest
    if path == "/" or path.endswith("/"):
        return "must name a file, not a directory"
    if any(p in (".", "..") for p in path.split("/")):
        return "must be an absolute path without . or .. parts"
    parts = _parts(path)
    if isinstance(parts, str):
        return parts
    return path, parts


def _parts(pattern: str) -> list[tuple[str, str | None, int]] | str:
    out: list[tuple[str, str | None, int]] = []
    try:
        parsed = list(string.Formatter().parse(pattern))
    except ValueError:
        return "must be a path with placeholders {index} and {job} (write {{ and }} for a brace)"
    for text, name, spec, conversion in parsed:
        if name is None:
            out.append((text, None, 0))
            continue
        if name not in PLACEHOLDERS:
            return f"has an unknown placeholder {{{name}}}: the placeholders are {{index}} and {{job}}"
        if conversion is not None or (spec and not _PAD.fullmatch(spec)):
            return f"has {{{name}...}} written wrong: a placeholder is {{{name}}}, or zero-padded {{{name}:05}}"
        out.append((text, name, int(spec.rstrip("d")) if spec else 0))
    return out


def per_task(url: str) -> bool:
    """Whether the URL is a pattern with a file per task (it has ``{index}``)."""
    parsed = parse_url(url)
    return not isinstance(parsed, str) and any(name == "index" for _, name, _ in parsed[1])


def path_of(url: str, job: int, index: int) -> Path:
    """The Gfarm path of one task's file: a checked URL's placeholders filled in."""
    parsed = parse_url(url)
    if isinstance(parsed, str):
        raise ValueError(f"{url}: {parsed}")
    out = []
    for text, name, width in parsed[1]:
        out.append(text)
        if name is not None:
            value = index if name == "index" else job
            out.append(f"{value:0{width}d}" if width else str(value))
    return "".join(out)


def task_inputs(inputs: Iterable[str], job: int, index: int) -> tuple[Path, ...]:
    return tuple(path_of(u, job, index) for u in inputs)


@dataclass(frozen=True)
class DataView:
    """What the scheduler knows of the file system in one cycle.

    ``replicas`` maps a path to the nodes holding a complete replica, down nodes included (a
    node that comes back has its replicas again); a path missing from it is not known yet (the
    shell is asking), one mapped to nothing does not exist or has no replica left.
    """

    replicas: Mapping[Path, frozenset[Node]] = field(default_factory=dict)
    sizes: Mapping[Path, int] = field(default_factory=dict)
    down: frozenset[Node] = frozenset()
    copying: Mapping[tuple[Path, Node], float] = field(default_factory=dict)  # -> when it started
    reachable: bool = True  # the metadata server answered the last time it was asked
    problem: str = ""  # why not, when it is unreachable
    copy_rate: float = 50e6  # bytes per second a copy between nodes is expected to move
    unreadable: frozenset[tuple[Path, Node]] = frozenset()  # replicas a task failed to read (until asked again)
    located: frozenset[Path] = frozenset()  # the paths gfwhere answered for in the update that made this view
    recheck_after: float = 60.0  # seconds an unreadable replica is passed over before gfwhere is asked again

    def holders(self, path: Path) -> frozenset[Node] | None:
        """Nodes up and holding ``path``; None when the path is not known yet."""
        hosts = self.replicas.get(path)
        if hosts is None:
            return None
        return frozenset(h for h in hosts - self.down if (path, h) not in self.unreadable)

    def missing_bytes(self, paths: Iterable[Path], node: Node) -> int:
        """Bytes to copy so that ``node`` holds every one of ``paths`` (a copy under way counts as made)."""
        return sum(self.sizes.get(p, 0) for p in paths
                   if node not in self.replicas.get(p, frozenset()) and (p, node) not in self.copying)


UNREADABLE = "tiercel: cannot read gfarm://"
WROTE = "tiercel: wrote gfarm://"


def unreadable(stderr: bytes) -> tuple[Path, Node] | None:
    """The replica a worker could not read, from the line it reports it with
    (``tiercel: cannot read gfarm:///d/x on gfnode2: ...``)."""
    for line in stderr.decode(errors="replace").splitlines():
        if line.startswith(UNREADABLE):
            rest = line[len(UNREADABLE):]
            path, sep, tail = rest.partition(" on ")
            if sep:
                return path, tail.split(":", 1)[0]
    return None


def wrote_line(path: Path, node: Node | None) -> str:
    """The line a worker adds to a task's stderr for an output it put into Gfarm (``written`` reads it)."""
    return f"{WROTE}{path}{' on ' + node if node else ''}\n"


def written(stderr: bytes) -> list[tuple[Path, Node | None]]:
    """The outputs a task put into Gfarm, and the node each went to (None: where Gfarm chose), from its stderr."""
    out: list[tuple[Path, Node | None]] = []
    for line in stderr.decode(errors="replace").splitlines():
        if line.startswith(WROTE):
            path, sep, node = line[len(WROTE):].rpartition(" on ")
            out.append((path, node) if sep else (node, None))
    return out
