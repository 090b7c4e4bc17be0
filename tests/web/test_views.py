"""What the dashboard's pages show, from the queries' answers: table tests of gateways/web/views.py and its filters."""

from __future__ import annotations

import pytest

from tiercel.core.model import After, Counts, JobId, JobSpec, JobState, UserName
from tiercel.core.problems import Problem
from tiercel.core.ranges import IndexRanges
from tiercel.core.reservations import Reservation
from tiercel.gateways.web import views
from tiercel.gateways.web.forms import request_of
from tiercel.gateways.web.pages import Listing, listing
from tiercel.manager.auth import Identity
from tiercel.manager.events import JobSummary
from tiercel.store import WorkflowRow

ALICE = Identity(UserName("alice"), "user")
ADMIN = Identity(UserName("root"), "admin")


def job(**counts: int) -> dict[str, int]:
    base = {"total": 0, "queued": 0, "running": 0, "done": 0, "failed": 0, "cancelled": 0}
    return {**base, **counts}


def test_a_state_bar_has_a_segment_per_state_with_tasks_in_order() -> None:
    segments = views.bar(job(total=10, done=5, failed=1, running=2, queued=2))
    assert [(s.state, s.count, s.x, s.width) for s in segments] == [
        ("done", 5, 0.0, 50.0), ("failed", 1, 50.0, 10.0), ("running", 2, 60.0, 20.0), ("queued", 2, 80.0, 20.0)]
    assert views.bar(job()) == []


@pytest.mark.parametrize(("seconds", "shown"), [(-3, "0s"), (42, "42s"), (119, "119s"), (600, "10m"),
                                                (7200, "2h"), (3 * 86_400, "3d")])
def test_ages_are_read_at_a_glance(seconds: float, shown: str) -> None:
    assert views.age(seconds) == shown


def test_the_rate_counts_settled_tasks_until_the_job_ended() -> None:
    running = {**job(total=10, done=4, failed=1), "submitted": 100.0, "ended": None}
    assert views.rate(running, now=110.0) == 0.5
    ended = {**running, "ended": 105.0}
    assert views.rate(ended, now=1000.0) == 1.0
    assert views.rate({**running, "done": 0, "failed": 0}, now=110.0) is None
    assert views.rate_text(1234.4) == "1,234/s" and views.rate_text(0.5) == "0.5/s" and views.rate_text(None) == ""


def test_throughput_is_tasks_per_second_in_equal_steps() -> None:
    assert views.plot_steps(100.0, 104.0, points=4) == (1.0, 4)
    plot = views.throughput([(0, 1), (1, 2), (3, 1)], 100.0, 1.0, 4)
    assert plot == {"t": [101.0, 102.0, 103.0, 104.0], "rate": [1.0, 2.0, 0.0, 1.0]}
    assert views.throughput([(2, 4), (9, 2)], 0.0, 2.0, 3)["rate"] == [0.0, 0.0, 3.0]  # late ends: the last step
    assert views.throughput([], 0.0, 1.0, 10) == {"t": [], "rate": []}
    assert views.plot_steps(10.0, 10.0) == (0.0, 0)
    step, n = views.plot_steps(0.0, 100_000.0)
    assert n <= 120 and step * n >= 100_000  # however long the job, a bounded number of points covering it


def test_a_listing_says_which_filter_is_wrong() -> None:
    assert listing({}, ALICE) == Listing()
    assert listing({"state": "done", "page": "3", "size": "100"}, ALICE) == Listing("done", "", "", 3, 100)
    cases = {("state", "sleeping"): "is not a job state", ("page", "0"): "must be a page number",
             ("page", "x"): "must be a page number", ("size", "7"): "must be one of 25, 50, 100, 200",
             ("user", "bob"): "only an admin sees other users' jobs"}
    for (name, value), said in cases.items():
        found = listing({name: value}, ALICE)
        assert isinstance(found, Problem) and (found.field, found.value) == (name, value) and said in found.allowed
    assert listing({"user": "bob"}, ADMIN) == Listing(user="bob")


def test_the_submit_form_becomes_a_job_request_as_a_job_file_would() -> None:
    assert request_of({"command": "./run.sh", "queue": " 10 ", "requires": "gpu, bio  x", "walltime": "",
                       "name": ""}) == {"command": "./run.sh", "queue": "10", "requires": ["gpu", "bio", "x"]}


def test_reservations_are_laid_out_on_one_time_line_per_site() -> None:
    r1 = Reservation("a", "slurm", 4, 1000.0, 2000.0, frozenset({"alice"}))
    r2 = Reservation("b", "pool", 2, 1500.0, 3000.0, frozenset({"bob", "alice"}))
    line = views.timeline([r1, r2], now=1000.0, width=1000.0)
    assert [site for site, _ in line["sites"]] == ["pool", "slurm"]
    (_, pool), (_, slurm) = line["sites"]
    assert (slurm[0]["x"], slurm[0]["w"], slurm[0]["active"]) == (0.0, 500.0, True)
    assert (pool[0]["x"], pool[0]["w"], pool[0]["users"]) == (250.0, 750.0, "alice, bob")
    assert line["now_x"] == 0.0


def test_a_workflows_jobs_say_what_they_wait_for_by_name_inside_it_by_id_outside() -> None:
    spec = JobSpec(command=("true",), indexes=IndexRanges.of_size(2),
                   after=(After(JobId(5), "ok"), After(JobId(9), "any")))
    job = JobSummary(JobId(6), UserName("alice"), spec, 0.0, JobState.QUEUED, Counts(total=2, queued=2))
    row = WorkflowRow(1, UserName("alice"), "flow", 0.0, (("prep", JobId(5)), ("next", JobId(6))))
    [shown] = views.workflow_jobs(row, [job])
    assert shown["name"] == "next" and shown["command"] == "true"
    assert [(d["job"], d["label"], d["kind"]) for d in shown["after"]] == [(5, "prep", "ok"), (9, "job 9", "any")]
    listed = views.workflow_row(row, [job], now=30.0)
    assert (listed["state"], listed["age"], listed["counts"]["total"], listed["job_ids"]) == ("queued", "30s", 2, [6])
