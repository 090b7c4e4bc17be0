"""A task's files in Gfarm, around its run: inputs read into a directory of its own before it starts,
outputs put into Gfarm after it ends, both on the worker's own file-system node.

Inputs are read to local paths (``gfexport -h NODE``), not through a gfarm2fs mount: reading from
the node the task was placed on is then a fact, not a hope (a mount reads whichever replica Gfarm
picks, and Gfarm sees no client here as local to any node), and a replica that cannot be read there
is noticed before the task starts, so the task is given back to run elsewhere rather than failed.
"""

from __future__ import annotations

import os
import shutil
import tempfile

from tiercel.core.data import path_of
from tiercel.core.model import JobSpec, TaskRef
from tiercel.data import gfarm


class Staged:
    """The task's data directory, its inputs there, and where its outputs go."""

    def __init__(self, spec: JobSpec, ref: TaskRef) -> None:
        self.dir = tempfile.mkdtemp(prefix=f"tiercel-data-{ref.job}-{ref.index}-")
        self.inputs = [(path_of(u, ref.job, ref.index), "") for u in spec.inputs]
        self.inputs = [(p, os.path.join(self.dir, os.path.basename(p))) for p, _ in self.inputs]
        outs = [path_of(u, ref.job, ref.index) for u in spec.outputs]
        self.outputs = [(p, os.path.join(self.dir, os.path.basename(p))) for p in outs]

    def env(self, node: str | None) -> dict[str, str]:
        return {"TIERCEL_DATA_DIR": self.dir, "TIERCEL_DATA_NODE": node or "",
                "TIERCEL_INPUTS": " ".join(local for _, local in self.inputs),
                "TIERCEL_OUTPUTS": " ".join(local for _, local in self.outputs)}

    def fetch(self, node: str | None) -> str | None:
        """Read every input; None, or the first that could not be read (a line ``data.unreadable`` knows)."""
        for path, local in self.inputs:
            why = gfarm.fetch(path, local, node)
            if why is not None:
                return why
        return None

    def put(self, node: str | None) -> str | None:
        """Put every output into Gfarm; None, or why one could not be."""
        for path, local in self.outputs:
            if not os.path.exists(local):
                return f"output {os.path.basename(local)} was not written (for gfarm://{path})"
            why = gfarm.store(local, path, node)
            if why is not None:
                return why
        return None

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
