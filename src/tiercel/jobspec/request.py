"""The job request: what every interface (CLI, job files, REST, chat) submits.

One pydantic model validates the request's shape and the core's parsers give
the meaning; any error becomes a Problem naming the field, the value and what
is allowed (jobspec/errors.py), so the CLI, the API and the chat gateway all say
the same thing.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from tiercel.core.model import AFTER_KINDS, MAX_JOB_ID, After, Entries, JobId, JobSpec
from tiercel.core.problems import Problem
from tiercel.core.ranges import IndexRanges, parse_ranges
from tiercel.jobspec.data import check_files
from tiercel.jobspec.errors import Shown, problem_from_errors
from tiercel.jobspec.values import check_output, parse_duration, parse_memory

MAX_TASKS = 100_000_000
MAX_INDEX = 2**31 - 1
MAX_COMMAND_BYTES = 64 * 1024
MAX_ENTRY_BYTES = 64 * 1024  # one entry (a line of --each-line), in UTF-8
MAX_PATH = 4096

_TAG = re.compile(r"^[A-Za-z0-9_.:+-]{1,64}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")

# The same rules as JSON Schema patterns, so the OpenAPI document refuses what the server refuses.
NO_NUL = "^[^\\u0000]*$"
NO_CONTROL = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"


def _refuse(allowed: str) -> PydanticCustomError:
    """A validation error whose message is what is allowed, shown after the field and the value."""
    return PydanticCustomError("refused", allowed)


def _text(value: Any) -> Any:
    """Text that is passed on to a shell or a program: any line breaks, but no NUL (exec cannot pass it)."""
    if isinstance(value, str):
        if "\0" in value:
            raise _refuse("must not contain NUL characters")
        _encodable(value)
    return value  # anything else: the type check that follows says what is wrong


def _line(value: Any) -> Any:
    """A name, path, tag or duration: no control characters, which no one means there."""
    if isinstance(value, str):
        if _CONTROL.search(value):
            raise _refuse("must not contain control characters (NUL, newline, tab, escape, ...)")
        _encodable(value)
    return value


def _encodable(value: str) -> None:
    try:
        value.encode()
    except UnicodeEncodeError:  # a lone surrogate, which JSON's \ud800 escapes can make
        raise _refuse("must be Unicode text (it holds a lone surrogate)") from None


Text = Annotated[str, BeforeValidator(_text), Field(json_schema_extra={"pattern": NO_NUL})]
Line = Annotated[str, BeforeValidator(_line), Field(json_schema_extra={"pattern": NO_CONTROL})]
# One entry of a sweep: any text but a newline (entries are kept newline-joined) or NUL. Checked in
# build_spec for all entries at once, as a million of them must be read in well under a second.
Entry = Annotated[str, Field(json_schema_extra={"pattern": "^[^\\u0000\\n]*$"})]


class JobRequest(BaseModel):
    """A job as submitted. Unknown fields are refused, not ignored.

    Types are strict (``"queue": "5"`` and ``"queue": true`` are refused) for JSON, where a client
    says what it means; text sources (job files, chat, forms) are read with ``strict=False`` by
    ``spec_from_mapping``, as ``queue = 10000`` in a Kestrel .job file is text.
    """

    model_config = ConfigDict(extra="forbid", strict=True, str_max_length=MAX_COMMAND_BYTES)

    command: (Annotated[list[Text], Field(min_length=1)]
              | Annotated[Text, Field(min_length=1, max_length=MAX_COMMAND_BYTES)]) = Field(
        description=f"argv list, or a shell command line; at most {MAX_COMMAND_BYTES:,} bytes in all")
    queue: int | None = Field(None, description="Kestrel's array size: run indexes 0..queue-1")
    array: Line | None = Field(None, description="index ranges, e.g. 0-99,200-299 or 0-999:10")
    name: Line = Field("", max_length=200)
    requires: list[Line] = Field(default_factory=list, description="tags a worker must have")
    cleanup: Text | None = Field(None, description="run once on each worker that ran tasks, after the job ends")
    retries: int = Field(0, ge=0, le=100)
    walltime: Line | float | None = Field(None, description="per task: 90s, 10m, 1h30m or 01:30:00")
    env: dict[Line, Text] = Field(default_factory=dict)
    cwd: Line | None = None
    shell: bool | None = Field(None, description="run command with /bin/sh -c (default: when it is a string)")
    append_index: bool = Field(True, description="append the task index as the command's last argument")
    cpus: int = Field(1, ge=1, le=4096)
    memory: Line | int = Field(0, description="per task: 512M, 4G (MB when a number)")
    priority: int = Field(0, ge=-1000, le=1000)
    queue_name: Line | None = Field(None, max_length=64, description="the queue (default: the manager's default)")
    reservation: Line | None = Field(None, max_length=64, description="run inside this advance reservation")
    site: Line | None = Field(None, max_length=64, description="run on this site (default: the scheduler chooses)")
    max_running: int | None = Field(None, ge=1, le=MAX_TASKS,
                                    description="at most this many of the job's tasks at once (default: no cap)")
    max_failures: int | None = Field(None, ge=1, le=MAX_TASKS,
                                     description="once this many tasks failed (after their retries), cancel the rest")
    hold: bool = Field(False, description="submit held: no task starts until 'tiercel release'")
    after: list[Line | int] = Field(
        default_factory=list, max_length=1000,
        description="jobs to wait for: JOB or JOB:KIND, KIND ok (it ended with every task done; the default), "
                    "any (it ended), notok (it ended with a task failed or cancelled) or corr (task i waits for "
                    "task i of that job, whose indexes must be this job's)")
    on_dependency_failure: Line = Field(
        "cancel", description="cancel (the default: tasks whose dependency can never be met are cancelled, with "
                              "the reason) or wait (a failed dependency may still be retried)")
    entries: list[Entry] | None = Field(
        None, description="a sweep over data: one task per entry, task i gets entries[i] (in TIERCEL_ENTRY, and as "
                          "its argument in place of the index); not with queue or array. Each entry is text of at "
                          f"most {MAX_ENTRY_BYTES:,} bytes without newline or NUL (a line of a file, or a JSON "
                          "value serialized compactly)")
    stdout: Line | None = Field(
        None, max_length=MAX_PATH,
        description="also write each task's stdout to this file where it runs, relative to its directory: "
                    "'out/{index}.txt' a file per task; without {index} one file for the job, each task's output "
                    "appended when it ends, after a line '==> task I (attempt A, OUTCOME, exit N) <=='. "
                    "Placeholders: {index}, {job}, zero-padded {index:05}")
    stderr: Line | None = Field(None, max_length=MAX_PATH,
                                description="the same for stderr (the same pattern as stdout: both in one file)")
    inputs: list[Line] = Field(
        default_factory=list, description="files the tasks read, as URLs in Gfarm: gfarm:///data/sample_{index}.bam "
                                          "a file per task ({index}, zero-padded {index:05}, {job}), "
                                          "gfarm:///ref/genome.fa one every task reads. Tasks run where their "
                                          "replicas are, and find them at local paths (TIERCEL_INPUTS)")
    outputs: list[Line] = Field(
        default_factory=list, description="files the tasks write, put into Gfarm on the node where each ran: "
                                          "gfarm:///results/{index}.out ({index} is needed when there are several "
                                          "tasks); a task writes them at the local paths in TIERCEL_OUTPUTS")
    on_missing_input: Line = Field(
        "fail", description="an input that does not exist: fail (its task fails, saying so; the default) or "
                            "refuse (the manager checks every input at submit and refuses the job)")

    @field_validator("command", mode="before")
    @classmethod
    def _command(cls, v: Any) -> Any:
        # Checked whole here: left to the union above, a bad string would be reported as "not a list".
        if isinstance(v, str):
            parts = [v]
            if not v.strip():
                raise _refuse("must not be empty")
        elif isinstance(v, list) and all(isinstance(p, str) for p in v):
            parts = v
            if not v or not v[0]:
                raise _refuse("must name a program to run")
        else:
            raise _refuse("must be a command line (a string) or a program and its arguments (a list of strings)")
        for part in parts:
            _text(part)
        size = sum(len(p.encode()) for p in parts)
        if size > MAX_COMMAND_BYTES:
            raise _refuse(f"must be at most {MAX_COMMAND_BYTES:,} bytes (it has {size:,})")
        return v

    @field_validator("requires", mode="before")
    @classmethod
    def _split_tags(cls, v: Any) -> Any:
        if isinstance(v, str):
            return [t for t in re.split(r"[,\s]+", v) if t]
        return v


def problem_from_validation(exc: ValidationError) -> Problem:
    """The first error of a job request's validation, as a one-line Problem."""
    return problem_from_errors(exc.errors(), JobRequest)


