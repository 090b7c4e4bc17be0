"""Managers and workers over the session's real Gfarm: each worker on one of its file-system nodes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gfarm import Gfarm
from tests.integration.conftest import Cluster


class DataCluster(Cluster):
    def __init__(self, root: Path, gfarm: Gfarm) -> None:
        super().__init__(root)
        self.gfarm = gfarm

    def env(self, token: str | None = None) -> dict[str, str]:
        return {**super().env(token), "GFARM_CONFIG_FILE": self.gfarm.env()["GFARM_CONFIG_FILE"]}

    def start_node_worker(self, node: str, slots: int = 2, *args: str) -> None:
        self.start_worker("--slots", str(slots), "--data-host", node, *args, name=f"w-{node}",
                          env={"GFARM_CONFIG_FILE": self.gfarm.env()["GFARM_CONFIG_FILE"]})


@pytest.fixture
def data_cluster(tmp_path: Path, gfarm: Gfarm, monkeypatch: pytest.MonkeyPatch,
                 request: pytest.FixtureRequest) -> Iterator[DataCluster]:
    monkeypatch.setenv("GFARM_CONFIG_FILE", gfarm.env()["GFARM_CONFIG_FILE"])  # the manager's Gfarm
    c = DataCluster(tmp_path, gfarm)
    try:
        c.start_manager()
        yield c
    finally:
        c.stop()
        rep = getattr(request.node, "rep_call", None)
        if rep is not None and rep.failed:
            print(c.dump_logs())
