"""PBS Pro / OpenPBS adapter: builders, and parsers over qstat JSON in the form the vendor
documents it. No PBS server runs here; the shapes follow qstat(1B) ("-F json": a prolog
of timestamp, pbs_version and pbs_server, then "Jobs" keyed by job id; job id forms
"<seq>[].<server>" for an array and "<seq>[<index>].<server>" for a subjob) and
pbs_job_attributes(7B) (job_state letters, array_id, array_index, Exit_status). The
first document is the example printed in qstat(1B) itself."""

from __future__ import annotations

import json

import pytest

from tiercel.sites.adapters.base import ArrayRequest, NativeState, ParseError
from tiercel.sites.adapters.pbs import STATES, Pbs

B = Pbs()
P, R, D, F, C, T, L = (NativeState.PENDING, NativeState.RUNNING, NativeState.DONE, NativeState.FAILED,
                       NativeState.CANCELLED, NativeState.TIMEOUT, NativeState.LOST)


def test_submit_script_with_every_option() -> None:
    req = ArrayRequest(
        name="sweep.1", count=10, script="./run.sh\n", workdir="/scratch/t", walltime=5400, cpus=4,
        memory_mb=2048, queue="workq", account="proj7", throttle=3, directives=("-l place=excl",),
    )
    inv = B.submit(req)
    assert inv.argv == ("qsub",)
    assert inv.stdin == (
        "#!/bin/sh\n"
        "#PBS -N sweep.1\n"
        "#PBS -S /bin/sh\n"
        "#PBS -J 1-10%3\n"
        "#PBS -o /scratch/t/\n"
        "#PBS -e /scratch/t/\n"
        "#PBS -l walltime=1:30:00\n"
        "#PBS -l select=1:ncpus=4:mem=2048mb\n"
        "#PBS -q workq\n"
        "#PBS -A proj7\n"
        "#PBS -l place=excl\n"
        "TIERCEL_ELEMENT=${PBS_ARRAY_INDEX:-1}; export TIERCEL_ELEMENT\n"
        "./run.sh\n"
    )


def test_an_array_of_one_is_a_plain_job() -> None:
    inv = B.submit(ArrayRequest(name="a", count=1, script="true", workdir="/w", throttle=1))
    assert (inv.stdin or "").splitlines() == [
        "#!/bin/sh", "#PBS -N a", "#PBS -S /bin/sh", "#PBS -o /w/", "#PBS -e /w/", "#PBS -l select=1:ncpus=1",
        "TIERCEL_ELEMENT=${PBS_ARRAY_INDEX:-1}; export TIERCEL_ELEMENT", "true",
    ]


@pytest.mark.parametrize(("out", "native_id"), [("1234[].pbs01\n", "1234[].pbs01"), ("1235.pbs01\n", "1235.pbs01"),
                                                ("17[]\n", "17[]")])
def test_parse_submit(out: str, native_id: str) -> None:
    assert B.parse_submit(out) == native_id


@pytest.mark.parametrize("out", ["", "qsub: Unknown queue\n", "qsub: Array job must have at least 2 subjobs\n"])
def test_parse_submit_refuses_other_output(out: str) -> None:
    with pytest.raises(ParseError) as e:
        B.parse_submit(out)
    assert e.value.text == out


def test_status_is_one_qstat_with_history_and_subjobs() -> None:
    assert B.status(["1234[].pbs01", "1235.pbs01"]).argv == (
        "qstat", "-f", "-F", "json", "-x", "-t", "1234[].pbs01", "1235.pbs01",
    )


# qstat(1B), "-F json", the example it prints (a queued plain job).
MAN_PAGE_EXAMPLE = """{
        "timestamp":1479277336,
        "pbs_version":"14.1",
        "pbs_server":"vbox",
        "Jobs":{
                "1.vbox":{
                        "Job_Name":"STDIN",
                        "Job_Owner":"root@vbox",
                        "job_state":"Q",
                        "queue":"workq",
                        "server":"vbox",
                        "Checkpoint":"u",
                        "ctime":"Fri Nov 11 17:57:05 2016",
                        "Error_Path":"vbox:/home/nithinj/Tasks/overlay/STDIN.e1",
                        "Hold_Types":"n",
                        "Join_Path":"n"
                }
        }
}"""


def subjob(seq: int, index: int, state: str, exit_status: int | None = None) -> tuple[str, dict[str, object]]:
    attrs: dict[str, object] = {"Job_Name": "sweep", "job_state": state, "queue": "workq",
                                "array_id": f"{seq}[].vbox", "array_index": index}
    if exit_status is not None:
        attrs["Exit_status"] = exit_status
    return f"{seq}[{index}].vbox", attrs


def document(*jobs: tuple[str, dict[str, object]]) -> str:
    return json.dumps({"timestamp": 1479277336, "pbs_version": "2022.1.1", "pbs_server": "vbox", "Jobs": dict(jobs)})


