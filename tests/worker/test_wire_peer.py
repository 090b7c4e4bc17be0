"""The peer protocol: every message round-trips, and a malformed one is named, never half-read."""

from __future__ import annotations

from typing import Any

import pytest

from tiercel.core.federation import SiteSummary
from tiercel.core.model import Outcome
from tiercel.wire.codec import WireError
from tiercel.wire.peer import (
    Accepted,
    Cancel,
    Forward,
    PeerError,
    PeerHello,
    PeerMessage,
    PeerResult,
    PeerResults,
    Ping,
    Pong,
    Refused,
    ResultsAck,
    Summary,
    decode,
    encode,
    pack,
    unpack,
)

MESSAGES: list[PeerMessage] = [
    PeerHello("a1b2", "http://a:8750"),
    Summary((SiteSummary("pool", "pool", 8, 3, None, 4096, 3600.0, frozenset({"gpu"}), 2, 5),), 4, (("1.1.0", 7),)),
    Ping(12.5), Pong(12.5),
    Forward("1.1.0", 1, 1, ((0, 5000), (6000, 7000)), {"command": ["true"]}, ("a1b2",)),
    Accepted("1.1.0", 9), Refused("1.1.0", "no"), Cancel("1.1.0"),
    PeerResults("1.1.0", 1, (PeerResult(3, Outcome.DONE, 0, 1.0, 2.0, b"out", b"", 0.25),
                             PeerResult(4, Outcome.FAILED, 1, 1.0, 2.0, b"", b"err"))),
    ResultsAck("1.1.0", ((3, 5),), ""), PeerError("bye"),
]


@pytest.mark.parametrize("msg", MESSAGES, ids=lambda m: type(m).__name__)
def test_every_peer_message_round_trips(msg: PeerMessage) -> None:
    assert [decode(m) for m in unpack(pack([msg]))] == [msg]


def test_a_forward_of_any_size_is_one_small_message() -> None:
    one = len(pack([Forward("1.1.0", 1, 1, ((0, 10),), {"command": ["true"]}, ("a",))]))
    big = len(pack([Forward("1.1.0", 1, 1, ((0, 10_000_000),), {"command": ["true"]}, ("a",))]))
    assert big - one < 8


@pytest.mark.parametrize(("raw", "words"), [
    ([], "must be a map"),
    ({"t": "nope"}, "unknown peer message type 'nope'"),
    ({"t": "forward", "lease": "x", "job": 1, "epoch": 1, "spans": [[5, 2]], "spec": {}, "hops": []},
     "span [5, 2) is empty"),
    ({"t": "forward", "lease": "x", "job": 1, "epoch": 1, "spans": [[0, 2]], "spec": [], "hops": []},
     "spec must be a map"),
    ({"t": "results", "lease": "x", "epoch": 1, "items": [[0, "great", 0, 0, 0, b"", b"", None]]},
     "outcome 'great' is not one of"),
    ({"t": "results", "lease": "x", "epoch": 1, "items": [[0, "done", 0, 0, 0, "text", b"", None]]},
     "stdout and stderr must be bytes"),
    ({"t": "summary", "sites": [["p", "pool", "many", 0, None, None, None, [], 0, 0]]}, "slots_total must be"),
    ({"t": "summary", "sites": "all"}, "sites must be a list"),
    ({"t": "ping"}, "ping: malformed"),
    ({"t": "peer_hello", "manager": "x" * 500, "name": "n", "v": 1}, "at most 200 characters"),
])
def test_a_malformed_peer_message_is_named(raw: Any, words: str) -> None:
    with pytest.raises(WireError) as exc:
        decode(raw)
    assert words in str(exc.value)


def test_a_frame_that_is_not_a_list_is_refused() -> None:
    with pytest.raises(WireError):
        unpack(b"\x81\xa1t\xa4ping")  # a map, not a list of messages
    with pytest.raises(WireError):
        unpack(b"\xc1")
    assert encode(Ping(1.0)) == {"t": "ping", "sent": 1.0}
