"""Contract tests: each adapter drives the fake CLIs of its system (tests/fixtures/fakebatch)
through real subprocesses -- submit, poll, cancel -- exactly as a site would."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.sites import contract
from tiercel.sites.adapters import ADAPTERS
from tiercel.sites.adapters.base import Adapter, ArrayRequest, NativeState

FAKE = Path(__file__).resolve().parent.parent / "fixtures" / "fakebatch"
KINDS = ["pbs", "lsf", "htcondor"]

# What a cancelled element looks like while the system still lists it. LSF's EXIT
# does not tell a kill from a failure (see lsf.py); HTCondor drops removed jobs.
CANCELLED = {
    "pbs": {NativeState.CANCELLED},
    "lsf": {NativeState.FAILED},
    "htcondor": {NativeState.CANCELLED},
}


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    path = f"{FAKE}{os.pathsep}{os.environ['PATH']}"
    return {**os.environ, "PATH": path, "FAKEBATCH_STATE": str(tmp_path / "state.json")}


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    wd = tmp_path / "work"
    wd.mkdir()
    return wd


def adapter(kind: str) -> Adapter:
    return ADAPTERS[kind]()


@pytest.mark.parametrize("kind", KINDS)
def test_every_element_runs_once(kind: str, env: dict[str, str], workdir: Path) -> None:
    contract.run_array(adapter(kind), workdir, env)


@pytest.mark.parametrize("kind", ["pbs", "lsf"])
def test_throttled_array_runs_every_element(kind: str, env: dict[str, str], workdir: Path) -> None:
    contract.run_array(adapter(kind), workdir, env, throttle=1)


@pytest.mark.parametrize("kind", KINDS)
def test_single_element_array(kind: str, env: dict[str, str], workdir: Path) -> None:
    a = adapter(kind)
    script = f'echo "$TIERCEL_ELEMENT" > {workdir}/one\nexit 3\n'
    req = ArrayRequest(name="one", count=1, script=script, workdir=str(workdir))
    native_id = contract.submit(a, req, env)
    rows = contract.poll(a, native_id, lambda rows: contract.settled(rows, 1), env, "settled array")
    assert (workdir / "one").read_text() == "1\n"
    if 1 in rows:  # HTCondor drops completed jobs
        assert rows[1].state is NativeState.FAILED
        assert rows[1].exit_code == 3


@pytest.mark.parametrize("kind", KINDS)
def test_cancel_elements_then_the_array(kind: str, env: dict[str, str], workdir: Path) -> None:
    a = adapter(kind)
    rows = contract.cancel_array(a, workdir, env)
    assert all(row.state in CANCELLED[kind] for row in rows.values()), rows


@pytest.mark.parametrize("kind", KINDS)
def test_cancel_kills_the_element_processes(kind: str, env: dict[str, str], workdir: Path) -> None:
    a = adapter(kind)
    script = f"echo $$ > {workdir}/pid.$TIERCEL_ELEMENT\nexec sleep 300\n"
    native_id = contract.submit(a, ArrayRequest(name="pids", count=2, script=script, workdir=str(workdir)), env)
    contract.poll(a, native_id, lambda _: all((workdir / f"pid.{e}").exists() for e in (1, 2)), env, "started elements")
    assert contract.run(a.cancel(native_id), env).returncode == 0
    contract.poll(a, native_id, lambda rows: contract.settled(rows, 2), env, "cancelled array")
    for e in (1, 2):
        pid = int((workdir / f"pid.{e}").read_text())
        contract.poll(a, native_id, lambda _, pid=pid: not _alive(pid), env, f"element {e} process gone")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("op", ["submit", "status", "cancel"])
def test_failing_command(kind: str, op: str, env: dict[str, str], workdir: Path) -> None:
    a = adapter(kind)
    invocation = {
        "submit": a.submit(ArrayRequest(name="x", count=2, script="true\n", workdir=str(workdir))),
        "status": a.status(["1"]),
        "cancel": a.cancel("1"),
    }[op]
    done = contract.run(invocation, {**env, "FAKEBATCH_FAIL": op})
    assert done.returncode != 0
    assert "FAKEBATCH_FAIL" in done.stderr


@pytest.mark.parametrize("kind", KINDS)
def test_hanging_command(kind: str, env: dict[str, str]) -> None:
    a = adapter(kind)
    with pytest.raises(subprocess.TimeoutExpired):
        contract.run(a.status(["1"]), {**env, "FAKEBATCH_HANG": "status"}, timeout=1)


@pytest.mark.parametrize("kind", KINDS)
def test_status_of_unknown_ids_lists_nothing(kind: str, env: dict[str, str]) -> None:
    a = adapter(kind)
    native_id = {"pbs": "999[].fakeserver", "lsf": "999", "htcondor": "999"}[kind]
    assert contract.states(a, native_id, env) == {}


def test_pending_elements_wait_for_a_free_slot(env: dict[str, str], workdir: Path) -> None:
    a = adapter("pbs")
    req = ArrayRequest(name="slots", count=3, script="sleep 300\n", workdir=str(workdir))
    native_id = contract.submit(a, req, {**env, "FAKEBATCH_SLOTS": "1"})
    try:
        rows = contract.states(a, native_id, {**env, "FAKEBATCH_SLOTS": "1"})
        assert sorted(r.state.value for r in rows.values()) == ["pending", "pending", "running"]
    finally:
        contract.run(a.cancel(native_id), env)
