"""First come, first served: the default order, always loaded.

The pipeline already breaks every tie by submission time, so FCFS itself has
no key of its own to add; listing it makes the order explicit in a queue.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tiercel.core.policies.args import unknown_args
from tiercel.core.policy import Group, Snapshot
from tiercel.core.problems import Problem


class Fcfs:
    name = "fcfs"
    submission_order = True  # its key is the tie-break the pipeline always applies

    @staticmethod
    def create(args: Mapping[str, Any]) -> Fcfs | Problem:
        return unknown_args(args, "fcfs", ()) or Fcfs()

    def key(self, group: Group, snap: Snapshot) -> float:
        return group.submitted