def build_spec(req: JobRequest, *, max_tasks: int = MAX_TASKS) -> JobSpec | Problem:
    """Turn a validated request into the core's JobSpec, or say what is wrong."""
    if isinstance(req.command, str):  # its emptiness, size and characters were checked by JobRequest
        command: tuple[str, ...] = (req.command,)
        shell = True if req.shell is None else req.shell
        if not shell:
            command = tuple(req.command.split())
    else:
        shell = bool(req.shell)
        command = (" ".join(req.command),) if shell else tuple(req.command)

    if req.queue is not None and req.array is not None:
        return Problem("queue", req.queue, "cannot be given together with array (choose one)")
    entries: Entries | None = None
    if req.entries is not None:
        for name, given in (("queue", req.queue), ("array", req.array)):
            if given is not None:
                return Problem(name, given, "cannot be given together with entries: the job has one task per entry")
        checked = check_entries(req.entries, max_tasks)
        if isinstance(checked, Problem):
            return checked
        entries = checked
    indexes: IndexRanges | Problem
    if req.array is not None and not req.array.isascii():  # "²" passes str.isdigit() but not int()
        return Problem("array", req.array, "must be index ranges such as 0-99,200-299 or 0-999:10")
    if entries is not None:
        indexes = IndexRanges.of_size(len(entries))
    elif req.array is not None:
        indexes = parse_ranges(req.array, max_size=max_tasks, max_index=MAX_INDEX)
    elif req.queue is not None:
        if not 1 <= req.queue <= max_tasks:
            return Problem("queue", req.queue, f"must be between 1 and {max_tasks}")
        indexes = IndexRanges.of_size(req.queue)
    else:
        indexes = IndexRanges.of_size(1)
    if isinstance(indexes, Problem):
        return indexes

    for tag in req.requires:
        if not _TAG.fullmatch(tag):
            return Problem("requires", tag, "must be a tag of letters, digits and . _ : + - (at most 64)")
    walltime = None
    if req.walltime is not None:
        w = parse_duration(req.walltime)
        if isinstance(w, Problem):
            return w
        walltime = w
    memory = parse_memory(req.memory)
    if isinstance(memory, Problem):
        return memory
    for key in req.env:  # control characters and NUL in keys and values were refused by JobRequest
        if not key or "=" in key:
            return Problem("env", key, "must be a variable name without '=' or NUL")
    if req.cwd is not None and not req.cwd:
        return Problem("cwd", req.cwd, "must be a directory path without NUL characters")
    if req.cleanup is not None and not req.cleanup.strip():
        return Problem("cleanup", req.cleanup, "must not be empty when given")
    for name, pattern in (("stdout", req.stdout), ("stderr", req.stderr)):
        bad = None if pattern is None else check_output(name, pattern)
        if bad is not None:
            return bad

    after = parse_after(req.after)
    if isinstance(after, Problem):
        return after
    bad_files = check_files(req.inputs, req.outputs, len(indexes), req.on_missing_input)
    if bad_files is not None:
        return bad_files
    if req.on_dependency_failure not in ("cancel", "wait"):
        return Problem("on_dependency_failure", req.on_dependency_failure, "must be cancel or wait")

    return JobSpec(
        command=command,
        indexes=indexes,
        shell=shell,
        name=req.name,
        requires=frozenset(req.requires),
        cleanup=req.cleanup,
        retries=req.retries,
        walltime=walltime,
        env=tuple(sorted(req.env.items())),
        cwd=req.cwd,
        append_index=req.append_index,
        cpus=req.cpus,
        memory_mb=memory,
        priority=req.priority,
        queue=req.queue_name or "",
        reservation=req.reservation,
        site=req.site or None,
        max_running=req.max_running,
        max_failures=req.max_failures,
        held=req.hold,
        after=after,
        on_dependency_failure=req.on_dependency_failure,
        entries=entries,
        stdout=req.stdout,
        stderr=req.stderr,
        inputs=tuple(req.inputs),
        outputs=tuple(req.outputs),
        on_missing_input=req.on_missing_input,
    )


