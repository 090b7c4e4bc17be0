"""Trace-driven simulation: the manager's engine and policies over a workload, in virtual time.

    workload  the jobs a trace holds (SimJob), their walltime estimates, distinct numbers
    swf       reading the Standard Workload Format, one line at a time (the caller opens the file)
    clock     the virtual clock: a queue of future events
    driver    simulate(): the engine fed with arrivals and task ends, as the manager feeds it
    metrics   what a replay measured

Pure like the rest of core: no file is opened and no clock is read here.
"""

from tiercel.core.sim.driver import simulate
from tiercel.core.sim.metrics import BOUND, SimResult
from tiercel.core.sim.workload import SimJob, estimates, renumber_duplicates

__all__ = ["BOUND", "SimJob", "SimResult", "estimates", "renumber_duplicates", "simulate"]