ARRAY = ("7[].vbox", {"Job_Name": "sweep", "job_state": "B", "queue": "workq", "array": "True",
                      "array_state_count": "Queued:1 Running:1 Exiting:0 Expired:4 ",
                      "array_indices_submitted": "1-6", "array_indices_remaining": "6"})
A_RUNNING_ARRAY = document(
    ARRAY,
    subjob(7, 1, "X", 0), subjob(7, 2, "X", 3), subjob(7, 3, "X", 271), subjob(7, 4, "X"),
    subjob(7, 5, "R"), subjob(7, 6, "Q"),
)


def test_parse_man_page_example() -> None:
    (row,) = B.parse_status(MAN_PAGE_EXAMPLE)
    assert (row.native_id, row.element, row.state, row.reason) == ("1.vbox", 1, P, "Q")


def test_parse_array_with_subjobs() -> None:
    rows = {r.element: r for r in B.parse_status(A_RUNNING_ARRAY)}
    assert {r.native_id for r in rows.values()} == {"7[].vbox"}
    assert {e: r.state for e, r in rows.items()} == {1: D, 2: F, 3: C, 4: C, 5: R, 6: P}
    assert rows[1].exit_code == 0
    assert rows[2].exit_code == 3
    assert rows[3].exit_code is None
    assert rows[3].reason == "X: Exit_status=271 (signal 15)"
    assert rows[4].reason == "X: deleted before it ran"


def test_the_whole_array_row_appears_only_without_subjobs() -> None:
    (row,) = B.parse_status(document(ARRAY))
    assert (row.native_id, row.element, row.state) == ("7[].vbox", None, R)


@pytest.mark.parametrize(
    ("exit_status", "state", "exit_code"),
    [
        (0, D, 0), (1, F, 1), (255, F, 255), ("2", F, 2),
        (256 + 15, C, None), (256 + 9, C, None),
        (-29, T, None),  # JOB_EXEC_KILL_WALLTIME
        (-27, F, None), (-26, F, None), (-25, F, None),  # over mem, vmem, ncpus
        (-1, L, None), (-3, L, None), (-20, L, None),  # PBS could not run it
        (None, C, None),  # finished without running: deleted while queued
    ],
)
def test_finished_job_by_exit_status(exit_status: int | str | None, state: NativeState, exit_code: int | None) -> None:
    attrs: dict[str, object] = {"job_state": "F"}
    if exit_status is not None:
        attrs["Exit_status"] = exit_status
    (row,) = B.parse_status(document(("9.vbox", attrs)))
    assert (row.element, row.state, row.exit_code) == (1, state, exit_code)


@pytest.mark.parametrize(("code", "state"), [(c, s) for c, s in STATES.items()] + [("Z", P)])
def test_job_state_letters(code: str, state: NativeState) -> None:
    (row,) = B.parse_status(document(subjob(3, 2, code)))
    assert (row.element, row.state, row.reason) == (2, state, code)


def test_every_job_state_of_the_attributes_page_is_read() -> None:
    assert set(STATES) | {"F", "X"} == set("BEFHMQRSTUWX")


def test_no_jobs_known() -> None:
    assert B.parse_status("") == []
    assert B.parse_status('{"timestamp":1479277336,"pbs_version":"14.1","pbs_server":"vbox"}') == []


def test_control_characters_in_values_are_tolerated() -> None:
    out = document(subjob(3, 1, "R")).replace('"sweep"', '"a\tb"')
    assert B.parse_status(out)[0].state is R


@pytest.mark.parametrize(
    "out",
    [
        "qstat: Unknown Job Id 7[].vbox\n",
        '{"Jobs": []}',
        '["Jobs"]',
        document(("7[1].vbox", {"Job_Name": "x"})),
        document(("seven.vbox", {"job_state": "R"})),
        document(("7[1].vbox", {"job_state": "X", "Exit_status": "killed"})),
    ],
)
def test_malformed_qstat_output(out: str) -> None:
    with pytest.raises(ParseError) as e:
        B.parse_status(out)
    assert e.value.text == out


@pytest.mark.parametrize(
    ("native_id", "elements", "argv"),
    [
        ("1234[].pbs01", None, ("qdel", "1234[].pbs01")),
        ("1234[].pbs01", [3, 7], ("qdel", "1234[3].pbs01", "1234[7].pbs01")),
        ("1234[].pbs01", [5, 3, 4, 7], ("qdel", "1234[3-5].pbs01", "1234[7].pbs01")),
        ("1235.pbs01", [1], ("qdel", "1235.pbs01")),
        ("17[]", [2], ("qdel", "17[2]")),
    ],
)
def test_cancel(native_id: str, elements: list[int] | None, argv: tuple[str, ...]) -> None:
    assert B.cancel(native_id, elements).argv == argv