def check_entries(items: list[str], max_tasks: int = MAX_TASKS) -> Entries | Problem:
    """A sweep's entries, kept compact, or the first thing wrong with them (naming the entry).

    Checked on the whole at once (one join, one encode), entry by entry only to name a bad one:
    a million entries take a fraction of a second."""
    n = len(items)
    if n == 0:
        return Problem("entries", Shown("[]"), "must hold one entry per task (at least one)")
    if n > max_tasks:
        return Problem("entries", Shown(f"{n:,} entries"), f"are too many: a job has at most {max_tasks:,} tasks")
    joined = "\n".join(items)
    if joined.count("\n") != n - 1:
        i = next(i for i, e in enumerate(items) if "\n" in e)
        return Problem(f"entries.{i}", items[i], "must be one line: an entry cannot hold a newline")
    if "\0" in joined:
        i = next(i for i, e in enumerate(items) if "\0" in e)
        return Problem(f"entries.{i}", items[i], "must not contain NUL characters")
    try:
        blob = joined.encode()
    except UnicodeEncodeError:
        i = next(i for i, e in enumerate(items) if not _utf8(e))
        return Problem(f"entries.{i}", items[i], "must be Unicode text (it holds a lone surrogate)")
    if max(map(len, items)) > MAX_ENTRY_BYTES // 4:  # else none can be over the limit, whatever its characters
        for i, e in enumerate(items):
            if len(e) > MAX_ENTRY_BYTES // 4 and (size := len(e.encode())) > MAX_ENTRY_BYTES:
                return Problem(f"entries.{i}", e, f"must be at most {MAX_ENTRY_BYTES:,} bytes (it has {size:,})")
    return Entries(blob)


