"""Grid Engine adapter: builders, and parsers over output recorded from Son of Grid Engine
8.1.9 on a single host (scripts/services/sge_up.sh), submitted with this adapter's own
invocations; plus the contract test against that real SGE when it is running."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.batch import sge  # noqa: F401  (fixture: started here, a failure in CI)
from tests.sites import contract
from tiercel.sites.adapters.base import ArrayRequest, NativeState, ParseError
from tiercel.sites.adapters.sge import GridEngine

G = GridEngine()
P, R, D, F, C = NativeState.PENDING, NativeState.RUNNING, NativeState.DONE, NativeState.FAILED, NativeState.CANCELLED


def test_submit_script_with_every_option() -> None:
    req = ArrayRequest(
        name="sweep.1", count=10, script="./run.sh\n", workdir="/scratch/t", walltime=5400.5, cpus=4,
        memory_mb=4097, queue="short.q", account="proj7", throttle=3, directives=("-l gpu=1",),
    )
    inv = G.submit(req)
    assert inv.argv == ("qsub", "-terse")
    assert inv.files == ()
    assert inv.stdin == (
        "#!/bin/sh\n"
        "#$ -N sweep.1\n"
        "#$ -t 1-10\n"
        "#$ -o /scratch/t/\n"
        "#$ -e /scratch/t/\n"
        "#$ -j n\n"
        "#$ -S /bin/sh\n"
        "#$ -tc 3\n"
        "#$ -l h_rt=1:30:01\n"
        "#$ -pe smp 4\n"
        "#$ -l h_vmem=1025M\n"
        "#$ -q short.q\n"
        "#$ -A proj7\n"
        "#$ -l gpu=1\n"
        "TIERCEL_ELEMENT=$SGE_TASK_ID; export TIERCEL_ELEMENT\n"
        "./run.sh\n"
    )


def test_a_sites_own_parallel_environment_replaces_smp() -> None:
    inv = G.submit(ArrayRequest(name="a", count=2, script="", workdir="/w", cpus=8, directives=("-pe mpi 8",)))
    lines = (inv.stdin or "").splitlines()
    assert "#$ -pe mpi 8" in lines
    assert not any("smp" in line for line in lines)


def test_submit_script_minimal() -> None:
    inv = G.submit(ArrayRequest(name="a", count=1, script="true", workdir="/w"))
    assert (inv.stdin or "").splitlines() == [
        "#!/bin/sh", "#$ -N a", "#$ -t 1-1", "#$ -o /w/", "#$ -e /w/", "#$ -j n", "#$ -S /bin/sh",
        "TIERCEL_ELEMENT=$SGE_TASK_ID; export TIERCEL_ELEMENT", "true",
    ]


@pytest.mark.parametrize(
    ("seconds", "hms"), [(0.2, "0:00:01"), (59.5, "0:01:00"), (3600, "1:00:00"), (90061, "25:01:01")]
)
def test_walltime_is_h_mm_ss_rounded_up(seconds: float, hms: str) -> None:
    inv = G.submit(ArrayRequest(name="a", count=1, script="", workdir="/w", walltime=seconds))
    assert f"#$ -l h_rt={hms}\n" in (inv.stdin or "")


@pytest.mark.parametrize(
    ("out", "native_id"),
    [
        ("6.1-3:1\n", "6"),  # recorded: qsub -terse of an array
        ("10.1-1:1\n", "10"),  # recorded: an array of one
        ("3\n", "3"),  # recorded: a plain job
        ('Your job-array 7.1-6:1 ("rec-b") has been submitted\n', "7"),
        ('Your job 3 ("long") has been submitted\n', "3"),
    ],
)
def test_parse_submit(out: str, native_id: str) -> None:
    assert G.parse_submit(out) == native_id


@pytest.mark.parametrize("out", ["", "Unable to run job: Error reading answer list from qmaster\nExiting.\n"])
def test_parse_submit_refuses_other_output(out: str) -> None:
    with pytest.raises(ParseError) as e:
        G.parse_submit(out)
    assert e.value.text == out


def test_status_lists_the_users_jobs_in_xml_one_task_per_row() -> None:
    assert G.status(["6", "7"]).argv == ("qstat", "-xml", "-g", "d")


# Recorded: an array of 3 (element 2 exits 3) just after submission: running and transferring.
JUST_SUBMITTED = """<?xml version='1.0'?>
<job_info  xmlns:xsd="http://arc.liv.ac.uk/repos/darcs/sge/source/dist/util/resources/schemas/qstat/qstat.xsd">
  <queue_info>
    <job_list state="running">
      <JB_job_number>6</JB_job_number>
      <JAT_prio>0.50000</JAT_prio>
      <JB_name>rec-a</JB_name>
      <JB_owner>root</JB_owner>
      <state>r</state>
      <JAT_start_time>2026-11-21T07:58:07</JAT_start_time>
      <queue_name>all.q@vm</queue_name>
      <slots>1</slots>
      <tasks>1</tasks>
    </job_list>
    <job_list state="running">
      <JB_job_number>6</JB_job_number>
      <JAT_prio>0.50000</JAT_prio>
      <JB_name>rec-a</JB_name>
      <JB_owner>root</JB_owner>
      <state>t</state>
      <JAT_start_time>2026-11-21T07:58:07</JAT_start_time>
      <queue_name>all.q@vm</queue_name>
      <slots>1</slots>
      <tasks>2</tasks>
    </job_list>
    <job_list state="running">
      <JB_job_number>6</JB_job_number>
      <JAT_prio>0.50000</JAT_prio>
      <JB_name>rec-a</JB_name>
      <JB_owner>root</JB_owner>
      <state>t</state>
      <JAT_start_time>2026-11-21T07:58:07</JAT_start_time>
      <queue_name>all.q@vm</queue_name>
      <slots>1</slots>
      <tasks>3</tasks>
    </job_list>
  </queue_info>
  <job_info>
  </job_info>
