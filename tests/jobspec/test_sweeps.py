"""Sweeps over data (entries: --each-line, --each-json) and output file patterns (--stdout, --stderr),
from every source: the request model, job files and the command line's options."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tiercel.cli.common import UserError
from tiercel.cli.jobopts import job_fields
from tiercel.core.model import Entries, JobSpec
from tiercel.core.problems import Problem
from tiercel.jobspec.files import load_job_file, read_json_entries, read_lines
from tiercel.jobspec.request import (
    MAX_ENTRY_BYTES,
    JobRequest,
    build_spec,
    check_entries,
    request_json,
    spec_from_mapping,
)
from tiercel.jobspec.values import check_output, fill_output, output_parts, per_task


def problem(data: dict[str, Any], **kw: Any) -> Problem:
    got = spec_from_mapping(data, **kw)
    assert isinstance(got, Problem), got
    assert got.message().startswith(got.field + ":")
    assert "\n" not in got.message()
    return got


# ---- entries in the request ---------------------------------------------------------------------


def test_entries_make_one_task_each_and_are_kept_compact() -> None:
    spec = spec_from_mapping({"command": "./run.sh", "entries": ["a b", "", "ünï", "{\"k\":1}"]})
    assert isinstance(spec, JobSpec)
    assert spec.size == 4 and spec.indexes.text() == "0-3"
    assert spec.entries == Entries.of(["a b", "", "ünï", "{\"k\":1}"])
    assert spec.entries is not None and spec.entries.blob == "a b\n\nünï\n{\"k\":1}".encode()
    assert [spec.entries[i] for i in range(4)] == ["a b", "", "ünï", "{\"k\":1}"]
    assert list(spec.entries) == ["a b", "", "ünï", "{\"k\":1}"]
    with pytest.raises(IndexError):
        spec.entries[4]


def test_a_single_empty_entry_is_one_task() -> None:
    entries = Entries.of([""])
    assert len(entries) == 1 and entries[0] == "" and list(entries) == [""]


@pytest.mark.parametrize(
    ("data", "field", "needle"),
    [
        ({"entries": ["a"], "queue": 3}, "queue", "cannot be given together with entries"),
        ({"entries": ["a"], "array": "0-9"}, "array", "cannot be given together with entries"),
        ({"entries": []}, "entries", "must hold one entry per task"),
        ({"entries": ["ok", "two\nlines"]}, "entries.1", "cannot hold a newline"),
        ({"entries": ["ok", "ok", "nul\0"]}, "entries.2", "must not contain NUL"),
        ({"entries": ["ok", "\ud800"]}, "entries.1", "valid string"),
        ({"entries": ["x", "é" * (MAX_ENTRY_BYTES // 2 + 1)]}, "entries.1", "must be at most 65,536 bytes"),
        ({"entries": "a\nb"}, "entries", "valid list"),
        ({"entries": [1, 2]}, "entries.0", "valid string"),
    ],
)
def test_bad_entries_are_refused_naming_the_entry(data: dict[str, Any], field: str, needle: str) -> None:
    got = problem({"command": "x", **data})
    assert got.field == field
    assert needle in got.message()


def test_more_entries_than_the_manager_takes_are_refused() -> None:
    got = problem({"command": "x", "entries": ["a"] * 11}, max_tasks=10)
    assert got.message() == "entries: 11 entries are too many: a job has at most 10 tasks"


def test_strict_json_takes_a_list_of_strings_only() -> None:
    req = JobRequest.model_validate({"command": "x", "entries": ["a", "b"]})
    spec = build_spec(req)
    assert isinstance(spec, JobSpec) and spec.size == 2
    with pytest.raises(ValueError, match="entries"):
        JobRequest.model_validate({"command": "x", "entries": ["a", 5]})


def test_a_million_entries_are_one_blob_and_pass_through_the_client_form() -> None:
    items = [f"/data/sample_{i:07d}.fastq" for i in range(1_000_000)]
    data = request_json({"command": "./run.sh", "entries": items})
    assert data["entries"] == items
    spec = spec_from_mapping(data)
    assert isinstance(spec, JobSpec) and spec.size == 1_000_000
    assert spec.entries is not None and spec.entries[999_999] == "/data/sample_0999999.fastq"


# ---- output patterns -------------------------------------------------------------------------


def test_output_patterns_are_kept_and_filled_in() -> None:
    spec = spec_from_mapping({"command": "x", "queue": 3, "stdout": "out/{index:05}-{job}.txt", "stderr": "err.log"})
    assert isinstance(spec, JobSpec) and (spec.stdout, spec.stderr) == ("out/{index:05}-{job}.txt", "err.log")
    parts = output_parts("out/{index:05}-{job}.txt")
    assert not isinstance(parts, str) and per_task(parts)
    assert fill_output(parts, 12, 7) == "out/00007-12.txt"
    job_file = output_parts("logs/{job}.log")
    assert not isinstance(job_file, str) and not per_task(job_file)
    assert fill_output(job_file, 12, 7) == "logs/12.log"
    braces = output_parts("{{x}}/{index}")
    assert not isinstance(braces, str) and fill_output(braces, 1, 2) == "{x}/2"
    for fine in ("/scratch/me/{index}.out", "~/out/{index}", "a/./b/{index}",
                 "/data/../x.log", "~/../x"):
        assert check_output("stdout", fine) is None, fine


@pytest.mark.parametrize(
    ("pattern", "needle"),
    [
        ("out/{foo}.txt", "unknown placeholder {foo}: the placeholders are {index} and {job}"),
        ("out/{}.txt", "unknown placeholder {}"),
        ("out/{index:x}", "has {index:x}: a placeholder is {index}, or zero-padded {index:05}"),
        ("out/{index!r}", "has {index!r}"),
        ("out/{index", "write {{ and }} for a brace"),
        ("../out/{index}", "must stay under the task's directory"),
        ("out/../../{index}", "must stay under the task's directory"),
        ("out/", "must name a file"),
        ("out/{index}/..", "must name a file"),
        ("out/\n{index}", "must not contain control characters"),
        ("out/\t{index}", "must not contain control characters"),
        ("", "must name a file"),
    ],
)
def test_bad_output_patterns_are_refused_at_submit(pattern: str, needle: str) -> None:
    for field in ("stdout", "stderr"):
        got = problem({"command": "x", field: pattern})
        assert got.field == field
        assert needle in got.message(), got.message()


# ---- files of entries ----------------------------------------------------------------------------


def test_lines_of_a_file_one_per_task(tmp_path: Path) -> None:
    f = tmp_path / "in.txt"
    f.write_bytes(b"\xef\xbb\xbfa\r\n\n  b c  \nlast")
    assert read_lines(f) == ["a", "", "  b c  ", "last"]
    f.write_bytes(b"one\n")
    assert read_lines(f) == ["one"]
    f.write_bytes(b"\n")
    assert read_lines(f) == [""]


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"", "is empty: it must hold one line per task"),
        (b"ok\nok\nbad \xff here\n", "is not UTF-8 text: line 3 holds byte 0xff"),
        (b"ok\nnul\x00\n", "holds a NUL character on line 2"),
        (b"a\n" + b"x" * (MAX_ENTRY_BYTES + 1) + b"\nb\n", "line 2 has 65,537 bytes, at most 65,536 are allowed"),
    ],
)
def test_bad_line_files_say_which_line(tmp_path: Path, content: bytes, needle: str) -> None:
    f = tmp_path / "in.txt"
    f.write_bytes(content)
    got = read_lines(f)
    assert isinstance(got, Problem) and got.field == "each_line"
    assert needle in got.message() and str(f) in got.message()


def test_a_line_of_exactly_the_limit_is_accepted(tmp_path: Path) -> None:
    f = tmp_path / "in.txt"
    f.write_text("é" * (MAX_ENTRY_BYTES // 2) + "\n")
    got = read_lines(f)
    assert isinstance(got, list) and isinstance(spec_from_mapping({"command": "x", "entries": got}), JobSpec)


def test_json_elements_become_compact_json(tmp_path: Path) -> None:
    f = tmp_path / "p.json"
    f.write_text('[{"alpha": 0.5, "name": "ünï\\nx"}, [1, 2], "s", 3, null, true]')
    entries = read_json_entries(f)
    assert entries == ['{"alpha":0.5,"name":"ünï\\nx"}', "[1,2]", '"s"', "3", "null", "true"]
    assert [json.loads(e) for e in entries] == json.loads(f.read_text())
    assert isinstance(spec_from_mapping({"command": "x", "entries": entries}), JobSpec)


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ('{"a": 1}', "must hold a JSON array, one element per task (it holds an object)"),
        ("42", "(it holds a number)"),
        ("[]", "is an empty array"),
        ('[1, 2,\n  3,, 4]', "is not valid JSON: Expecting value at line 2 column 5"),
        ("[1, NaN]", "is not valid JSON: NaN is not a JSON value"),
        ("", "is not valid JSON: Expecting value at line 1 column 1"),
    ],
)
def test_bad_json_files_are_refused(tmp_path: Path, content: str, needle: str) -> None:
    f = tmp_path / "p.json"
    f.write_text(content)
    got = read_json_entries(f)
    assert isinstance(got, Problem) and got.field == "each_json"
    assert needle in got.message(), got.message()


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    got = read_lines(tmp_path / "nope.txt")
    assert isinstance(got, Problem) and "cannot be read" in got.message()


# ---- job files -----------------------------------------------------------------------------------


def test_job_files_name_their_entries_file_relative_to_themselves(tmp_path: Path) -> None:
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "in.txt").write_text("x\ny\n")
    (tmp_path / "jobs" / "p.json").write_text('[{"a": 1}]')
    toml = tmp_path / "jobs" / "sweep.toml"
    toml.write_text('[job]\ncommand = "./run.sh"\neach_line = "in.txt"\nstdout = "out/{index}.txt"\n')
    assert load_job_file(toml) == {"command": "./run.sh", "entries": ["x", "y"], "stdout": "out/{index}.txt"}
    kestrel = tmp_path / "jobs" / "sweep.job"
    kestrel.write_text("[job]\ncommand = ./run.sh\neach_json = p.json\n")
    assert load_job_file(kestrel) == {"command": "./run.sh", "entries": ['{"a":1}']}


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('each_line = "in.txt"\nqueue = 5', "each_line: 'in.txt' cannot be given together with queue"),
        ('each_json = "in.txt"\narray = "0-4"', "each_json: 'in.txt' cannot be given together with array"),
        ('each_line = "in.txt"\neach_json = "p.json"', "cannot be given together with each_json"),
        ("each_line = 5", "each_line: 5 must name a file"),
        ('each_line = "nope.txt"', "cannot be read"),
    ],
)
def test_job_file_sweeps_that_cannot_be(tmp_path: Path, text: str, needle: str) -> None:
    (tmp_path / "in.txt").write_text("x\n")
    f = tmp_path / "j.toml"
    f.write_text(f'[job]\ncommand = "x"\n{text}\n')
    got = load_job_file(f)
    assert isinstance(got, Problem) and needle in got.message(), got


# ---- the command line's options --------------------------------------------------------------------


def fields(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"queue": None, "array": None, "requires": (), "cleanup": None, "retries": None,
                            "walltime": None, "env": (), "cwd": None, "name": None, "no_index": False, "cpus": None,
                            "memory": None, "priority": None, "file": None, "command": ("./run.sh",)}
    return job_fields(**{**base, **kw})


def test_each_line_each_json_stdout_and_stderr_options(tmp_path: Path) -> None:
    lines = tmp_path / "in.txt"
    lines.write_text("a\nb\n")
    data = fields(each_line=lines, stdout="out/{index}.txt", stderr="out/{index}.txt")
    assert data == {"command": ["./run.sh"], "entries": ["a", "b"], "stdout": "out/{index}.txt",
                    "stderr": "out/{index}.txt"}
    params = tmp_path / "p.json"
    params.write_text('[{"x": 1}, {"x": 2}]')
    assert fields(each_json=params)["entries"] == ['{"x":1}', '{"x":2}']
    # a job file's count gives way to the command line's sweep, and the other way round
    job = tmp_path / "j.toml"
    job.write_text('[job]\ncommand = "x"\nqueue = 7\n')
    assert "queue" not in fields(file=job, each_line=lines, command=())
    job.write_text('[job]\ncommand = "x"\neach_line = "in.txt"\n')
    assert fields(file=job, queue=3, command=()) == {"command": "x", "queue": 3}


@pytest.mark.parametrize(
    ("kw", "needle"),
    [
        ({"queue": 5}, "--each-line: cannot be given together with --queue: the job has one task per line"),
        ({"array": "0-9"}, "--each-line: cannot be given together with --array"),
        ({"each_json": Path("p.json")}, "--each-line: cannot be given together with --each-json"),
        ({"stdout": "../x/{index}"}, "stdout: '../x/{index}' must stay under the task's directory"),
        ({"stderr": "e/{name}"}, "stderr: 'e/{name}' has an unknown placeholder {name}"),
    ],
)
def test_option_conflicts_and_bad_patterns_are_refused_by_name(tmp_path: Path, kw: dict[str, Any],
                                                               needle: str) -> None:
    lines = tmp_path / "in.txt"
    lines.write_text("a\n")
    with pytest.raises(UserError) as err:
        fields(each_line=lines, **kw)
    assert needle in str(err.value)


def test_a_million_line_file_is_read_and_checked(tmp_path: Path) -> None:
    f = tmp_path / "in.txt"
    with f.open("w") as out:
        out.writelines(f"sample-{i}\n" for i in range(1_000_000))
    data = fields(each_line=f)
    assert len(data["entries"]) == 1_000_000 and data["entries"][-1] == "sample-999999"


def test_entries_given_to_the_spec_builder_directly_are_checked_the_same() -> None:
    got = check_entries(["ok", "\ud800"])
    assert isinstance(got, Problem)
    assert got.message() == "entries.1: '\\ud800' must be Unicode text (it holds a lone surrogate)"
    assert check_entries(["a", "b"]) == Entries.of(["a", "b"])
