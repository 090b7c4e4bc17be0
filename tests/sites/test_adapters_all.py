"""What every adapter shares: the registry, refusing requests that would inject lines into a
script header, and the range helpers."""

from __future__ import annotations

import dataclasses

import pytest

from tiercel.sites.adapters import ADAPTERS
from tiercel.sites.adapters._common import expand, hms, minutes, runs
from tiercel.sites.adapters.base import ArrayRequest, NativeState, ParseError

OK = ArrayRequest(name="ok", count=2, script="echo hi\n", workdir="/w")


def test_registry_names_each_adapter_by_its_kind() -> None:
    assert set(ADAPTERS) == {"slurm", "sge", "pbs", "lsf", "htcondor"}
    for kind, cls in ADAPTERS.items():
        assert cls.kind == kind
        assert len(cls.commands) == 3
        assert cls.max_array >= 1000
        states = vars(__import__(cls.__module__, fromlist=["STATES"]))["STATES"]
        assert set(states.values()) <= set(NativeState)


@pytest.mark.parametrize("kind", sorted(ADAPTERS))
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", "a\nb"),
        ("name", "a b"),
        ("name", "-N"),
        ("name", ""),
        ("name", "a;rm -rf ~"),
        ("queue", "short\n#SBATCH --x"),
        ("queue", "a b"),
        ("account", "p\rq"),
        ("workdir", "relative/dir"),
        ("workdir", "/with space"),
        ("workdir", "/w\ntouch /tmp/x"),
        ("directives", ("--ok", "--x\necho injected")),
        ("count", 0),
        ("cpus", 0),
        ("memory_mb", -1),
        ("walltime", 0),
        ("walltime", float("nan")),
        ("throttle", 0),
    ],
)
def test_bad_requests_are_refused_naming_the_field(kind: str, field: str, value: object) -> None:
    req = dataclasses.replace(OK, **{field: value})
    with pytest.raises(ValueError, match=field):
        ADAPTERS[kind]().submit(req)


@pytest.mark.parametrize("kind", sorted(ADAPTERS))
def test_the_script_body_may_hold_anything(kind: str) -> None:
    body = "#!/bin/sh\n#SBATCH --not-a-directive\n#$ -q x\necho 'a b'\n\n"
    inv = ADAPTERS[kind]().submit(dataclasses.replace(OK, script=body))
    text = (inv.stdin or "") + "".join(content for _, content in inv.files)
    assert text.endswith(body)


@pytest.mark.parametrize("kind", sorted(ADAPTERS))
def test_cancel_refuses_element_zero(kind: str) -> None:
    native_id = "7[].s" if kind == "pbs" else "7"
    with pytest.raises(ValueError, match="elements"):
        ADAPTERS[kind]().cancel(native_id, [0, 1])


@pytest.mark.parametrize(
    ("spec", "indexes"),
    [("3", [3]), ("3-6", [3, 4, 5, 6]), ("1-9:4", [1, 5, 9]), ("1-2,4-5,7", [1, 2, 4, 5, 7]), ("3-6%2", [3, 4, 5, 6]),
     ("4,6%2", [4, 6]), ("3-6:1", [3, 4, 5, 6])],
)
def test_expand(spec: str, indexes: list[int]) -> None:
    assert expand(spec, "out") == indexes


@pytest.mark.parametrize("spec", ["", "x", "5-3", "1-4:0", "1--3", "1,,2"])
def test_expand_refuses(spec: str) -> None:
    with pytest.raises(ParseError) as e:
        expand(spec, "the output")
    assert e.value.text == "the output"


def test_runs() -> None:
    assert runs([7, 1, 2, 3, 3, 9, 8]) == [(1, 3), (7, 9)]
    assert runs([]) == []


def test_time_units() -> None:
    assert [minutes(s) for s in (0.1, 60, 60.1, 7200)] == [1, 1, 2, 120]
    assert [hms(s) for s in (0.1, 61, 3599.5, 36000)] == ["0:00:01", "0:01:01", "1:00:00", "10:00:00"]
