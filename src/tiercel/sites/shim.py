"""What one element of a native array runs inside the batch system: a plain sh script.

Before it submits an array, the site writes ``run.sh`` into the array's folder.
Each element runs it with ``$TIERCEL_ELEMENT`` set to its number and:

1. finds the task it stands for (index and attempt) in a ``case`` over runs of
   elements, so a 1,000-element array of consecutive indexes is one line;
2. sets ``TIERCEL_JOB_ID``, ``TIERCEL_TASK_INDEX``, ``TIERCEL_ATTEMPT`` and the
   job's own environment, changes to its directory, and runs the task's command
   line (the same argv a pool worker would run, index last), stdin from
   /dev/null, stdout and stderr into ``E.out`` and ``E.err``;
3. enforces the walltime with coreutils' ``timeout`` when the node has it (the
   batch system's own limit, set 60 s later, catches the rest);
4. copies its output to the job's ``stdout``/``stderr`` files if it has any (a
   task's own file, or a block appended to the job's one, as pool workers write
   them; both streams in one file are stdout then stderr);
5. writes ``E.end``, one line ``EXIT STARTED ENDED WALLTIME_USED``, last.

A sweep over data (tasks with entries) has an ``entries`` file beside ``run.sh``:
line E is element E's entry, read into ``TIERCEL_ENTRY`` by the shell itself.

Nothing but ``/bin/sh`` and ``date`` is needed on the compute nodes (and ``cat``,
``mkdir`` and ``tail`` for output files) — no Python, no Tiercel. An element
costs a shell and two ``date`` calls on top of its task, where starting a Python
interpreter per element cost more than the batch system's own dispatch of it
(see bench/README.md).

A result line is written by one ``printf`` and ends with a newline; a line
without one is still being written and is read as "not finished yet".
"""

from __future__ import annotations

import os
import re
import shlex
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

from tiercel.core.model import JobSpec, Outcome, Report, TaskRef
from tiercel.jobspec.values import output_parts, per_task
from tiercel.worker.runner import TRUNCATED, task_argv

# what coreutils' timeout exits with when it stopped the command: 124 after its SIGTERM, 128 + 9
# when the command ignored that and needed the SIGKILL KILL_AFTER seconds later
TIMEOUT_EXITS = (124, 137)
KILL_AFTER = 5  # seconds between timeout's SIGTERM and its SIGKILL
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _runs(elements: Mapping[int, TaskRef]) -> Iterator[tuple[int, int, int, int]]:
    """(first element, last element, index minus element, attempt) for runs that step together."""
    run: list[int] | None = None
    for n in sorted(elements):
        ref = elements[n]
        if run and n == run[1] + 1 and ref.index - n == run[2] and ref.attempt == run[3]:
            run[1] = n
            continue
        if run:
            yield run[0], run[1], run[2], run[3]
        run = [n, n, ref.index - n, ref.attempt]
    if run:
        yield run[0], run[1], run[2], run[3]


def _home(path: str) -> str:
    """Shell text for a path, with a leading ~ expanded on the node (its $HOME), not here."""
    if path == "~":
        return '"$HOME"'
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    return shlex.quote(path)


def element_entries(elements: Mapping[int, TaskRef]) -> str | None:
    """The ``entries`` file of an array whose tasks have entries (line E for element E), else None."""
    if all(ref.entry is None for ref in elements.values()):
        return None
    return "".join(f"{elements[n].entry or ''}\n" for n in range(1, max(elements) + 1) if n in elements)


