"""Parsing --after: kinds, bad items, duplicates, one corr; stored and read back."""

import pytest

from tiercel.core.model import After, JobId
from tiercel.core.problems import Problem
from tiercel.jobspec.request import parse_after, spec_from_mapping
from tiercel.store.specs import spec_from_row, spec_to_row


def test_after_items_with_and_without_kinds() -> None:
    assert parse_after(["12", "13:any", 14, "15:notok", "16:corr"]) == (
        After(JobId(12)), After(JobId(13), "any"), After(JobId(14)), After(JobId(15), "notok"),
        After(JobId(16), "corr"))


@pytest.mark.parametrize(("items", "words"), [
    (["12:soon"], "has the kind 'soon'; a dependency is one of ok, any, notok, corr"),
    (["x"], "must name a job"),
    (["0"], "must name a job"),
    (["12", "12:any"], "names job 12 twice"),
    (["1:corr", "2:corr"], "may link task by task (corr) to one job only"),
    ([True], "must name a job"),
])
def test_bad_after_items_are_named(items: list[object], words: str) -> None:
    problem = parse_after(items)  # type: ignore[arg-type]
    assert isinstance(problem, Problem) and problem.field == "after" and words in problem.message()


def test_dependencies_survive_the_store_and_a_bad_failure_mode_is_refused() -> None:
    spec = spec_from_mapping({"command": ["true"], "after": ["3", "4:corr"], "queue": 2,
                              "on_dependency_failure": "wait"})
    assert not isinstance(spec, Problem)
    again = spec_from_row(spec_to_row(spec))
    assert again.after == spec.after and again.on_dependency_failure == "wait"
    bad = spec_from_mapping({"command": ["true"], "on_dependency_failure": "retry"})
    assert isinstance(bad, Problem) and bad.field == "on_dependency_failure"
