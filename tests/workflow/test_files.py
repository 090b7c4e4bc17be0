"""Workflow files and their order: variables, sweeps relative to the file, cycles, bad keys by line."""

from __future__ import annotations

from pathlib import Path

import pytest

from tiercel.cli.workflowfile import WorkflowFileError, load_workflow
from tiercel.core.model import JobSpec
from tiercel.core.problems import Problem
from tiercel.core.ranges import IndexRanges
from tiercel.manager.workflows import Planned, in_order

FLOW = '''
[workflow]
name = "align"

[vars]
data = "/data/run1"

[jobs.merge]
command = "./merge.sh {data} {index}"
after = ["sweep"]

[jobs.sweep]
command = ["./align.sh", "{data}"]
each_line = "samples.txt"
after = ["prepare", 7]
retries = 2

[jobs.prepare]
command = "./prepare.sh {data}"
env = { OUT = "{data}/out" }
'''


def test_a_workflow_file_becomes_one_request_with_variables_and_entries(tmp_path: Path) -> None:
    (tmp_path / "samples.txt").write_text("a.bam\nb.bam\n")
    path = tmp_path / "flow.toml"
    path.write_text(FLOW)
    request = load_workflow(path, {"data": "/data/run2"})
    jobs = {j["name"]: j for j in request["jobs"]}
    assert request["name"] == "align" and list(jobs) == ["merge", "sweep", "prepare"]
    assert jobs["merge"]["command"] == "./merge.sh /data/run2 {index}"  # an unknown name is left as it is
    assert jobs["sweep"]["command"] == ["./align.sh", "/data/run2"] and jobs["sweep"]["entries"] == ["a.bam", "b.bam"]
    assert jobs["sweep"]["after"] == ["prepare", 7] and jobs["prepare"]["env"] == {"OUT": "/data/run2/out"}


@pytest.mark.parametrize(("text", "words"), [
    ('[jobs.a]\ncommand = "x"\n[extra]\nk = 1\n', "line 3: extra: '[...]' is not a table of a workflow file"),
    ('[workflow]\nname = "w"\n', "jobs: '(none)' must hold at least one [jobs.NAME] table"),
    ('[jobs.a]\nname = "b"\ncommand = "x"\n', "line 2: jobs.a.name: 'b' is the table's own name"),
    ('[jobs.a]\ncommand = "x"\nafter = "b"\n', "line 3: jobs.a.after: 'b' must be a list"),
    ('[jobs.a]\ncommand = "x"\neach_line = "missing.txt"\n', "line 3: jobs.a.each_line:"),
    ('[jobs.a\ncommand = "x"\n', "is not valid TOML"),
])
def test_a_bad_workflow_file_names_the_file_the_line_and_the_key(tmp_path: Path, text: str, words: str) -> None:
    path = tmp_path / "flow.toml"
    path.write_text(text)
    with pytest.raises(WorkflowFileError) as caught:
        load_workflow(path)
    assert words in str(caught.value) and str(path) in str(caught.value)


def job(name: str, *after: str) -> Planned:
    return Planned(name, JobSpec(("true",), IndexRanges.of_size(1)), tuple((a, "ok") for a in after))


def test_jobs_go_in_an_order_where_each_comes_after_those_it_waits_for() -> None:
    ordered = in_order([job("merge", "sweep"), job("sweep", "prep"), job("prep"), job("other")])
    assert not isinstance(ordered, Problem)
    assert [j.name for j in ordered] == ["prep", "sweep", "merge", "other"]


@pytest.mark.parametrize(("jobs", "field", "words"), [
    ([job("a", "b"), job("b", "c"), job("c", "a")], "jobs.a.after", "'a -> b -> c -> a' is a cycle"),
    ([job("a", "a")], "jobs.a.after", "'a -> a' is a cycle"),
    ([job("a", "nope")], "jobs.a.after", "'nope' names no job of the workflow (its jobs: a)"),
    ([job("a"), job("a")], "jobs.a", "is the name of two jobs"),
    ([], "jobs", "must hold at least one job"),
])
def test_cycles_unknown_names_and_twins_are_refused(jobs: list[Planned], field: str, words: str) -> None:
    problem = in_order(jobs)
    assert isinstance(problem, Problem) and problem.field == field and words in problem.message()
