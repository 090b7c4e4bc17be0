"""Slurm adapter: builders, and parsers over output recorded from Slurm 22.05.8 on a
single-node cluster (scripts/services/slurm_up.sh), submitted with this adapter's own
invocations; plus the contract test against that real Slurm when it is running."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.batch import slurm  # noqa: F401  (fixture: started here, a failure in CI)
from tests.sites import contract
from tiercel.sites.adapters.base import ArrayRequest, NativeState, ParseError
from tiercel.sites.adapters.slurm import STATES, Slurm

S = Slurm()
P, R, D, F, C, T = (NativeState.PENDING, NativeState.RUNNING, NativeState.DONE, NativeState.FAILED,
                    NativeState.CANCELLED, NativeState.TIMEOUT)


def test_submit_script_with_every_option() -> None:
    req = ArrayRequest(
        name="sweep.1", count=10, script="./run.sh\n", workdir="/scratch/t", walltime=90, cpus=4,
        memory_mb=2048, queue="short", account="proj7", throttle=3, directives=("--qos=high",),
    )
    inv = S.submit(req)
    assert inv.argv == ("sbatch", "--parsable")
    assert inv.files == ()
    assert inv.stdin == (
        "#!/bin/sh\n"
        "#SBATCH --job-name=sweep.1\n"
        "#SBATCH --array=1-10%3\n"
        "#SBATCH --output=/scratch/t/%A_%a.out\n"
        "#SBATCH --error=/scratch/t/%A_%a.err\n"
        "#SBATCH --cpus-per-task=4\n"
        "#SBATCH --time=2\n"
        "#SBATCH --mem=2048\n"
        "#SBATCH --partition=short\n"
        "#SBATCH --account=proj7\n"
        "#SBATCH --qos=high\n"
        "TIERCEL_ELEMENT=$SLURM_ARRAY_TASK_ID; export TIERCEL_ELEMENT\n"
        "./run.sh\n"
    )


def test_submit_script_minimal() -> None:
    inv = S.submit(ArrayRequest(name="a", count=1, script="true", workdir="/w"))
    assert inv.stdin is not None
    assert inv.stdin.splitlines() == [
        "#!/bin/sh",
        "#SBATCH --job-name=a",
        "#SBATCH --array=1-1",
        "#SBATCH --output=/w/%A_%a.out",
        "#SBATCH --error=/w/%A_%a.err",
        "#SBATCH --cpus-per-task=1",
        "TIERCEL_ELEMENT=$SLURM_ARRAY_TASK_ID; export TIERCEL_ELEMENT",
        "true",
    ]


@pytest.mark.parametrize(("seconds", "line"), [(0.5, "--time=1"), (59, "--time=1"), (60, "--time=1"),
                                               (61, "--time=2"), (3600, "--time=60"), (86400.2, "--time=1441")])
def test_walltime_is_whole_minutes_rounded_up(seconds: float, line: str) -> None:
    inv = S.submit(ArrayRequest(name="a", count=1, script="", workdir="/w", walltime=seconds))
    assert f"#SBATCH {line}\n" in (inv.stdin or "")


@pytest.mark.parametrize(("out", "native_id"), [("17\n", "17"), ("17;ci\n", "17"), ("  35\n\n", "35")])
def test_parse_submit(out: str, native_id: str) -> None:
    assert S.parse_submit(out) == native_id


@pytest.mark.parametrize("out", ["", "Submitted batch job 17\n", "sbatch: error: Batch job submission failed\n"])
def test_parse_submit_refuses_other_output(out: str) -> None:
    with pytest.raises(ParseError) as e:
        S.parse_submit(out)
    assert e.value.text == out


def test_status_is_one_squeue_for_all_arrays() -> None:
    assert S.status(["26", "17"]).argv == ("squeue", "-h", "-r", "--states=all", "-o", "%i|%T|%r", "-j", "26,17")


# Recorded: an array of 3 whose element 2 exits 3, just after submission and after it ended.
RUNNING_AND_FAILED = "17_2|FAILED|NonZeroExitCode\n17_3|RUNNING|None\n17_1|RUNNING|None\n"
ENDED = "17_3|COMPLETED|None\n17_1|COMPLETED|None\n17_2|FAILED|NonZeroExitCode\n"
# Recorded: 6 elements of `sleep 300`, throttle 2, walltime 60 s.
THROTTLED = (
    "26_3|PENDING|JobArrayTaskLimit\n26_4|PENDING|JobArrayTaskLimit\n26_5|PENDING|JobArrayTaskLimit\n"
    "26_6|PENDING|JobArrayTaskLimit\n26_2|RUNNING|None\n26_1|RUNNING|None\n"
)
# ... after `scancel 26_1 26_5`: the running 1 shows CANCELLED, the pending 5 is gone at once.
ONE_CANCELLED = (
    "26_1|CANCELLED|None\n26_4|PENDING|JobArrayTaskLimit\n26_6|PENDING|JobArrayTaskLimit\n"
    "26_3|RUNNING|None\n26_2|RUNNING|None\n"
)
TIMED_OUT = (
    "26_1|CANCELLED|None\n26_6|RUNNING|None\n26_4|RUNNING|None\n26_3|TIMEOUT|TimeLimit\n26_2|TIMEOUT|TimeLimit\n"
)
ALL_CANCELLED = (
    "26_6|CANCELLED|None\n26_4|CANCELLED|None\n26_1|CANCELLED|None\n26_3|TIMEOUT|TimeLimit\n26_2|TIMEOUT|TimeLimit\n"
)
# The same moments printed by squeue without -r: the pending rest on one line.
THROTTLED_COMPACT = "26_[3-6%2]|PENDING|JobArrayTaskLimit\n26_2|RUNNING|None\n26_1|RUNNING|None\n"
ONE_CANCELLED_COMPACT = (
    "26_1|CANCELLED|None\n26_[4,6%2]|PENDING|JobArrayTaskLimit\n26_3|RUNNING|None\n26_2|RUNNING|None\n"
)
# Recorded: `sbatch --hold --array=1-8`, then `scancel 10_3 10_6`, squeue without -r.
HELD_COMPACT = "10_[1-2,4-5,7-8]|PENDING|JobHeldUser\n"


def table(out: str) -> dict[tuple[str, int | None], NativeState]:
    return {(r.native_id, r.element): r.state for r in S.parse_status(out)}


@pytest.mark.parametrize(
    ("out", "expected"),
    [
        (RUNNING_AND_FAILED, {1: R, 2: F, 3: R}),
        (ENDED, {1: D, 2: F, 3: D}),
        (THROTTLED, {1: R, 2: R, 3: P, 4: P, 5: P, 6: P}),
        (THROTTLED_COMPACT, {1: R, 2: R, 3: P, 4: P, 5: P, 6: P}),
        (ONE_CANCELLED, {1: C, 2: R, 3: R, 4: P, 6: P}),
        (ONE_CANCELLED_COMPACT, {1: C, 2: R, 3: R, 4: P, 6: P}),
        (TIMED_OUT, {1: C, 2: T, 3: T, 4: R, 6: R}),
        (ALL_CANCELLED, {1: C, 2: T, 3: T, 4: C, 6: C}),
        (HELD_COMPACT, {1: P, 2: P, 4: P, 5: P, 7: P, 8: P}),
        ("35_1|PENDING|None\n", {1: P}),
        ("", {}),
    ],
)
def test_parse_recorded_squeue(out: str, expected: dict[int, NativeState]) -> None:
    rows = S.parse_status(out)
    native = {r.native_id for r in rows}
    assert len(native) <= 1
    assert {r.element: r.state for r in rows} == expected
    assert len(rows) == len(expected)


def test_reason_keeps_the_code_and_slurms_reason() -> None:
    rows = {r.element: r.reason for r in S.parse_status(THROTTLED + TIMED_OUT)}
    assert rows[5] == "PENDING (JobArrayTaskLimit)"
    assert rows[2] == "TIMEOUT (TimeLimit)"
    assert rows[6] == "RUNNING"


def test_every_job_state_code_of_the_man_page_is_mapped() -> None:
    codes = [
        "PENDING", "RUNNING", "SUSPENDED", "COMPLETING", "COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "NODE_FAIL",
        "PREEMPTED", "BOOT_FAIL", "DEADLINE", "OUT_OF_MEMORY", "REQUEUED", "RESIZING", "REVOKED", "SIGNALING",
        "SPECIAL_EXIT", "STAGE_OUT", "STOPPED", "CONFIGURING", "REQUEUE_FED", "REQUEUE_HOLD", "RESV_DEL_HOLD",
    ]
    assert set(codes) == set(STATES)
    assert {STATES[c] for c in ("NODE_FAIL", "PREEMPTED", "BOOT_FAIL")} == {NativeState.LOST}


def test_a_job_that_is_no_array_is_a_whole_array_row() -> None:
    (row,) = S.parse_status("40|RUNNING|None\n")
    assert (row.native_id, row.element, row.state) == ("40", None, R)


def test_unknown_but_well_formed_state_reads_pending_and_keeps_the_code() -> None:
    (row,) = S.parse_status("26_1|POWER_UP_NODE|None\n")
    assert row.state is P
    assert row.reason == "POWER_UP_NODE"


@pytest.mark.parametrize(
    "out",
    [
        "26_1|RUNNING\n",
        "26-1|RUNNING|None\n",
        "26_1|running|None\n",
        "26_[3-x]|PENDING|None\n",
        "slurm_load_jobs error: Unable to contact slurm controller (connect failure)\n",
        "JOBID PARTITION NAME USER ST TIME NODES NODELIST(REASON)\n",
    ],
)
def test_malformed_squeue_output(out: str) -> None:
    with pytest.raises(ParseError) as e:
        S.parse_status(RUNNING_AND_FAILED + out)
    assert e.value.text == RUNNING_AND_FAILED + out


@pytest.mark.parametrize(
    ("elements", "argv"),
    [
        (None, ("scancel", "26")),
        ([1, 5], ("scancel", "26_1", "26_5")),
        ([7, 3, 4, 5, 4], ("scancel", "26_[3-5]", "26_7")),
    ],
)
def test_cancel(elements: list[int] | None, argv: tuple[str, ...]) -> None:
    assert S.cancel("26", elements).argv == argv


@pytest.mark.integration
@pytest.mark.usefixtures("slurm")
def test_real_slurm_runs_every_element_once(tmp_path: Path) -> None:
    contract.run_array(S, tmp_path, timeout=contract.SHARED_TIMEOUT)


@pytest.mark.integration
@pytest.mark.usefixtures("slurm")
def test_real_slurm_cancels(tmp_path: Path) -> None:
    rows = contract.cancel_array(S, tmp_path, timeout=contract.SHARED_TIMEOUT)
    assert all(r.state is C for r in rows.values()), rows


def test_an_array_of_a_mirrored_reservation_is_submitted_into_it() -> None:
    req = ArrayRequest(name="j", count=2, script="true\n", workdir="/s", reservation="tiercel-course")
    assert "#SBATCH --reservation=tiercel-course\n" in (S.submit(req).stdin or "")
    with pytest.raises(ValueError, match="reservation: 'a b'"):
        S.submit(ArrayRequest(name="j", count=2, script="true\n", workdir="/s", reservation="a b"))


def test_other_batch_systems_refuse_a_reservation_rather_than_drop_it() -> None:
    from tiercel.sites.adapters import ADAPTERS

    req = ArrayRequest(name="j", count=2, script="true\n", workdir="/s", reservation="tiercel-course")
    for kind, adapter in ADAPTERS.items():
        if kind != "slurm":
            with pytest.raises(ValueError, match="only Slurm sites submit into a mirrored reservation"):
                adapter().submit(req)


def test_mirror_builders() -> None:
    import time

    from tiercel.sites.adapters.base import NativeReservation, Reserving

    assert isinstance(S, Reserving)
    now = time.mktime((2026, 11, 21, 10, 0, 0, 0, 0, -1))
    later = NativeReservation("tiercel-course", now + 3600, now + 7200, 4, ("root",), "debug")
    assert S.reserve(later, now).argv == (
        "scontrol", "create", "reservation", "ReservationName=tiercel-course", "StartTime=2026-11-21T11:00:00",
        "EndTime=2026-11-21T12:00:00", "Users=root", "CoreCnt=4", "Flags=IGNORE_JOBS", "PartitionName=debug")
    at_once = NativeReservation("x", now, now + 90.5, 1, ("a", "b"))
    argv = S.reserve(at_once, now).argv
    assert "StartTime=now" in argv and "EndTime=2026-11-21T10:01:31" in argv and "Users=a,b" in argv
    for bad, needle in [(NativeReservation("x y", now, now + 1, 1, ("a",)), "name"),
                        (NativeReservation("x", now, now + 1, 0, ("a",)), "cores"),
                        (NativeReservation("x", now, now + 1, 1, ()), "users"),
                        (NativeReservation("x", now, now + 1, 1, ("a,b=c",)), "users")]:
        with pytest.raises(ValueError, match=needle):
            S.reserve(bad, now)
    assert S.parse_reserve("Reservation created: tiercel-course\n") == "tiercel-course"
    with pytest.raises(ParseError):
        S.parse_reserve("Error creating the reservation: Requested nodes are busy\n")
    assert S.unreserve("tiercel-course").argv == ("scontrol", "delete", "ReservationName=tiercel-course")