</job_info>
"""

# Recorded: after it ended every task has vanished; this is all qstat prints.
NOTHING_LEFT = """<?xml version='1.0'?>
<job_info  xmlns:xsd="http://arc.liv.ac.uk/repos/darcs/sge/source/dist/util/resources/schemas/qstat/qstat.xsd">
  <queue_info>
  </queue_info>
  <job_info>
  </job_info>
</job_info>
"""

# Recorded without -g d: job 7 (6 tasks, -tc 2) runs 1 and 2, waits with 3-6 as one range;
# job 8 cannot start (its -o directory does not exist): Eqw, tasks "1,2"; job 9 was
# submitted with -h: hqw.
COMPACT = """<?xml version='1.0'?>
<job_info  xmlns:xsd="http://arc.liv.ac.uk/repos/darcs/sge/source/dist/util/resources/schemas/qstat/qstat.xsd">
  <queue_info>
    <job_list state="running">
      <JB_job_number>7</JB_job_number>
      <JAT_prio>0.50000</JAT_prio>
      <JB_name>rec-b</JB_name>
      <JB_owner>root</JB_owner>
      <state>r</state>
      <JAT_start_time>2026-11-21T07:58:20</JAT_start_time>
      <queue_name>all.q@vm</queue_name>
      <slots>1</slots>
      <tasks>1</tasks>
    </job_list>
    <job_list state="running">
      <JB_job_number>7</JB_job_number>
      <JAT_prio>0.50000</JAT_prio>
      <JB_name>rec-b</JB_name>
      <JB_owner>root</JB_owner>
      <state>r</state>
      <JAT_start_time>2026-11-21T07:58:20</JAT_start_time>
      <queue_name>all.q@vm</queue_name>
      <slots>1</slots>
      <tasks>2</tasks>
    </job_list>
  </queue_info>
  <job_info>
    <job_list state="pending">
      <JB_job_number>8</JB_job_number>
      <JAT_prio>0.25000</JAT_prio>
      <JB_name>rec-e</JB_name>
      <JB_owner>root</JB_owner>
      <state>Eqw</state>
      <JB_submission_time>2026-11-21T07:58:21</JB_submission_time>
      <queue_name></queue_name>
      <slots>1</slots>
      <tasks>1,2</tasks>
    </job_list>
    <job_list state="pending">
      <JB_job_number>7</JB_job_number>
      <JAT_prio>0.00000</JAT_prio>
      <JB_name>rec-b</JB_name>
      <JB_owner>root</JB_owner>
      <state>qw</state>
      <JB_submission_time>2026-11-21T07:58:20</JB_submission_time>
      <queue_name></queue_name>
      <slots>1</slots>
      <tasks>3-6:1</tasks>
    </job_list>
    <job_list state="pending">
      <JB_job_number>9</JB_job_number>
      <JAT_prio>0.00000</JAT_prio>
      <JB_name>rec-h</JB_name>
      <JB_owner>root</JB_owner>
      <state>hqw</state>
      <JB_submission_time>2026-11-21T07:58:21</JB_submission_time>
      <queue_name></queue_name>
      <slots>1</slots>
      <tasks>1-4:1</tasks>
    </job_list>
  </job_info>