def element_script(spec: JobSpec, job: int, elements: Mapping[int, TaskRef], folder: Path) -> str:
    """The ``run.sh`` of one array: ``elements`` maps element numbers (from 1) to tasks."""
    # elements are 1..count: each run is picked by its last element, in order
    pick = []
    for k, (_, last, off, att) in enumerate(_runs(elements)):
        index = f"$((E+{off}))" if off >= 0 else f"$((E-{-off}))"
        pick.append(f'{"if" if k == 0 else "elif"} [ "$E" -le {last} ]; then I={index}; A={att}')
    argv = task_argv(spec, 0)
    words = [shlex.quote(argv[0]) if spec.shell else _home(spec.command[0]), *map(shlex.quote, argv[1:])]
    entries = any(ref.entry is not None for ref in elements.values())
    if spec.append_index:
        words[-1] = '"$TIERCEL_ENTRY"' if entries else '"$I"'  # task_argv puts the index (or entry) last
    plain = [(k, v) for k, v in spec.env if _NAME.fullmatch(k)]
    other = [(k, v) for k, v in spec.env if not _NAME.fullmatch(k)]
    if other:  # names sh cannot assign (a '-' or '.' in them) go through env(1)
        words = ["env", *(shlex.quote(f"{k}={v}") for k, v in other), *words]
    f = shlex.quote(str(folder))
    lines = [
        "# written by tiercel: one element of a native array",
        f"F={f}; E=$TIERCEL_ELEMENT; I=; A=; W=1",
        *pick, "fi",
        'if [ -z "$I" ] || [ "$E" -lt 1 ]; then echo "tiercel: element $E is not in this array" >&2; exit 2; fi',
        f"TIERCEL_JOB_ID={int(job)}; TIERCEL_TASK_INDEX=$I; TIERCEL_ATTEMPT=$A",
        "export TIERCEL_JOB_ID TIERCEL_TASK_INDEX TIERCEL_ATTEMPT",
        *([  # line E of the entries file (a sh loop: no tool but the shell)
            'TIERCEL_ENTRY=; N=0; while IFS= read -r L; do N=$((N+1)); '
            'if [ "$N" -eq "$E" ]; then TIERCEL_ENTRY=$L; break; fi; done <"$F/entries"; export TIERCEL_ENTRY',
        ] if entries else []),
        *(f"{k}={shlex.quote(v)}; export {k}" for k, v in plain),
        "S=$(date +%s.%N)",
    ]
    run = " ".join(words)
    if spec.walltime is not None:
        wall = f"{spec.walltime:.3f}".rstrip("0").rstrip(".")
        lines += ["T=0",
                  f'if command -v timeout >/dev/null 2>&1; then T=1; set -- timeout -k {KILL_AFTER} {wall}; '
                  "else set --; fi"]
        run = '"$@" ' + run
    else:
        lines.append("T=0")
    body = f'{run} </dev/null >"$F/$E.out" 2>"$F/$E.err"; C=$?'
    if spec.cwd:
        cwd = _home(spec.cwd)
        lines.append(f'if cd -- {cwd} 2>/dev/null; then {body}; else '
                     f'echo "tiercel: cannot start: no directory "{cwd} >"$F/$E.err"; : >"$F/$E.out"; C=127; W=0; fi')
    else:
        lines.append(body)
    lines += _output_copies(spec, job)
    lines.append('printf \'%s %s %s %s\\n\' "$C" "$S" "$(date +%s.%N)" "$T" >"$F/$E.end"')
    return "\n".join(lines) + "\n"


def _output_copies(spec: JobSpec, job: int) -> list[str]:
    """The lines that copy an element's output to the job's stdout and stderr files, if it has any.

    Relative to the task's directory (the element is still in it); a task's own file is written
    whole, the job's one gets a block appended (the header line of pool workers, the output, a
    newline if it lacks one). When a file cannot be written, the task fails (exit 1 if it was 0)."""
    if spec.stdout is None and spec.stderr is None:
        return []
    out = ['if [ "$W" = 1 ]; then',
           'if [ "$C" -eq 0 ]; then O=done; elif [ "$T" = 1 ] && { [ "$C" -eq 124 ] || [ "$C" -eq 137 ]; }; '
           "then O=timeout; else O=failed; fi"]
    for stream, pattern in (("stdout", spec.stdout), ("stderr", spec.stderr)):
        if pattern is None or (stream == "stderr" and pattern == spec.stdout):
            continue
        both = stream == "stdout" and spec.stderr == pattern
        sources = '"$F/$E.out" "$F/$E.err"' if both else f'"$F/$E.{stream[3:]}"'
        parts = output_parts(pattern)
        if isinstance(parts, str):  # refused at submission: not from a job that passed it
            out.append(f'echo "tiercel: {stream} pattern {parts}" >>"$F/$E.err"; C=1')
            continue
        if per_task(parts):
            write = f'cat -- {sources} >"$P"'
        else:
            write = (f"{{ printf '==> task %s (attempt %s, %s, exit %s) <==\\n' \"$I\" \"$A\" \"$O\" \"$C\"; "
                     f'cat -- {sources}; X=; for Y in {sources}; do if [ -s "$Y" ]; then X=$Y; fi; done; '
                     'if [ -n "$X" ] && [ -n "$(tail -c 1 -- "$X")" ]; then echo; fi; } >>"$P"')
        out.append(f"P={_sh_path(parts, job)}; "
                   f'{{ {{ case $P in ?*/*) mkdir -p -- "${{P%/*}}";; esac && {write}; }} 2>>"$F/$E.err"; }} || '
                   f'{{ echo "tiercel: could not write the {stream} to $P" >>"$F/$E.err"; '
                   'if [ "$C" -eq 0 ]; then C=1; fi; }')
    return [*out, "fi"]


