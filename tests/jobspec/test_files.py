"""Job files: TOML with a [job] table and Kestrel .job files, and every way they can be malformed."""

from pathlib import Path

import pytest

from tiercel.core.model import JobSpec
from tiercel.core.problems import Problem
from tiercel.jobspec.files import load_job_file
from tiercel.jobspec.request import spec_from_mapping


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
