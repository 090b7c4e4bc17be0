"""Validation of job requests: every bad input names the field, the value and what is allowed."""

from pathlib import Path

import pytest

from tiercel.core.model import JobSpec
from tiercel.core.problems import Problem
from tiercel.jobfiles import load_job_file
from tiercel.jobs import parse_duration, parse_memory, spec_from_mapping


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


@pytest.mark.parametrize(("text", "seconds"), [("90", 90), ("90s", 90), ("10m", 600), ("1h30m", 5400),
                                               ("2d", 172800), ("01:30:00", 5400), ("05:00", 300), (2.5, 2.5)])
def test_durations(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(("text", "mb"), [(512, 512), ("512M", 512), ("4G", 4096), ("1t", 1024 * 1024)])
def test_memory_sizes(text: str | int, mb: int) -> None:
    assert parse_memory(text) == mb


def test_kestrel_job_file(tmp_path: Path) -> None:
    f = tmp_path / "sweep.job"
    f.write_text("[job]\nqueue = 10000\ncommand = ~/runtask.sh\ncleanup = rm -rf /tmp/sweep\nrequires = bio\n")
    data = load_job_file(f)
    assert isinstance(data, dict)
    spec = spec_from_mapping(data)
    assert isinstance(spec, JobSpec)
    assert spec.size == 10000 and spec.cleanup == "rm -rf /tmp/sweep" and spec.requires == {"bio"}


def test_toml_job_file(tmp_path: Path) -> None:
    f = tmp_path / "job.toml"
    f.write_text('[job]\ncommand = ["python", "sim.py"]\narray = "0-99"\nretries = 2\n')
    data = load_job_file(f)
    assert data == {"command": ["python", "sim.py"], "array": "0-99", "retries": 2}


@pytest.mark.parametrize(
    ("name", "text", "needle"),
    [
        ("a.toml", "[job\ncommand = 1", "is not valid TOML"),
        ("a.job", "queue = 5\n", "not a valid .job file"),
        ("b.job", "[task]\nqueue = 5\n", "must have a [job] section"),
        ("c.job", "[job]\nqueue=1\n[other]\nx=1\n", "unknown sections: other"),
        ("d.toml", '[job]\ncommand="x"\n[extra]\n', "unknown tables or keys beside [job]: extra"),
    ],
)
def test_malformed_job_files(tmp_path: Path, name: str, text: str, needle: str) -> None:
    f = tmp_path / name
    f.write_text(text)
    problem = load_job_file(f)
    assert isinstance(problem, Problem) and needle in problem.message()


def test_missing_job_file(tmp_path: Path) -> None:
    problem = load_job_file(tmp_path / "nope.toml")
    assert isinstance(problem, Problem) and "cannot be read" in problem.message()
