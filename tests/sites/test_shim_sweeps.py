"""Native array elements of a sweep over data (their entries from a file beside the script) and with
output files, run by the real /bin/sh: what a pool worker does, done by the element script."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

from tests.sites.fakes import turns
from tests.sites.test_native_site import WORKER, World
from tiercel.core.engine import SendTasks
from tiercel.core.model import JobId, JobSpec, Outcome, TaskRef
from tiercel.core.ranges import IndexRanges
from tiercel.sites.shim import element_entries, element_script, read_result

JOB = JobId(7)


def spec(command: tuple[str, ...], **kw: object) -> JobSpec:
    return JobSpec(command=command, indexes=IndexRanges.of_size(100), **kw)  # type: ignore[arg-type]


def run(folder: Path, s: JobSpec, elements: dict[int, TaskRef], element: int) -> None:
    (folder / "run.sh").write_text(element_script(s, JOB, elements, folder))
    entries = element_entries(elements)
    if entries is not None:
        (folder / "entries").write_text(entries)
    subprocess.run(["/bin/sh", str(folder / "run.sh")], env={**os.environ, "TIERCEL_ELEMENT": str(element)},
                   capture_output=True, timeout=60, check=False)


def test_each_element_gets_its_entry_in_the_environment_and_as_its_argument(tmp_path: Path) -> None:
    entries = ["plain", "", "  spaced \\ back$lash 'q' \"d\"  ", '{"a":[1,2]}', "last"]
    elements = {n: TaskRef(JOB, 10 + n, 1, b"", e) for n, e in enumerate(entries, start=1)}
    assert element_entries(elements) == "".join(e + "\n" for e in entries)
    s = spec(("/bin/sh", "-c", 'printf "%s|%s|%s" "$0" "$TIERCEL_ENTRY" "$TIERCEL_TASK_INDEX"'))
    for n, entry in enumerate(entries, start=1):
        run(tmp_path, s, elements, n)
        r = read_result(tmp_path, n, elements[n])
        assert r is not None and r.outcome is Outcome.DONE
        assert r.stdout.decode() == f"{entry}|{entry}|{10 + n}"


def test_without_entries_there_is_no_entries_file_and_the_index_is_the_argument(tmp_path: Path) -> None:
    elements = {1: TaskRef(JOB, 4, 1)}
    assert element_entries(elements) is None
    run(tmp_path, spec(("/bin/sh", "-c", 'echo "$0 ${TIERCEL_ENTRY-unset}"')), elements, 1)
    r = read_result(tmp_path, 1, elements[1])
    assert r is not None and r.stdout == b"4 unset\n"


def test_output_files_per_task_and_per_job(tmp_path: Path) -> None:
    work, spool = tmp_path / "work", tmp_path / "spool"
    work.mkdir()
    spool.mkdir()
    elements = {1: TaskRef(JOB, 5, 1), 2: TaskRef(JOB, 6, 2)}
    s = spec(("/bin/sh", "-c", 'printf "out %s" "$0"; echo "err $0" >&2; [ "$0" = 6 ] && exit 3; true'),
             cwd=str(work), stdout="out/{job}/{index:04}.txt", stderr="errors.log")
    for n in (2, 1):
        run(spool, s, elements, n)
    assert (work / "out" / "7" / "0005.txt").read_text() == "out 5"
    assert (work / "out" / "7" / "0006.txt").read_text() == "out 6"
    assert (work / "errors.log").read_text() == (
        "==> task 6 (attempt 2, failed, exit 3) <==\nerr 6\n==> task 5 (attempt 1, done, exit 0) <==\nerr 5\n")
    r = read_result(spool, 1, elements[1])
    assert r is not None and r.outcome is Outcome.DONE and r.stdout == b"out 5"  # the manager's copy as before
    started = (spool / "1.end").read_text().split()[1]
    assert float(started) == r.started  # the element's own start, untouched by the copies


def test_both_streams_in_one_file_and_a_file_that_cannot_be_written(tmp_path: Path) -> None:
    elements = {1: TaskRef(JOB, 2, 1)}
    s = spec(("/bin/sh", "-c", "echo o; echo e >&2"), append_index=False, cwd=str(tmp_path),
             stdout="all-{index}", stderr="all-{index}")
    run(tmp_path, s, elements, 1)
    assert (tmp_path / "all-2").read_text() == "o\ne\n"
    (tmp_path / "taken").write_text("a file, not a directory")
    run(tmp_path, spec(("true",), append_index=False, cwd=str(tmp_path), stdout="taken/{index}"), elements, 1)
    r = read_result(tmp_path, 1, elements[1])
    assert r is not None and r.outcome is Outcome.FAILED and r.exit_code == 1
    assert b"could not write the stdout to taken/2" in r.stderr


def test_a_native_site_writes_each_arrays_entries_beside_its_script(tmp_path: Path) -> None:
    async def scenario() -> None:
        w = World(tmp_path, max_array=2)
        refs = [TaskRef(JOB, i, 1, b"", f"line {i}") for i in range(3)]
        w.site.send(SendTasks(WORKER, refs, {JOB: spec(("./sim",))}))
        await turns()
        folders = [w.slurm.workdir(n) for n in ("17", "18")]
        assert [(f / "entries").read_text() for f in folders] == ["line 0\nline 1\n", "line 2\n"]
        assert all('"$TIERCEL_ENTRY"' in (f / "run.sh").read_text() for f in folders)

    asyncio.run(scenario())