def _sh_path(parts: list[tuple[str, str | None, int]], job: int) -> str:
    """A file pattern as one sh word: the job filled in here, the index ($I) on the node, ~ as $HOME there."""
    words = []
    for n, (text, name, width) in enumerate(parts):
        if n == 0 and text.startswith("~/"):
            words.append('"$HOME"')
            text = text[1:]
        if text:
            words.append(shlex.quote(text))
        if name == "job":
            words.append(f"{job:0{width}d}" if width else str(job))
        elif name == "index":
            words.append(f'"$(printf %0{width}d "$I")"' if width else '"$I"')
    return "".join(words) or "''"


def _stamp(text: str, fallback: float) -> float:
    """A ``date +%s.%N`` value; where date has no %N it prints ``%N`` literally."""
    try:
        return float(text)
    except ValueError:
        m = re.match(r"\d+", text)
        return float(m.group()) if m else fallback


def read_result(folder: Path, element: int, ref: TaskRef, *, walltime: float | None = None,
                max_output: int = 1 << 20) -> Report | None:
    """The element's report, or None while it has not finished."""
    path = folder / f"{element}.end"
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        return _unreadable(ref, element, str(exc))
    if not text.endswith("\n"):
        return None  # being written
    parts = text.split()
    if len(parts) != 4 or not parts[0].lstrip("-").isdigit():
        return _unreadable(ref, element, f"result line {text.strip()!r}")
    now = time.time()
    code = int(parts[0])
    started = _stamp(parts[1], now)
    ended = _stamp(parts[2], now)
    out = _read(folder / f"{element}.out", max_output)
    err = _read(folder / f"{element}.err", max_output)
    # a command exiting 124 or 137 by itself ends before its walltime
    timed_out = (parts[3] == "1" and code in TIMEOUT_EXITS and walltime is not None
                 and ended - started >= walltime - 0.5)
    if timed_out:
        outcome = Outcome.TIMEOUT
        err += f"\ntiercel: killed after its walltime of {walltime:g}s\n".encode()
    else:
        outcome = Outcome.DONE if code == 0 else Outcome.FAILED
    return Report(ref.job, ref.index, ref.attempt, outcome, code, started, ended, out, err)


def _unreadable(ref: TaskRef, element: int, why: str) -> Report:
    now = time.time()
    return Report(ref.job, ref.index, ref.attempt, Outcome.FAILED, None, now, now, b"",
                  f"tiercel: unreadable result of element {element}: {why}\n".encode())


def _read(path: Path, limit: int) -> bytes:
    try:
        with path.open("rb") as fh:
            data = fh.read(limit + 1)
    except OSError:
        return b""
    return data[:limit] + TRUNCATED if len(data) > limit else data


def result_files(folder: Path) -> set[int]:
    """Elements whose result line is there (one directory listing, not a file per element)."""
    try:
        return {int(e.name[:-4]) for e in os.scandir(folder) if e.name.endswith(".end") and e.name[:-4].isdigit()}
    except FileNotFoundError:
        return set()