</job_info>
"""

# Recorded with -g d after `qdel 7.1 7.5`: the running task 1 shows dr, the pending 5 is gone.
DELETING = """<?xml version='1.0'?>
<job_info  xmlns:xsd="http://arc.liv.ac.uk/repos/darcs/sge/source/dist/util/resources/schemas/qstat/qstat.xsd">
  <queue_info>
    <job_list state="running">
      <JB_job_number>7</JB_job_number>
      <JAT_prio>0.50000</JAT_prio>
      <JB_name>rec-b</JB_name>
      <JB_owner>root</JB_owner>
      <state>dr</state>
      <JAT_start_time>2026-11-21T07:58:20</JAT_start_time>
      <queue_name>all.q@vm</queue_name>
      <slots>1</slots>
      <tasks>1</tasks>
    </job_list>
    <job_list state="running">
      <JB_job_number>7</JB_job_number>
      <JAT_prio>0.50000</JAT_prio>
      <JB_name>rec-b</JB_name>
      <JB_owner>root</JB_owner>
      <state>r</state>
      <JAT_start_time>2026-11-21T07:58:20</JAT_start_time>
      <queue_name>all.q@vm</queue_name>
      <slots>1</slots>
      <tasks>2</tasks>
    </job_list>
  </queue_info>
  <job_info>
    <job_list state="pending">
      <JB_job_number>8</JB_job_number>
      <JAT_prio>0.25000</JAT_prio>
      <JB_name>rec-e</JB_name>
      <JB_owner>root</JB_owner>
      <state>Eqw</state>
      <JB_submission_time>2026-11-21T07:58:21</JB_submission_time>
      <queue_name></queue_name>
      <slots>1</slots>
      <tasks>1</tasks>
    </job_list>
    <job_list state="pending">
      <JB_job_number>8</JB_job_number>
      <JAT_prio>0.25000</JAT_prio>
      <JB_name>rec-e</JB_name>
      <JB_owner>root</JB_owner>
      <state>Eqw</state>
      <JB_submission_time>2026-11-21T07:58:21</JB_submission_time>
      <queue_name></queue_name>
      <slots>1</slots>
      <tasks>2</tasks>
    </job_list>
    <job_list state="pending">
      <JB_job_number>7</JB_job_number>
      <JAT_prio>0.00000</JAT_prio>
      <JB_name>rec-b</JB_name>
      <JB_owner>root</JB_owner>
      <state>qw</state>
      <JB_submission_time>2026-11-21T07:58:20</JB_submission_time>
      <queue_name></queue_name>
      <slots>1</slots>
      <tasks>3</tasks>
    </job_list>
    <job_list state="pending">
      <JB_job_number>7</JB_job_number>
      <JAT_prio>0.00000</JAT_prio>
      <JB_name>rec-b</JB_name>
      <JB_owner>root</JB_owner>
      <state>qw</state>
      <JB_submission_time>2026-11-21T07:58:20</JB_submission_time>
      <queue_name></queue_name>
      <slots>1</slots>
      <tasks>4</tasks>
    </job_list>
    <job_list state="pending">
      <JB_job_number>7</JB_job_number>
      <JAT_prio>0.00000</JAT_prio>
      <JB_name>rec-b</JB_name>
      <JB_owner>root</JB_owner>
      <state>qw</state>
      <JB_submission_time>2026-11-21T07:58:20</JB_submission_time>
      <queue_name></queue_name>
      <slots>1</slots>
      <tasks>6</tasks>
    </job_list>
    <job_list state="pending">
      <JB_job_number>9</JB_job_number>
      <JAT_prio>0.00000</JAT_prio>
      <JB_name>rec-h</JB_name>
      <JB_owner>root</JB_owner>
      <state>hqw</state>
      <JB_submission_time>2026-11-21T07:58:21</JB_submission_time>
      <queue_name></queue_name>
      <slots>1</slots>
      <tasks>1</tasks>
    </job_list>
    <job_list state="pending">
      <JB_job_number>9</JB_job_number>
      <JAT_prio>0.00000</JAT_prio>
      <JB_name>rec-h</JB_name>
      <JB_owner>root</JB_owner>
      <state>hqw</state>
      <JB_submission_time>2026-11-21T07:58:21</JB_submission_time>
      <queue_name></queue_name>
      <slots>1</slots>
      <tasks>2</tasks>
    </job_list>
    <job_list state="pending">
      <JB_job_number>9</JB_job_number>
      <JAT_prio>0.00000</JAT_prio>
      <JB_name>rec-h</JB_name>
      <JB_owner>root</JB_owner>
      <state>hqw</state>
      <JB_submission_time>2026-11-21T07:58:21</JB_submission_time>
      <queue_name></queue_name>
      <slots>1</slots>
      <tasks>3</tasks>
    </job_list>
    <job_list state="pending">
      <JB_job_number>9</JB_job_number>
      <JAT_prio>0.00000</JAT_prio>
      <JB_name>rec-h</JB_name>
      <JB_owner>root</JB_owner>
      <state>hqw</state>
      <JB_submission_time>2026-11-21T07:58:21</JB_submission_time>
      <queue_name></queue_name>
      <slots>1</slots>
      <tasks>4</tasks>
    </job_list>
  </job_info>
