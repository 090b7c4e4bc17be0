"""Kestrel's chat messages: parsing what users type, writing what the manager answers.

Users type Python-literal dicts into a chat window, exactly as Kestrel's manual shows:

    {'type':'job', 'command':"~/runtask.sh", 'queue':10000}
    {'type':'status'}            {'type':'status', 'job_id': 317}
    {'type':'cancel'}            {'type':'cancel', 'job_id': 428}

and get answers in the same syntax (``{'type':'job_started', 'job_id': 483}``). Messages
are read with ``ast.literal_eval`` (literals only: never ``eval``) or as JSON, after a
size check; anything else gets a short, friendly explanation.
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass
from typing import Any

from tiercel.core.model import MAX_JOB_ID, JobSpec
from tiercel.core.problems import Problem
from tiercel.jobspec.request import spec_from_mapping

MAX_MESSAGE = 4096  # characters: a job message is a line, not a document

# What a job message may carry besides its type: Kestrel's keys and the job options Tiercel adds.
JOB_KEYS = ("command", "queue", "requires", "cleanup", "name", "array", "retries", "walltime", "env", "cwd",
            "cpus", "memory", "priority", "queue_name", "reservation", "max_running", "max_failures", "hold")

HELP = (
    "I understand these messages:\n"
    "  {'type':'job', 'command':\"~/runtask.sh\", 'queue':10000}   run the command for indexes 0..9999\n"
    "      optional: 'requires':'gpu,bio', 'cleanup':\"rm -rf /tmp/x\", 'name':'sweep', 'walltime':'10m'\n"
    "  {'type':'status'}                  your jobs and their progress\n"
    "  {'type':'status', 'job_id': 317}   one job\n"
    "  {'type':'cancel'}                  cancel all of your jobs\n"
    "  {'type':'cancel', 'job_id': 428}   cancel one job\n"
    "  {'type':'hold', 'job_id': 428}     start none of its tasks until {'type':'release', 'job_id': 428}\n"
    "  {'type':'retry', 'job_id': 428}    run its failed tasks again\n"
    "      optional in a job: 'max_running':50, 'max_failures':10, 'hold':True\n"
    "When a job ends I send {'type':'job_finished', 'job_id': N}."
)


@dataclass(frozen=True)
class SubmitJob:
    spec: JobSpec


@dataclass(frozen=True)
class Status:
    job_id: int | None


@dataclass(frozen=True)
class Cancel:
    job_id: int | None


@dataclass(frozen=True)
class Control:
    """hold, release or retry one job."""

    action: str
    job_id: int


@dataclass(frozen=True)
class Help:
    reason: str  # empty when help was asked for; else what was wrong with the message
    about: str | None = None  # "job" when a job message cannot be run: answered with job_rejected


Message = SubmitJob | Status | Cancel | Control | Help


def parse(text: str, *, max_tasks: int = 100_000_000) -> Message:
    """Read one chat message. Never raises: a message that is not understood becomes Help."""
    text = text.strip()
    if text.lower() in ("help", "?", "{'type':'help'}", '{"type":"help"}'):
        return Help("")
    if len(text) > MAX_MESSAGE:
        return Help(f"that message is {len(text)} characters long; I read at most {MAX_MESSAGE}")
    data = _literal(text)
    if not isinstance(data, dict):
        return Help("I could not read that as a message")
    kind = data.get("type")
    if kind == "help":
        return Help("")
    if kind in ("status", "cancel", "hold", "release", "retry"):
        extra = sorted(str(k) for k in data if k not in ("type", "job_id"))
        if extra:
            return Help(f"a {kind} message takes only 'job_id', not {', '.join(repr(k) for k in extra)}")
        job_id = data.get("job_id")
        if job_id is not None and (isinstance(job_id, bool) or not isinstance(job_id, int)
                                   or not 1 <= job_id <= MAX_JOB_ID):
            return Help(f"'job_id' must be a job number such as 317, not {job_id!r}")
        if kind in ("hold", "release", "retry"):
            if job_id is None:
                return Help(f"a {kind} message needs the 'job_id' of one of your jobs")
            return Control(kind, job_id)
        return Status(job_id) if kind == "status" else Cancel(job_id)
    if kind == "job":
        fields = {k: v for k, v in data.items() if k != "type"}
        unknown = sorted(str(k) for k in fields if k not in JOB_KEYS)
        if unknown:
            return Help(f"a job message does not take {', '.join(repr(k) for k in unknown)}", "job")
        if isinstance(fields.get("queue"), bool):
            return Help("'queue' must be a number of tasks such as 10000", "job")
        spec = spec_from_mapping(fields, max_tasks=max_tasks)
        if isinstance(spec, Problem):
            return Help(spec.message(), "job")
        return SubmitJob(spec)
    if kind is None:
        return Help("a message needs a 'type': 'job', 'status', 'cancel', 'hold', 'release' or 'retry'")
    return Help(f"I do not know the message type {kind!r}")


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
        pass
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


# ---- replies, written as the seed writes them ------------------------------------


def _value(v: object) -> str:
    return repr(v)


def reply(kind: str, **fields: object) -> str:
    rest = "".join(f", '{k}': {_value(v)}" for k, v in fields.items())
    return "{'type':'" + kind + "'" + rest + "}"


def job_started(job_id: int) -> str:
    return reply("job_started", job_id=job_id)


def job_rejected(reason: str) -> str:
    return reply("job_rejected", reason=reason)


def job_finished(job_id: int) -> str:
    return reply("job_finished", job_id=job_id)
