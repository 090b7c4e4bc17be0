"""The manager's side of data-aware placement: the Gfarm service started at the first job with files,
what it learns handed to the engine, and a submission's inputs checked when it asked for that."""

from __future__ import annotations

import asyncio
from typing import Protocol

from tiercel.core.data import path_of, per_task
from tiercel.core.engine import Engine
from tiercel.core.model import JobId, JobSpec
from tiercel.core.problems import Problem
from tiercel.data.service import DataService
from tiercel.manager.settings import Settings

MAX_LEARNED = 1_000_000  # paths of one job asked about at submit (the engine weighs a job's front)


class Shell(Protocol):
    """The shell (manager/shell.py), as its data-aware placement needs it."""

    data: DataService | None
    engine: Engine
    loop: asyncio.AbstractEventLoop | None
    settings: Settings

    def pump(self) -> None: ...


def service(m: Shell) -> DataService:
    if m.data is None:
        loop = m.loop
        assert loop is not None

        def changed(view: object) -> None:
            loop.call_soon_threadsafe(_changed, m, view)

        def copied(path: str, node: str, ok: bool) -> None:
            loop.call_soon_threadsafe(m.engine.replica_made, path, node, ok)

        m.data = DataService(changed, copied, m.settings.data)
    return m.data


def _changed(m: Shell, view: object) -> None:
    from tiercel.core.data import DataView

    assert isinstance(view, DataView)
    m.engine.set_data(view)
    m.pump()


def paths(job_id: JobId, spec: JobSpec) -> list[str]:
    out: list[str] = []
    for url in spec.inputs:
        if per_task(url):
            out.extend(path_of(url, job_id, i) for i, _ in zip(spec.indexes, range(MAX_LEARNED), strict=False))
        else:
            out.append(path_of(url, job_id, 0))
    return out


def learn(m: Shell, job_id: JobId, spec: JobSpec) -> None:
    if spec.inputs:
        service(m).learn(paths(job_id, spec))


async def check(m: Shell, job_id: JobId, spec: JobSpec) -> Problem | None:
    """For a job that asked to be refused when an input is missing: which is, or why it cannot be known."""
    if spec.on_missing_input != "refuse" or not spec.inputs:
        return None
    wanted = paths(job_id, spec)
    missing = await asyncio.to_thread(service(m).check, wanted)
    if isinstance(missing, str):
        return Problem("inputs", spec.inputs[0], f"cannot be checked: Gfarm does not answer ({missing}); nothing "
                                                 "was kept")
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        return Problem("inputs", ", ".join(f"gfarm://{p}" for p in missing[:3]) + more,
                       "do not exist in Gfarm (on_missing_input is refuse: nothing was kept)")
    return None
