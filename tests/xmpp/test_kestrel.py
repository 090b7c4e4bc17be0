"""Kestrel's chat messages, word for word as its manual writes them."""

from __future__ import annotations

import pytest

from tiercel.gateways.xmpp.kestrel import (
    Cancel,
    Help,
    Status,
    SubmitJob,
    job_finished,
    job_rejected,
    job_started,
    parse,
)


def test_the_manuals_job_message() -> None:
    msg = parse("""{'type':'job', 'command':"~/runtask.sh", 'queue':10000}""")
    assert isinstance(msg, SubmitJob)
    assert msg.spec.command == ("~/runtask.sh",) and msg.spec.size == 10000 and msg.spec.shell


def test_json_and_optional_keys() -> None:
    msg = parse('{"type": "job", "command": "run.sh", "queue": 5, "requires": "gpu,bio", "cleanup": "rm x"}')
    assert isinstance(msg, SubmitJob)
    assert msg.spec.requires == {"gpu", "bio"} and msg.spec.cleanup == "rm x"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{'type':'status'}", Status(None)),
        ("{'type':'status', 'job_id': 317}", Status(317)),
        ("{'type':'cancel'}", Cancel(None)),
        ("{'type':'cancel', 'job_id': 428}", Cancel(428)),
        ("help", Help("")),
    ],
)
def test_status_cancel_help(text: str, expected: object) -> None:
    assert parse(text) == expected


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("hello there", "could not read that as a message"),
        ("{'type':'jobb'}", "do not know the message type 'jobb'"),
        ("{'command':'x'}", "needs a 'type'"),
        ("{'type':'job', 'command':'x', 'queue':-5}", "queue: -5 must be between 1 and"),
        ("{'type':'job', 'command':'x', 'queue':10**12}", "could not read"),  # no arithmetic: literals only
        ("{'type':'job', 'command':'x', 'queue':1000000000000}", "queue: 1000000000000 must be between"),
        ("{'type':'job', 'command':'x', 'queue':'many'}", "queue: 'many' is not allowed"),
        ("{'type':'job', 'command':'x', 'queue':True}", "'queue' must be a number"),
        ("{'type':'job', 'queue':5}", "command: is required"),
        ("{'type':'job', 'command':'x', 'rm':'-rf'}", "does not take 'rm'"),
        ("{'type':'status', 'job_id': 'x'}", "'job_id' must be a job number"),
        ("{'type':'cancel', 'job_id': -1}", "'job_id' must be a job number"),
        ("{'type':'status', 'job_id': 100000000000000000000}", "'job_id' must be a job number"),
        ("{'type':'cancel', 'job_id': 9223372036854775808}", "'job_id' must be a job number"),
        ("{'type':'cancel', 'everything': 1}", "takes only 'job_id'"),
        ("__import__('os').system('true')", "could not read"),
        ("[" * 5000, "at most 4096"),
    ],
)
def test_bad_messages_get_a_friendly_reason(text: str, needle: str) -> None:
    msg = parse(text)
    assert isinstance(msg, Help) and needle in msg.reason


def test_replies_read_as_the_manual_writes_them() -> None:
    assert job_started(483) == "{'type':'job_started', 'job_id': 483}"
    assert job_finished(78) == "{'type':'job_finished', 'job_id': 78}"
    assert job_rejected("queue: -5 must be between 1 and 100") == \
        "{'type':'job_rejected', 'reason': 'queue: -5 must be between 1 and 100'}"


def test_hold_release_retry_and_the_job_controls_in_a_job_message() -> None:
    from tiercel.gateways.xmpp.kestrel import Control

    assert parse("{'type':'hold', 'job_id': 428}") == Control("hold", 428)
    assert parse("{'type':'release', 'job_id': 428}") == Control("release", 428)
    assert parse("{'type':'retry', 'job_id': 7}") == Control("retry", 7)
    missing = parse("{'type':'hold'}")
    assert isinstance(missing, Help) and "needs the 'job_id'" in missing.reason
    msg = parse("{'type':'job', 'command':'run.sh', 'queue':100, 'max_running':5, 'max_failures':3, 'hold':True}")
    assert isinstance(msg, SubmitJob)
    assert (msg.spec.max_running, msg.spec.max_failures, msg.spec.held) == (5, 3, True)
    zero = parse("{'type':'job', 'command':'run.sh', 'max_running':0}")
    assert isinstance(zero, Help) and "max_running: 0" in zero.reason
