"""Batch-system adapters: pure builders and parsers, one module per system.

Each adapter (see ``base.Adapter``) turns an array request into the command and
script that submit it, one batched status query into rows of element states, and a
cancel into a command; it runs nothing. Every module holds a ``STATES`` table from
the system's own state codes to ``NativeState``, citing the vendor document it
follows. A code the table does not know but that is well formed reads as PENDING
with the code kept in the row's ``reason``; output that is not of the expected form
raises ``ParseError`` carrying the text.

The table below is the only registry: a site's ``kind`` names its adapter here.
"""

from __future__ import annotations

from tiercel.sites.adapters.base import Adapter
from tiercel.sites.adapters.htcondor import HTCondor
from tiercel.sites.adapters.lsf import Lsf
from tiercel.sites.adapters.pbs import Pbs
from tiercel.sites.adapters.sge import GridEngine
from tiercel.sites.adapters.slurm import Slurm

ADAPTERS: dict[str, type[Adapter]] = {
    "slurm": Slurm,
    "sge": GridEngine,
    "pbs": Pbs,
    "lsf": Lsf,
    "htcondor": HTCondor,
}

__all__ = ["ADAPTERS"]
