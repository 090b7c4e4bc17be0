"""What both stores share: how outputs are packed, and how a job's attempt rows restore it.

The SQL differs between SQLite and PostgreSQL; the meaning of the rows does not, so it lives
here once.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

from tiercel.core.model import Outcome, Restored, RestoredTask

_RAW, _ZLIB = b"\x00", b"\x01"
COMPRESS_ABOVE = 512


def pack_output(data: bytes) -> bytes | None:
    """An output as stored: nothing when empty, zlib when large and it helps, else as it is."""
    if not data:
        return None
    if len(data) > COMPRESS_ABOVE:
        packed = zlib.compress(data, 1)
        if len(packed) < len(data):
            return _ZLIB + packed
    return _RAW + data


def unpack_output(blob: bytes | memoryview | None) -> bytes:
    if not blob:
        return b""
    blob = bytes(blob)
    return zlib.decompress(blob[1:]) if blob[:1] == _ZLIB else blob[1:]


def restore(finals: Iterable[tuple[int, str]], unsettled: Iterable[tuple[int, int, int]]) -> Restored:
    """A job's state from its rows: ``finals`` (index, outcome) of final attempts, in index order,
    and ``unsettled`` (index, attempts so far, failures so far) of tasks with no final attempt."""
    restored = Restored()
    spans = restored.settled
    for index, outcome in finals:
        if spans and spans[-1][1] == index:
            spans[-1] = (spans[-1][0], index + 1)
        elif not spans or spans[-1][1] < index:
            spans.append((index, index + 1))
        else:
            continue  # a second final row for one task cannot count twice
        if outcome == Outcome.DONE.value:
            restored.done += 1
        else:
            restored.failed += 1
    for index, attempts, failures in unsettled:
        restored.unsettled[int(index)] = RestoredTask(int(attempts), int(failures or 0))
    return restored
