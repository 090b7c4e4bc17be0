"""LSF adapter: builders, and parsers over output in the form IBM documents it. No LSF
cluster runs here: bsub's reply is quoted from the bsub and bjobs documentation, the
status lines follow bjobs(1) "-o" (the named fields in order, split by the delimiter,
one line per array element, "-" for a value not set) and its "JOB STATUS" list."""

from __future__ import annotations

import pytest

from tiercel.sites.adapters.base import ArrayRequest, NativeState, ParseError
from tiercel.sites.adapters.lsf import STATES, Lsf

B = Lsf()
P, R, D, F, L = NativeState.PENDING, NativeState.RUNNING, NativeState.DONE, NativeState.FAILED, NativeState.LOST


def test_submit_script_with_every_option() -> None:
    req = ArrayRequest(
        name="sweep.1", count=10, script="./run.sh\n", workdir="/scratch/t", walltime=5400, cpus=4,
        memory_mb=2048, queue="normal", account="proj7", throttle=3, directives=("-G grp",),
    )
    inv = B.submit(req)
    assert inv.argv == ("bsub",)
    assert inv.stdin == (
        "#!/bin/sh\n"
        '#BSUB -J "sweep.1[1-10]%3"\n'
        "#BSUB -o /scratch/t/%J_%I.out\n"
        "#BSUB -e /scratch/t/%J_%I.err\n"
        "#BSUB -n 4\n"
        "#BSUB -W 90\n"
        '#BSUB -R "rusage[mem=2048] span[hosts=1]"\n'
        "#BSUB -q normal\n"
        "#BSUB -P proj7\n"
        "#BSUB -G grp\n"
        "TIERCEL_ELEMENT=$LSB_JOBINDEX; export TIERCEL_ELEMENT\n"
        "./run.sh\n"
    )


def test_submit_script_minimal() -> None:
    inv = B.submit(ArrayRequest(name="a", count=1, script="true", workdir="/w", walltime=61))
    assert (inv.stdin or "").splitlines() == [
        "#!/bin/sh", '#BSUB -J "a[1-1]"', "#BSUB -o /w/%J_%I.out", "#BSUB -e /w/%J_%I.err", "#BSUB -n 1", "#BSUB -W 2",
        "TIERCEL_ELEMENT=$LSB_JOBINDEX; export TIERCEL_ELEMENT", "true",
    ]


@pytest.mark.parametrize(
    "out",
    ["Job <1234> is submitted to queue <normal>.\n", "Job <1234> is submitted to default queue <normal>.\n"],
)
def test_parse_submit(out: str) -> None:
    assert B.parse_submit(out) == "1234"


@pytest.mark.parametrize("out", ["", "normal: No such queue. Job not submitted.\n"])
def test_parse_submit_refuses_other_output(out: str) -> None:
    with pytest.raises(ParseError) as e:
        B.parse_submit(out)
    assert e.value.text == out


def test_status_is_one_bjobs_with_finished_jobs() -> None:
    assert B.status(["1234", "1240"]).argv == (
        "bjobs", "-noheader", "-a", "-o", "jobid jobindex stat exit_code delimiter='|'", "1234", "1240",
    )


ARRAY = "1234|1|DONE|-\n1234|2|EXIT|3\n1234|3|RUN|-\n1234|4|PEND|-\n1234|5|SSUSP|-\n1234|6|EXIT|130\n"


def test_parse_array() -> None:
    rows = {r.element: r for r in B.parse_status(ARRAY)}
    assert {r.native_id for r in rows.values()} == {"1234"}
    assert {e: r.state for e, r in rows.items()} == {1: D, 2: F, 3: R, 4: P, 5: R, 6: F}
    assert (rows[1].exit_code, rows[2].exit_code, rows[3].exit_code, rows[6].exit_code) == (0, 3, None, 130)
    assert rows[5].reason == "SSUSP"


def test_a_job_that_is_no_array_has_index_0() -> None:
    (row,) = B.parse_status("1240|0|RUN|-\n")
    assert (row.native_id, row.element, row.state) == ("1240", None, R)


def test_messages_for_gone_jobs_are_skipped() -> None:
    out = "1234|1|DONE|-\nJob <1240> is not found\nNo unfinished job found\n"
    assert [(r.native_id, r.element) for r in B.parse_status(out)] == [("1234", 1)]


@pytest.mark.parametrize(
    ("code", "state"),
    [("PEND", P), ("PROV", P), ("PSUSP", P), ("WAIT", P), ("RUN", R), ("USUSP", R), ("SSUSP", R), ("UNKWN", R),
     ("DONE", D), ("EXIT", F), ("ZOMBI", L), ("NEWSTATE", P)],
)
def test_job_status_codes(code: str, state: NativeState) -> None:
    (row,) = B.parse_status(f"7|2|{code}|-\n")
    assert (row.state, row.reason) == (state, code)


def test_every_job_status_of_bjobs_is_mapped() -> None:
    assert set(STATES) == {"PEND", "PROV", "PSUSP", "WAIT", "RUN", "USUSP", "SSUSP", "UNKWN", "DONE", "EXIT", "ZOMBI"}


@pytest.mark.parametrize(
    "out",
    [
        "1234 1 RUN -\n",  # the default space delimiter: not the format asked for
        "1234|1|RUN\n",
        "JOBID|JOBINDEX|STAT|EXIT_CODE\n",  # a header
        "1234|x|RUN|-\n",
        "1234|1|run|-\n",
        "1234|1|EXIT|signal\n",
    ],
)
def test_malformed_bjobs_output(out: str) -> None:
    with pytest.raises(ParseError) as e:
        B.parse_status(ARRAY + out)
    assert e.value.text == ARRAY + out


@pytest.mark.parametrize(
    ("elements", "argv"),
    [(None, ("bkill", "1234")), ([3], ("bkill", "1234[3]")), ([7, 3, 4, 5], ("bkill", "1234[3-5,7]"))],
)
def test_cancel(elements: list[int] | None, argv: tuple[str, ...]) -> None:
    assert B.cancel("1234", elements).argv == argv
