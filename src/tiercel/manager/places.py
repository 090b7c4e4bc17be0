"""Where each job's attempts ran, by name, kept with the job so its history can say so.

A place is a worker's name, a pilot's (``SITE/NAME``) or a native site's. The first result of a
job from a place writes it (``AddPlaces``) in the same group commit as that result, so it costs
one small update per job and place, and a restart, a take-over or a retried job only adds to
what the job's row holds.
"""

from __future__ import annotations

from collections.abc import Callable

from tiercel.core.engine import Engine
from tiercel.core.model import AttemptRecord, JobId, WorkerId
from tiercel.core.sites import POOL, site_of_worker
from tiercel.store.base import AddPlaces


class Places:
    def __init__(self, engine: Callable[[], Engine]) -> None:
        self._engine = engine  # the shell's engine, which start() replaces
        self._seen: dict[JobId, set[WorkerId]] = {}  # the places each unfinished job has written, by worker

    def name(self, worker: WorkerId) -> str:
        site = site_of_worker(worker)
        if site is not None:
            return site
        run = self._engine().workers.get(worker)
        if run is None:
            return str(worker)
        info = run.info
        return info.name if info.site == POOL else f"{info.site}/{info.name}"

    def new(self, records: list[AttemptRecord]) -> list[AddPlaces]:
        """The places these records show that their jobs have not written yet (a set lookup a record)."""
        fresh: dict[JobId, set[str]] = {}
        for a in records:
            job = a.report.job
            seen = self._seen.get(job)
            if seen is None:
                seen = self._seen[job] = set()
            if a.worker not in seen:
                seen.add(a.worker)
                fresh.setdefault(job, set()).add(self.name(a.worker))
        return [AddPlaces(job, tuple(sorted(names))) for job, names in fresh.items()]

    def ended(self, job: JobId) -> None:
        self._seen.pop(job, None)
