"""HTCondor adapter: builders, and parsers over output in the form the HTCondor manual
documents it. No HTCondor pool runs here: condor_submit's replies follow condor_submit(1)
(-terse: "JobId ranges only", first - last; otherwise "N job(s) submitted to cluster C."),
the status lines condor_q(1) "-autoformat" (values separated by one space, a newline per
job, "undefined" for an attribute not set) and the JobStatus codes of "Job ClassAd
Attributes"."""

from __future__ import annotations

import pytest

from tiercel.sites.adapters.base import ArrayRequest, NativeState, ParseError
from tiercel.sites.adapters.htcondor import STATES, HTCondor

H = HTCondor()
P, R, D, F, C = NativeState.PENDING, NativeState.RUNNING, NativeState.DONE, NativeState.FAILED, NativeState.CANCELLED


def test_submit_description_and_script_file() -> None:
    req = ArrayRequest(
        name="sweep.1", count=10, script="./run.sh\n", workdir="/scratch/t", walltime=5400.4, cpus=4,
        memory_mb=2048, queue="ignored", account="group_physics.alice",
        directives=('requirements = (OpSys == "LINUX")',),
    )
    inv = H.submit(req)
    assert inv.argv == ("condor_submit", "-terse")
    ((path, body),) = inv.files
    script = path.rsplit("/", 1)[1]
    assert path == f"/scratch/t/{script}"
    assert script.startswith("sweep.1-") and script.endswith(".sh")
    assert body == "#!/bin/sh\nTIERCEL_ELEMENT=$(( $1 + 1 )); export TIERCEL_ELEMENT\nshift\n./run.sh\n"
    assert inv.stdin == (
        "universe = vanilla\n"
        "batch_name = sweep.1\n"
        "initialdir = /scratch/t\n"
        "executable = /bin/sh\n"
        "transfer_executable = false\n"
        f'arguments = "{script} $(Process)"\n'
        "should_transfer_files = IF_NEEDED\n"
        f"transfer_input_files = {script}\n"
        "output = /scratch/t/$(ClusterId)_$(Process).out\n"
        "error = /scratch/t/$(ClusterId)_$(Process).err\n"
        "log = /scratch/t/$(ClusterId).log\n"
        "request_cpus = 4\n"
        "request_memory = 2048\n"
        "periodic_remove = (JobStatus == 2) && (time() - JobCurrentStartDate > 5400)\n"
        "accounting_group = group_physics.alice\n"
        'requirements = (OpSys == "LINUX")\n'
        "queue 10\n"
    )


def test_script_file_is_named_after_its_content() -> None:
    def name(script: str, count: int = 2) -> str:
        return H.submit(ArrayRequest(name="a", count=count, script=script, workdir="/w")).files[0][0]

    assert name("echo 1\n") == name("echo 1\n", count=5)
    assert name("echo 1\n") != name("echo 2\n")


def test_a_throttle_is_refused_not_dropped() -> None:
    with pytest.raises(ValueError, match="throttle"):
        H.submit(ArrayRequest(name="a", count=2, script="", workdir="/w", throttle=1))


@pytest.mark.parametrize(
    "out",
    ["1234.0 - 1234.2\n", "Submitting job(s)...\n3 job(s) submitted to cluster 1234.\n", "1234.0 - 1234.0\n"],
)
def test_parse_submit(out: str) -> None:
    assert H.parse_submit(out) == "1234"


@pytest.mark.parametrize(
    "out", ["", "ERROR: Can't find address of local schedd\n", "1234.0 - 1235.2\n", "Submitting job(s)...\n"]
)
def test_parse_submit_refuses_other_output(out: str) -> None:
    with pytest.raises(ParseError) as e:
        H.parse_submit(out)
    assert e.value.text == out


def test_status_is_one_condor_q_with_autoformat() -> None:
    assert H.status(["1234", "1240"]).argv == (
        "condor_q", "1234", "1240", "-af", "ClusterId", "ProcId", "JobStatus", "ExitCode", "HoldReason",
    )


CLUSTER = (
    "1234 0 4 0 undefined\n"
    "1234 1 4 2 undefined\n"
    "1234 2 2 undefined undefined\n"
    "1234 3 1 undefined undefined\n"
    "1234 4 5 undefined Error from slot1@node7: Failed to execute '/bin/sh': (errno=2: No such file or directory)\n"
    "1234 5 3 undefined undefined\n"
    "1234 6 4 undefined undefined\n"
)


def test_parse_cluster() -> None:
    rows = {r.element: r for r in H.parse_status(CLUSTER)}
    assert {r.native_id for r in rows.values()} == {"1234"}
    assert {e: r.state for e, r in rows.items()} == {1: D, 2: F, 3: R, 4: P, 5: P, 6: C, 7: F}
    assert (rows[1].exit_code, rows[2].exit_code, rows[3].exit_code) == (0, 2, None)
    assert rows[5].reason == (
        "JobStatus=5: Error from slot1@node7: Failed to execute '/bin/sh': (errno=2: No such file or directory)"
    )
    assert rows[3].reason == "JobStatus=2"


@pytest.mark.parametrize(
    ("code", "state"), [("1", P), ("2", R), ("3", C), ("5", P), ("6", R), ("7", R), ("9", P)]
)
def test_job_status_codes(code: str, state: NativeState) -> None:
    (row,) = H.parse_status(f"7 0 {code} undefined undefined\n")
    assert (row.element, row.state) == (1, state)


def test_every_job_status_code_is_mapped() -> None:
    assert set(STATES) == {"1", "2", "3", "4", "5", "6", "7"}


def test_nothing_in_the_queue() -> None:
    assert H.parse_status("") == []


@pytest.mark.parametrize(
    "out",
    [
        "1234 0 2\n",
        "1234.0 2 undefined undefined\n",
        "-- Schedd: submit.example.org : <192.0.2.4:9618?...\n",
        "1234 0 Running undefined undefined\n",
        "1234 0 4 zero undefined\n",
    ],
)
def test_malformed_condor_q_output(out: str) -> None:
    with pytest.raises(ParseError) as e:
        H.parse_status(CLUSTER + out)
    assert e.value.text == CLUSTER + out


@pytest.mark.parametrize(
    ("elements", "argv"),
    [
        (None, ("condor_rm", "1234")),
        ([3, 7], ("condor_rm", "1234.2", "1234.6")),
        ([2, 1], ("condor_rm", "1234.0", "1234.1")),
    ],
)
def test_cancel(elements: list[int] | None, argv: tuple[str, ...]) -> None:
    assert H.cancel("1234", elements).argv == argv
