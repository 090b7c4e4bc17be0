"""tiercel simulate over damaged and unusual traces: what it says and what it counts."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from tiercel.cli.main import cli


def swf_line(job: int, submit: float, runtime: float, procs: int, requested: float = -1) -> str:
    return f"{job} {submit} -1 {runtime} {procs} -1 -1 {procs} {requested} -1 1 {job % 3} 1 -1 1 -1 -1 -1"


def many_lines(n: int = 2000) -> list[str]:
    return [swf_line(i, i * 5, 20 + i % 7 * 10, 1 + i % 4) for i in range(1, n + 1)]


def write(path: Path, lines: list[str]) -> Path:
    text = "; a test trace\n" + "\n".join(lines) + "\n"
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def simulate(trace: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["simulate", "--trace", str(trace), "--slots", "4", *args])


def metrics(result: Result) -> dict[str, Any]:
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    return {k: data[k] for k in ("jobs", "utilisation", "mean_wait", "mean_bounded_slowdown", "makespan")}


def assert_one_line_error(result: Result, trace: Path, needle: str) -> None:
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    [line] = result.stderr.strip().splitlines()
    assert str(trace.name) in line and needle in line, line
    assert "Traceback" not in result.output and "Aborted" not in result.output


# ---- damaged gzip traces ------------------------------------------------------------------------


def test_a_truncated_gzip_trace_is_one_line_naming_the_file(tmp_path: Path) -> None:
    full = write(tmp_path / "full.swf.gz", many_lines()).read_bytes()
    cut = tmp_path / "cut.swf.gz"
    cut.write_bytes(full[: len(full) // 2])
    assert_one_line_error(simulate(cut), cut, "is cut short")


def test_a_corrupt_deflate_block_is_one_line_naming_the_file(tmp_path: Path) -> None:
    data = bytearray(write(tmp_path / "full.swf.gz", many_lines()).read_bytes())
    for i in range(40, 60):  # inside the first deflate block, past the gzip header
        data[i] ^= 0xFF
    bad = tmp_path / "bad.swf.gz"
    bad.write_bytes(bytes(data))
    assert_one_line_error(simulate(bad), bad, "is damaged")


def test_a_file_named_gz_that_is_not_gzip_is_one_line(tmp_path: Path) -> None:
    plain = write(tmp_path / "plain.swf", many_lines(10))
    named = tmp_path / "plain.swf.gz"
    named.write_bytes(plain.read_bytes())
    assert_one_line_error(simulate(named), named, "is not a gzip file")


def test_a_whole_gzip_trace_reads_like_the_plain_one(tmp_path: Path) -> None:
    lines = many_lines()
    assert metrics(simulate(write(tmp_path / "t.swf.gz", lines), "--json")) == \
           metrics(simulate(write(tmp_path / "t.swf", lines), "--json"))


# ---- job numbers used twice --------------------------------------------------------------------


def test_a_reused_job_number_is_replayed_as_a_job_of_its_own_and_said(tmp_path: Path) -> None:
    lines = [swf_line(1, 0, 10, 4), swf_line(2, 1, 10, 4), swf_line(3, 2, 10, 4), swf_line(4, 3, 10, 4)]
    reused = [lines[0], lines[1], lines[2].replace("3 2 ", "2 2 ", 1), lines[3]]
    assert reused[2].startswith("2 2 ")
    result = simulate(write(tmp_path / "reused.swf", reused), "--json")
    assert metrics(result) == metrics(simulate(write(tmp_path / "distinct.swf", lines), "--json"))
    assert json.loads(result.stdout)["renumbered"] == 1
    assert "renumbered 1 job reusing a job number" in result.stderr


# ---- jobs the trace records but that cannot be replayed ----------------------------------------


def test_jobs_that_cannot_be_replayed_are_counted_with_the_reason(tmp_path: Path) -> None:
    lines = [swf_line(1, 0, 10, 1), swf_line(2, 1, -1, 1), swf_line(3, 2, -1, 2), swf_line(4, 3, 10, -1),
             swf_line(5, -1, 10, 1), swf_line(6, 4, 10, 1)]
    trace = write(tmp_path / "t.swf", lines)
    data = json.loads(simulate(trace, "--json").stdout)
    assert data["jobs"] == 2
    assert data["skipped_not_replayable"] == 4
    assert data["skipped_not_replayable_by_reason"] == {"run_time": 2, "processors": 1, "submit_time": 1}
    shown = simulate(trace)
    assert shown.exit_code == 0
    assert "skipped 4 jobs that cannot be replayed: 2 with no run time" in shown.stderr
    [row] = [line for line in shown.stdout.splitlines() if "cannot be replayed" in line]
    assert row.split()[-1] == "4"


# ---- --estimate-factor does what its help says ------------------------------------------------


@pytest.mark.parametrize("requested", [True, False])
def test_estimate_factor_applies_only_to_jobs_without_a_requested_time(tmp_path: Path, requested: bool) -> None:
    # 4 slots: job 1 holds 3 until 10, job 2 needs all 4, job 3 (1 slot) may backfill only if its
    # estimate ends before job 1's does: so these waits depend on the estimates
    if requested:
        lines = [swf_line(1, 0, 10, 3, 200), swf_line(2, 1, 10, 4, 10), swf_line(3, 2, 100, 1, 150)]
    else:
        lines = [swf_line(1, 0, 10, 3), swf_line(2, 1, 10, 4), swf_line(3, 2, 9, 1)]
    trace = write(tmp_path / "t.swf", lines)
    plain = metrics(simulate(trace, "--json", "--policy", "backfill"))
    factor = metrics(simulate(trace, "--json", "--policy", "backfill", "--estimate-factor", "3"))
    assert (plain == factor) is requested
    assert "no requested time" in CliRunner().invoke(cli, ["simulate", "--help"]).stdout
