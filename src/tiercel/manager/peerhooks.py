"""What the shell asks of federation (tiercel.federation), and the answers of a manager without peers.

The shell calls these at fixed points — sites changed, records durable, a job ended, the store
loaded — so federation needs no hook of its own inside the shell's code paths; without
[peers.NAME] the shell holds a ``NoPeers`` and nothing changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from tiercel.core.model import AttemptRecord, JobId, JobState
from tiercel.core.sites import SiteInfo
from tiercel.store import SaveSiteJob


class PeerHooks(Protocol):
    def sites(self) -> list[SiteInfo]: ...  # the peers' sites as placement sees them
    def site_rows(self) -> list[dict[str, Any]]: ...  # rows of `tiercel sites`, each marked with its peer
    def forwarded(self, job: JobId) -> list[dict[str, Any]]: ...  # the job's ranges at peers, for explain
    def rows(self) -> list[dict[str, Any]]: ...  # `tiercel peers`: each peer's link, offer, work and refusals
    def durable(self, records: list[AttemptRecord]) -> None: ...  # attempt records once durable
    def job_ended(self, job: JobId, state: JobState, forwarded_here: bool) -> None: ...
    def restore(self, rows: Sequence[SaveSiteJob]) -> None: ...  # at start, before any dispatch


class NoPeers:
    def sites(self) -> list[SiteInfo]:
        return []

    def site_rows(self) -> list[dict[str, Any]]:
        return []

    def forwarded(self, job: JobId) -> list[dict[str, Any]]:
        return []

    def rows(self) -> list[dict[str, Any]]:
        return []

    def durable(self, records: list[AttemptRecord]) -> None:
        pass

    def job_ended(self, job: JobId, state: JobState, forwarded_here: bool) -> None:
        pass

    def restore(self, rows: Sequence[SaveSiteJob]) -> None:
        pass
