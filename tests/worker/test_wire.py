"""The worker protocol's ``tasks`` message with a sweep's entries and a job's output file patterns."""

from __future__ import annotations

import msgpack
import pytest

from tiercel.core.model import Entries, JobId, JobSpec, TaskRef
from tiercel.core.ranges import IndexRanges
from tiercel.wire.codec import WireError, decode_from_manager, encode, pack, unpack
from tiercel.wire.messages import Tasks

JOB = JobId(4)
SPEC = JobSpec(command=("./run.sh",), indexes=IndexRanges.of_size(3), entries=Entries.of(["a", "", "c d"]),
               stdout="out/{index}.txt", stderr="err.log")


def round_trip(msg: Tasks) -> Tasks:
    [raw] = unpack(pack([encode(msg)]))
    back = decode_from_manager(raw)
    assert isinstance(back, Tasks)
    return back


def test_each_task_carries_its_entry_and_the_spec_its_patterns_but_not_the_entries() -> None:
    refs = [TaskRef(JOB, 0, 1, b"s0", "a"), TaskRef(JOB, 1, 1, b"s1", ""), TaskRef(JOB, 2, 3, b"s2", "c d")]
    raw = encode(Tasks(refs, {JOB: SPEC}))
    assert "entries" not in raw["specs"]["4"]  # a million entries are not sent to every worker
    assert raw["tasks"] == [[4, 0, 1, b"s0"], [4, 1, 1, b"s1"], [4, 2, 3, b"s2"]]  # as before entries existed
    back = round_trip(Tasks(refs, {JOB: SPEC}))
    assert [(r.job, r.index, r.attempt, r.seal, r.entry) for r in back.tasks] == [
        (4, 0, 1, b"s0", "a"), (4, 1, 1, b"s1", ""), (4, 2, 3, b"s2", "c d")]
    spec = back.specs[JOB]
    assert (spec.stdout, spec.stderr, spec.entries) == ("out/{index}.txt", "err.log", None)


def test_tasks_without_entries_have_no_entries_key() -> None:
    refs = [TaskRef(JOB, 0, 1, b"s"), TaskRef(JobId(5), 0, 1, b"t")]
    assert "entries" not in encode(Tasks(refs))
    back = round_trip(Tasks(refs))
    assert [r.entry for r in back.tasks] == [None, None]
    mixed = round_trip(Tasks([TaskRef(JOB, 0, 1, b"s", "x"), TaskRef(JobId(5), 0, 1, b"t")]))
    assert [r.entry for r in mixed.tasks] == ["x", None]


def test_a_message_from_a_manager_without_these_keys_still_reads() -> None:
    old = {"t": "tasks", "tasks": [[4, 0, 1, b"s"]],
           "specs": {"4": {"command": ["x"], "indexes": [[0, 1]]}}}
    back = decode_from_manager(msgpack.unpackb(msgpack.packb(old, use_bin_type=True), raw=False))
    assert isinstance(back, Tasks) and back.tasks[0].entry is None
    assert (back.specs[JOB].stdout, back.specs[JOB].stderr) == (None, None)


@pytest.mark.parametrize("entries", [["a"], "a", [1, 2], None])
def test_malformed_entries_are_refused_whole(entries: object) -> None:
    raw = {"t": "tasks", "tasks": [[4, 0, 1, b"s"], [4, 1, 1, b"t"]], "entries": entries}
    if entries is None:
        assert isinstance(decode_from_manager(raw), Tasks)
        return
    with pytest.raises(WireError, match="malformed 'tasks'"):
        decode_from_manager(raw)