</job_info>
"""


def states(out: str) -> dict[tuple[str, int | None], NativeState]:
    return {(r.native_id, r.element): r.state for r in G.parse_status(out)}


def test_parse_recorded_just_submitted() -> None:
    assert states(JUST_SUBMITTED) == {("6", 1): R, ("6", 2): R, ("6", 3): R}
    assert [r.reason for r in G.parse_status(JUST_SUBMITTED)] == ["r", "t", "t"]


def test_parse_recorded_nothing_left() -> None:
    assert G.parse_status(NOTHING_LEFT) == []


def test_parse_recorded_compact_ranges_are_expanded() -> None:
    assert states(COMPACT) == {
        ("7", 1): R, ("7", 2): R, ("7", 3): P, ("7", 4): P, ("7", 5): P, ("7", 6): P,
        ("8", 1): F, ("8", 2): F,
        ("9", 1): P, ("9", 2): P, ("9", 3): P, ("9", 4): P,
    }


def test_parse_recorded_deletion() -> None:
    assert states(DELETING) == {
        ("7", 1): C, ("7", 2): R, ("7", 3): P, ("7", 4): P, ("7", 6): P,
        ("8", 1): F, ("8", 2): F,
        ("9", 1): P, ("9", 2): P, ("9", 3): P, ("9", 4): P,
    }
    (row,) = [r for r in G.parse_status(DELETING) if r.element == 1 and r.native_id == "7"]
    assert row.reason == "dr"


@pytest.mark.parametrize(
    ("code", "state"),
    [
        ("qw", P), ("hqw", P), ("hRwq", P), ("Rq", P), ("w", P),
        ("r", R), ("t", R), ("Rr", R), ("Rt", R), ("s", R), ("ts", R), ("S", R), ("tS", R), ("T", R), ("tT", R),
        ("hr", R),
        ("Eqw", F), ("Ehqw", F),
        ("dr", C), ("dt", C), ("dRr", C), ("dqw", C),
        ("z", D),
        ("x", P),  # unknown letter: pending, code kept
    ],
)
def test_state_letters(code: str, state: NativeState) -> None:
    out = JUST_SUBMITTED.replace("<state>r</state>", f"<state>{code}</state>", 1)
    row = G.parse_status(out)[0]
    assert (row.element, row.state, row.reason) == (1, state, code)


def test_a_job_without_tasks_is_a_whole_array_row() -> None:
    out = JUST_SUBMITTED.replace("<tasks>1</tasks>", "", 1)
    assert G.parse_status(out)[0].element is None


@pytest.mark.parametrize(
    "out",
    [
        "",
        "error: commlib error: got select error (Connection refused)\n",
        "<?xml version='1.0'?>\n<job_info><queue_info>",
        "<?xml version='1.0'?>\n<queue_list/>",
        "<?xml version='1.0'?>\n<!DOCTYPE job_info [<!ENTITY x \"y\">]>\n<job_info>&x;</job_info>",
        JUST_SUBMITTED.replace("<JB_job_number>6</JB_job_number>", "", 1),
        JUST_SUBMITTED.replace("<state>r</state>", "<state>r r</state>", 1),
        JUST_SUBMITTED.replace("<tasks>1</tasks>", "<tasks>1-x</tasks>", 1),
    ],
)
def test_malformed_qstat_output(out: str) -> None:
    with pytest.raises(ParseError) as e:
        G.parse_status(out)
    assert e.value.text == out


@pytest.mark.parametrize(
    ("elements", "argv"),
    [(None, ("qdel", "7")), ([1, 5], ("qdel", "7.1", "7.5")), ([9, 3, 4, 5], ("qdel", "7.3-5", "7.9"))],
)
def test_cancel(elements: list[int] | None, argv: tuple[str, ...]) -> None:
    assert G.cancel("7", elements).argv == argv


@pytest.mark.integration
@pytest.mark.usefixtures("sge")
def test_real_sge_runs_every_element_once(tmp_path: Path) -> None:
    contract.run_array(G, tmp_path, timeout=contract.SHARED_TIMEOUT)


@pytest.mark.integration
@pytest.mark.usefixtures("sge")
def test_real_sge_cancels(tmp_path: Path) -> None:
    rows = contract.cancel_array(G, tmp_path, timeout=contract.SHARED_TIMEOUT)
    assert all(r.state is C for r in rows.values()), rows  # deleted tasks show d, then vanish
