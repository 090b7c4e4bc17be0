"""The files a job's tasks put into Gfarm, each with the node it went to: what ``tiercel logs --data``
and ``tiercel job data`` list.

A worker names each output it put into Gfarm in the task's stderr (``tiercel: wrote gfarm://P on
NODE``, after the task's own lines, so never cut off); this reads them back from the settling
attempt of each task, as the manager keeps it, with no call to Gfarm: the list is there even while
Gfarm's metadata server is out of reach, and says where each file was written, not where copies
went since.
"""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from rich.table import Table

from tiercel.core.data import written


def gfarm_outputs(job: Any, task: int | None = None) -> list[dict[str, Any]]:
    """Each output of the job's done tasks: task index, URL and node (None: where Gfarm chose)."""
    return [{"task": t.index, "url": f"gfarm://{path}", "node": node}
            for t in job.outputs(task=task) if t.outcome == "done" for path, node in written(t.stderr)]


def outputs_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(box=None, pad_edge=False)
    for col in ("TASK", "URL", "NODE"):
        table.add_column(col, justify="right" if col == "TASK" else "left")
    for r in rows:
        table.add_row(str(r["task"]), escape(r["url"]), escape(r["node"] or "-"))
    return table
