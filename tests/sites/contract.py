"""Drive an adapter's own Invocations through real subprocesses: the contract every
batch system (fake or real) must keep with its adapter."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from tiercel.sites.adapters.base import Adapter, ArrayRequest, ElementState, Invocation, NativeState

POLL_TIMEOUT = 30.0  # generous for a busy machine; nothing asserts on speed
SHARED_TIMEOUT = 240.0  # a real cluster others use too may queue our elements behind theirs


Env = Mapping[str, str] | None


def run(inv: Invocation, env: Env = None, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """What a site does with an Invocation: write its files, feed its stdin, run its argv."""
    for path, content in inv.files:
        Path(path).write_text(content)
    return subprocess.run(
        inv.argv, input=inv.stdin, capture_output=True, text=True, env=dict(env) if env else None, timeout=timeout
    )


def submit(adapter: Adapter, req: ArrayRequest, env: Env = None) -> str:
    done = run(adapter.submit(req), env)
    assert done.returncode == 0, f"{done.args} failed: {done.stderr}"
    return adapter.parse_submit(done.stdout)


def states(adapter: Adapter, native_id: str, env: Env = None) -> dict[int | None, ElementState]:
    """One status poll, the rows of this array by element. The query may fail once every
    id it names is gone (squeue, qstat and bjobs then say so on stderr): no rows."""
    done = run(adapter.status([native_id]), env)
    rows = adapter.parse_status(done.stdout)
    return {r.element: r for r in rows if r.native_id == native_id}


def settled(rows: Mapping[int | None, ElementState], count: int) -> bool:
    """Every element is terminal or no longer listed."""
    return all(rows[e].state.terminal for e in range(1, count + 1) if e in rows)


def poll(
    adapter: Adapter,
    native_id: str,
    until: Callable[[dict[int | None, ElementState]], bool],
    env: Env = None,
    what: str = "a state",
    timeout: float = POLL_TIMEOUT,
) -> dict[int | None, ElementState]:
    deadline = time.monotonic() + timeout
    rows: dict[int | None, ElementState] = {}
    while time.monotonic() < deadline:
        rows = states(adapter, native_id, env)
        if until(rows):
            return rows
        time.sleep(0.2)
    raise AssertionError(f"{adapter.kind} array {native_id}: no {what} after {timeout}s; last rows {rows}")


def run_array(adapter: Adapter, workdir: Path, env: Env = None, timeout: float = POLL_TIMEOUT, **extra: object) -> None:
    """Submit 3 elements that each append their number to a file of their own; every
    element must run exactly once and the array settle."""
    script = f'echo "$TIERCEL_ELEMENT" >> {workdir}/ran.$TIERCEL_ELEMENT\n'
    req = ArrayRequest(name="contract", count=3, script=script, workdir=str(workdir), **extra)
    native_id = submit(adapter, req, env)
    try:
        poll(adapter, native_id, lambda rows: settled(rows, 3), env, "settled array", timeout)
    except AssertionError:
        run(adapter.cancel(native_id), env)
        raise
    for e in (1, 2, 3):
        path = workdir / f"ran.{e}"
        deadline = time.monotonic() + POLL_TIMEOUT
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.1)  # a shared file system may show the file a little later
        assert path.read_text() == f"{e}\n", f"element {e} did not run exactly once"


def cancel_array(
    adapter: Adapter, workdir: Path, env: Env = None, timeout: float = POLL_TIMEOUT
) -> dict[int | None, ElementState]:
    """Submit 3 long elements, cancel element 2, then the whole array; return the last rows.

    Whatever the listing shows (cancelled elements may vanish from it), every element's
    process must be gone afterwards.
    """
    script = f"echo $$ > {workdir}/pid.$TIERCEL_ELEMENT\nexec sleep 300\n"
    req = ArrayRequest(name="cancelme", count=3, script=script, workdir=str(workdir))
    native_id = submit(adapter, req, env)
    try:
        started = lambda rows: any(r.state is NativeState.RUNNING for r in rows.values()) \
            and any(workdir.glob("pid.*"))  # noqa: E731
        poll(adapter, native_id, started, env, "a start", timeout)
        done = run(adapter.cancel(native_id, [2]), env)
        assert done.returncode == 0, done.stderr
        ended = lambda rows: 2 not in rows or rows[2].state.terminal  # noqa: E731
        rows = poll(adapter, native_id, ended, env, "element 2 ended", timeout)
        assert not any(rows[e].state.terminal for e in (1, 3) if e in rows), f"only element 2 was cancelled: {rows}"
    finally:
        run(adapter.cancel(native_id), env)
    rows = poll(adapter, native_id, lambda rows: settled(rows, 3), env, "cancelled array", timeout)
    pids = [int(p.read_text()) for p in workdir.glob("pid.*")]
    assert pids, "no element started"
    deadline = time.monotonic() + timeout
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(p) for p in pids), f"element processes still running after cancel: {pids}"
    return rows


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
