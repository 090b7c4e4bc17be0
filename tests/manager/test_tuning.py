"""The manager's interpreter settings once it has started (server.tune_interpreter)."""

from __future__ import annotations

import gc
import sys

from tiercel import server


def test_the_manager_collects_young_objects_less_often_and_hands_the_gil_over_sooner() -> None:
    interval, thresholds = sys.getswitchinterval(), gc.get_threshold()
    try:
        server.tune_interpreter()
        assert sys.getswitchinterval() == server.SWITCH_INTERVAL < 0.005  # Python's default is 5 ms
        assert gc.get_threshold()[0] == server.GC_YOUNG
        assert gc.get_freeze_count() > 0  # what start-up built is left out of every collection
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
        sys.setswitchinterval(interval)
