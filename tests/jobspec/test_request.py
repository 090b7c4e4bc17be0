"""The job request model as the REST API reads it (strict JSON) and as job files and chat read it
(text): what it refuses, and that every refusal is one short line naming field and value."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from tiercel.core.model import JobSpec
from tiercel.core.problems import Problem
from tiercel.jobspec.request import JobRequest, problem_from_validation, request_json, spec_from_mapping


@pytest.mark.parametrize(
    ("data", "field", "needle"),
    [
        ({"command": "x", "queue": 0}, "queue", "must be between 1 and"),
        ({"command": "x", "queue": -5}, "queue", "-5 must be between 1"),
        ({"command": "x", "queue": 10**12}, "queue", "1000000000000 must be between"),
        ({"command": "x", "queue": "many"}, "queue", "valid integer"),
        ({"command": "x", "array": "9-3"}, "array", "ends before it starts"),
        ({"command": "x", "array": "0-10", "queue": 5}, "queue", "cannot be given together with array"),
        ({"command": "x", "colour": "red"}, "colour", "is not a known field"),
        ({"queue": 5}, "command", "is required"),
        ({"command": ""}, "command", "must not be empty"),
        ({"command": []}, "command", "must name a program"),
        ({"command": "x", "walltime": "soon"}, "walltime", "must be a duration"),
        ({"command": "x", "walltime": -1}, "walltime", "more than 0 seconds"),
        ({"command": "x", "memory": "lots"}, "memory", "must be a size"),
        ({"command": "x", "retries": 1000}, "retries", "less than or equal to 100"),
        ({"command": "x", "requires": ["gpu", "bad tag!"]}, "requires", "must be a tag"),
        ({"command": "x", "env": {"A=B": "c"}}, "env", "without '='"),
        ({"command": "x", "cpus": 0}, "cpus", "greater than or equal to 1"),
    ],
)
def test_bad_requests_are_explained(data: dict[str, object], field: str, needle: str) -> None:
    problem = spec_from_mapping(data)
    assert isinstance(problem, Problem), problem
    assert problem.field == field
    assert needle in problem.message()
    assert problem.message().startswith(field + ":")


def test_kestrel_message_fields_make_a_shell_job_of_n_tasks() -> None:
    spec = spec_from_mapping({"command": "~/runtask.sh", "queue": 10000})
    assert isinstance(spec, JobSpec)
    assert spec.size == 10000 and spec.shell and spec.append_index


def test_argv_command_is_not_run_through_a_shell() -> None:
    spec = spec_from_mapping({"command": ["python", "-c", "print(1)"], "array": "0-9,20-29",
                              "requires": "gpu,bio", "walltime": "1h30m", "memory": "4G", "env": {"A": "1"}})
    assert isinstance(spec, JobSpec)
    assert not spec.shell and spec.command == ("python", "-c", "print(1)")
    assert spec.size == 20 and spec.requires == {"gpu", "bio"}
    assert spec.walltime == 5400 and spec.memory_mb == 4096 and spec.env == (("A", "1"),)


def strict_problem(data: dict[str, Any]) -> Problem | None:
    """What the REST API says of a JSON body: None when the model takes it."""
    try:
        JobRequest.model_validate(data)
    except ValidationError as exc:
        return problem_from_validation(exc)
    return None


@pytest.mark.parametrize(("field", "value"), [
    ("queue", "5"), ("queue", True), ("retries", "2"), ("cpus", 2.0), ("priority", "1"),
    ("shell", "yes"), ("shell", 1), ("append_index", 0), ("memory", True), ("walltime", True),
])
def test_json_numbers_and_booleans_are_strict(field: str, value: object) -> None:
    problem = strict_problem({"command": "x", field: value})
    assert problem is not None and problem.field == field
    assert problem.message().startswith(f"{field}: {value!r} is not allowed: should be a valid")


def test_text_sources_still_read_numbers_written_as_text() -> None:
    spec = spec_from_mapping({"command": "~/runtask.sh", "queue": "10", "retries": "2", "cpus": "2"})
    assert isinstance(spec, JobSpec) and spec.size == 10 and spec.retries == 2 and spec.cpus == 2


def test_a_client_sends_text_numbers_as_json_numbers() -> None:
    sent = request_json({"command": "x", "queue": "10", "requires": "gpu,bio", "walltime": "10m"})
    assert sent == {"command": "x", "queue": 10, "requires": ["gpu", "bio"], "walltime": "10m"}
    assert strict_problem(sent) is None
    assert request_json({"command": "x", "queue": "many"}) == {"command": "x", "queue": "many"}  # the server says why


@pytest.mark.parametrize(("data", "field", "needle"), [
    ({"cleanup": "rm x\0"}, "cleanup", "must not contain NUL"),
    ({"name": "a\0"}, "name", "must not contain control characters"),
    ({"name": "a\nb"}, "name", "must not contain control characters"),
    ({"cwd": "/tmp\t"}, "cwd", "must not contain control characters"),
    ({"queue_name": "q\x1b"}, "queue_name", "must not contain control characters"),
    ({"reservation": "r\x7f"}, "reservation", "must not contain control characters"),
    ({"site": "s\x85"}, "site", "must not contain control characters"),
    ({"array": "0-9\n"}, "array", "must not contain control characters"),
    ({"walltime": "10m\r"}, "walltime", "must not contain control characters"),
    ({"memory": "4G\0"}, "memory", "must not contain control characters"),
    ({"requires": ["gpu", "bio\0"]}, "requires.1", "must not contain control characters"),
    ({"env": {"A\nB": "x"}}, "env", "must not contain control characters"),
    ({"env": {"A": "x\0"}}, "env.A", "must not contain NUL"),
    ({"command": ["echo", "a\0"]}, "command", "must not contain NUL"),
    ({"name": "\ud800"}, "name", "lone surrogate"),
])
def test_nul_and_control_characters_are_refused_where_no_one_means_them(
        data: dict[str, Any], field: str, needle: str) -> None:
    for problem in (strict_problem({"command": "x", **data}), spec_from_mapping({"command": "x", **data})):
        assert isinstance(problem, Problem), problem
        assert problem.field == field and needle in problem.message()


def test_line_breaks_and_tabs_stay_allowed_in_what_a_shell_runs() -> None:
    spec = spec_from_mapping({"command": "cd /tmp &&\n\t./run.sh", "cleanup": "rm a\nrm b",
                              "env": {"SCRIPT": "line 1\nline 2\t."}})
    assert isinstance(spec, JobSpec) and spec.cleanup == "rm a\nrm b"


@pytest.mark.parametrize("command", ["x" * 70_000, "é" * 33_000, ["echo", *["y" * 1000] * 70]])
def test_a_command_over_64_kib_is_named_with_its_size_in_bytes(command: str | list[str]) -> None:
    problem = strict_problem({"command": command})
    assert problem is not None and problem.field == "command"
    message = problem.message()
    assert "must be at most 65,536 bytes" in message and len(message) < 200


def test_a_command_of_the_wrong_type_says_what_a_command_is() -> None:
    problem = strict_problem({"command": 5})
    assert problem is not None and problem.field == "command"
    assert "a string" in problem.message() and "a list of strings" in problem.message()


@pytest.mark.parametrize("data", [
    {"command": "true", "name": "n" * 1_000_000},
    {"command": "true", "env": {"A": "v" * 1_000_000}},
    {"command": "true", "walltime": ["w" * 10_000] * 100},
    {"command": "true", "colour": {"deep": [[[[[[["z" * 10_000]]]]]]]}},
    {"command": "true", "requires": [["x"] * 10_000]},
])
def test_an_error_shows_only_a_short_prefix_of_the_value(data: dict[str, Any]) -> None:
    problem = strict_problem(data)
    assert problem is not None
    # the value is cut short; the list of known fields is given whole
    assert len(problem.message()) < 400 and "\n" not in problem.message()
    assert "[" not in problem.field and "constrained" not in problem.field  # no union branch names


@pytest.mark.parametrize(("data", "field"), [({"walltime": "²:1"}, "walltime"), ({"array": "²"}, "array")])
def test_digits_int_cannot_read_are_refused_not_a_crash(data: dict[str, Any], field: str) -> None:
    problem = spec_from_mapping({"command": "x", **data})
    assert isinstance(problem, Problem) and problem.field == field


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
                     max_leaves=12)


@settings(max_examples=300, derandomize=True, deadline=None)
@given(st.dictionaries(st.sampled_from([*JobRequest.model_fields, "colour"]), _json, max_size=5))
def test_any_request_is_a_spec_or_one_short_line(data: dict[str, Any]) -> None:
    for result in (spec_from_mapping(data), strict_problem(data)):
        if isinstance(result, Problem):
            message = result.message()
            assert "\n" not in message and len(message) < 400, message
