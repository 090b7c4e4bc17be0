"""Real Slurm and Grid Engine for the tests: installed and started on loopback when absent, stopped after.

The recipes are scripts/services/*_up.sh. They need root (apt-get, daemons). In CI a
batch system that cannot be brought up is a failure, never a silent skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts" / "services"


def _unavailable(why: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{why} (CI is set: batch-system tests must run)", pytrace=False)
    pytest.skip(why)


def _ok(argv: list[str], want: str = "") -> bool:
    if shutil.which(argv[0]) is None:
        return False
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0 and want in r.stdout


def _service(name: str, ready: list[str], want: str, env: dict[str, str]) -> Iterator[None]:
    started = False
    if not _ok(ready, want):
        if os.geteuid() != 0:
            _unavailable(f"{name} is not running and starting it needs root")
        r = subprocess.run(["bash", str(SCRIPTS / f"{name}_up.sh")], capture_output=True, text=True,
                           timeout=900, env={**os.environ, **env})
        if r.returncode != 0 or not _ok(ready, want):
            _unavailable(f"{name} could not be started: {(r.stdout + r.stderr)[-2000:]}")
        started = True
    yield
    if started:
        subprocess.run(["bash", str(SCRIPTS / f"{name}_down.sh")], capture_output=True, timeout=300)


@pytest.fixture(scope="session")
def slurm() -> Iterator[None]:
    yield from _service("slurm", ["scontrol", "ping"], "is UP", {"SLURM_CPUS": "16"})


@pytest.fixture(scope="session")
def sge() -> Iterator[None]:
    yield from _service("sge", ["qstat", "-f", "-q", "all.q"], "all.q@", {"SGE_SLOTS": "8"})
