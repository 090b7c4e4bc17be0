"""How many pilots a site starts: enough for the waiting work, never more than allowed."""

from __future__ import annotations

import pytest

from tiercel.sites.pilot import pilots_wanted


@pytest.mark.parametrize(("waiting", "free", "alive", "pending", "slots", "lo", "hi", "want"), [
    (0, 0, 0, 0, 4, 0, 8, 0),  # no work, no pilots
    (0, 0, 0, 0, 4, 2, 8, 2),  # min_pilots kept alive
    (10, 0, 0, 0, 4, 0, 8, 3),  # ceil(10 / 4)
    (10_000, 0, 0, 0, 4, 0, 8, 8),  # never more than max_pilots
    (10_000, 0, 8, 0, 4, 0, 8, 0),  # all alive already
    (10, 0, 3, 3, 4, 0, 8, 0),  # three already queued in the batch system cover it
    (10, 8, 2, 0, 4, 0, 8, 1),  # free slots of connected pilots count
])
def test_pilots_wanted(waiting: int, free: int, alive: int, pending: int, slots: int, lo: int, hi: int,
                       want: int) -> None:
    assert pilots_wanted(waiting_slots=waiting, free_slots=free, alive=alive, pending=pending, slots=slots,
                         min_pilots=lo, max_pilots=hi) == want
