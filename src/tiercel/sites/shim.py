"""What one element of a native array runs inside the batch system.

    python -m tiercel.sites.shim MANIFEST

The manifest (JSON, written by the site before it submits) holds the job's
spec and, for each element, the task index and attempt it stands for. The shim
runs that task exactly as a worker would (same command line, environment,
walltime and output capture) and leaves three files beside the manifest:
``E.out``, ``E.err`` and, last and atomically, ``E.json`` with the outcome. The
site's poller reads them; a missing ``E.json`` means the element never finished.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from tiercel.core.model import JobId, Outcome, Report, TaskRef
from tiercel.protocol import spec_from_dict
from tiercel.worker.runner import Handle, run_task


def write_result(folder: Path, element: int, report: Report) -> None:
    (folder / f"{element}.out").write_bytes(report.stdout)
    (folder / f"{element}.err").write_bytes(report.stderr)
    tmp = folder / f".{element}.json.tmp"
    tmp.write_text(json.dumps({"outcome": report.outcome.value, "exit_code": report.exit_code,
                               "started": report.started, "ended": report.ended}))
    os.replace(tmp, folder / f"{element}.json")


def read_result(folder: Path, element: int, ref: TaskRef) -> Report | None:
    """The element's report, or None while it has not finished."""
    try:
        data = json.loads((folder / f"{element}.json").read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        now = time.time()
        return Report(ref.job, ref.index, ref.attempt, Outcome.FAILED, None, now, now, b"",
                      f"tiercel: unreadable result of element {element}: {exc}\n".encode())
    out = _read(folder / f"{element}.out")
    err = _read(folder / f"{element}.err")
    return Report(ref.job, ref.index, ref.attempt, Outcome(data["outcome"]), data.get("exit_code"),
                  float(data.get("started", 0.0)), float(data.get("ended", 0.0)), out, err)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m tiercel.sites.shim MANIFEST (with $TIERCEL_ELEMENT set)", file=sys.stderr)
        return 2
    manifest = Path(argv[0])
    element = int(os.environ["TIERCEL_ELEMENT"])
    data = json.loads(manifest.read_text())
    index, attempt = data["elements"][element - 1]
    spec = spec_from_dict(data["spec"])
    ref = TaskRef(JobId(int(data["job"])), int(index), int(attempt))
    report = run_task(spec, ref, Handle(), base_env=dict(os.environ), max_output=int(data.get("max_output", 1 << 20)))
    write_result(manifest.parent, element, report)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
