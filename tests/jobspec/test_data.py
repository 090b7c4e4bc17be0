"""A job's inputs and outputs in Gfarm: what is accepted, and what is refused naming field, value and rule."""

from __future__ import annotations

import pytest

from tiercel.core.data import path_of, per_task
from tiercel.core.model import JobSpec
from tiercel.core.problems import Problem
from tiercel.jobspec.request import spec_from_mapping
from tiercel.store.specs import spec_from_row, spec_to_row
from tiercel.wire.codec import spec_from_wire, spec_to_wire


def test_inputs_and_outputs_are_kept_with_the_job() -> None:
    spec = spec_from_mapping({"command": "./align.sh", "queue": 300,
                              "inputs": ["gfarm:///data/sample_{index:04}.bam", "gfarm:///ref/genome.fa"],
                              "outputs": ["gfarm:///results/{index}.out"], "on_missing_input": "refuse"})
    assert isinstance(spec, JobSpec)
    assert spec.inputs == ("gfarm:///data/sample_{index:04}.bam", "gfarm:///ref/genome.fa")
    assert spec.outputs == ("gfarm:///results/{index}.out",)
    assert spec_from_row(spec_to_row(spec)) == spec
    assert spec_from_wire(spec_to_wire(spec)).inputs == spec.inputs


def test_a_job_without_files_is_stored_as_before() -> None:
    spec = spec_from_mapping({"command": "true"})
    assert isinstance(spec, JobSpec)
    assert "inputs" not in spec_to_row(spec)


@pytest.mark.parametrize(("url", "job", "index", "path"), [
    ("gfarm:///data/sample_{index}.bam", 7, 42, "/data/sample_42.bam"),
    ("gfarm:///data/sample_{index:04}.bam", 7, 42, "/data/sample_0042.bam"),
    ("gfarm:///j{job}/x_{index}", 7, 3, "/j7/x_3"),
    ("gfarm:///ref/genome.fa", 7, 3, "/ref/genome.fa"),
])
def test_a_pattern_names_one_file_per_task(url: str, job: int, index: int, path: str) -> None:
    assert path_of(url, job, index) == path
    assert per_task(url) == ("{index" in url)


@pytest.mark.parametrize(("fields", "field", "needle"), [
    ({"inputs": ["http://host/x.bam"]}, "inputs.0", "has the scheme 'http'; the file systems Tiercel places data "
                                                    "for are: gfarm"),
    ({"inputs": ["/data/x.bam"]}, "inputs.0", "must be a URL such as gfarm:///"),
    ({"inputs": ["gfarm://meta:601/x"]}, "inputs.0", "names the metadata server 'meta:601'"),
    ({"inputs": ["gfarm:///data/"]}, "inputs.0", "must name a file, not a directory"),
    ({"inputs": ["gfarm:///data/../etc/x"]}, "inputs.0", "without . or .. parts"),
    ({"inputs": ["gfarm:///d/{sample}"]}, "inputs.0", "unknown placeholder {sample}"),
    ({"inputs": ["gfarm:///d/{index:x}"]}, "inputs.0", "written wrong"),
    ({"inputs": ["gfarm:///a", "gfarm:///a"]}, "inputs.1", "is given twice"),
    ({"outputs": ["gfarm:///results/all.out"]}, "outputs.0", "must hold {index}"),
    ({"on_missing_input": "skip"}, "on_missing_input", "must be fail"),
    ({"inputs": ["gfarm:///x\n"]}, "inputs.0", "control characters"),
])
def test_bad_files_are_refused_at_submit(fields: dict[str, object], field: str, needle: str) -> None:
    problem = spec_from_mapping({"command": "true", "queue": 3, **fields})
    assert isinstance(problem, Problem)
    assert problem.field == field, problem.message()
    assert needle in problem.message()


def test_one_task_may_write_a_file_without_index() -> None:
    spec = spec_from_mapping({"command": "true", "outputs": ["gfarm:///results/all.out"]})
    assert isinstance(spec, JobSpec)