def _utf8(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def request_json(data: dict[str, Any]) -> dict[str, Any]:
    """A job request from any source as the REST API takes it: with the types its strict model wants
    (``queue = 10000`` read from a .job file is the text "10000"). Left as given when it is not valid,
    for the manager to say what is wrong."""
    try:
        req = JobRequest.model_validate(data, strict=False)
    except ValidationError:
        return dict(data)
    return req.model_dump(mode="json", exclude_unset=True)


def spec_from_mapping(data: dict[str, Any], *, max_tasks: int = MAX_TASKS) -> JobSpec | Problem:
    """Validate a plain mapping (JSON body, job file, chat message) into a JobSpec."""
    try:
        req = JobRequest.model_validate(data, strict=False)  # text sources: "10000" is a number there
    except ValidationError as exc:
        return problem_from_validation(exc)
    return build_spec(req, max_tasks=max_tasks)


def parse_after(items: list[str | int]) -> tuple[After, ...] | Problem:
    """``["12", "13:corr", 14]`` as dependencies; a kind that does not exist, a job named twice, or
    more than one corr: a Problem naming the item."""
    out: list[After] = []
    for item in items:
        text = str(item).strip()
        job, _, kind = text.partition(":")
        kind = kind or "ok"
        if isinstance(item, bool) or not job.isdigit() or not job.isascii() or not 1 <= int(job) <= MAX_JOB_ID:
            return Problem("after", item, "must name a job: JOB or JOB:KIND, e.g. 12 or 12:corr")
        if kind not in AFTER_KINDS:
            return Problem("after", item, f"has the kind {kind!r}; a dependency is one of {', '.join(AFTER_KINDS)}")
        if any(d.job == int(job) for d in out):
            return Problem("after", item, f"names job {job} twice")
        out.append(After(JobId(int(job)), kind))
    if sum(d.kind == "corr" for d in out) > 1:
        return Problem("after", ",".join(str(i) for i in items), "may link task by task (corr) to one job only")
    return tuple(out)
