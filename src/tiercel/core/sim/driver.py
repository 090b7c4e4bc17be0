"""A trace-driven simulator: the manager's own engine, in virtual time.

The simulated machine is a worker connected to an ``Engine`` with as much credit as it
has slots. Each job arrives as ``add_job`` at its submit time; whenever something
arrived or ended and slots are free, ``dispatch`` places work as it does in the manager:
the site choice, the queue's chain with the requirements and reservations checks every
live queue runs, fair-share usage as the engine keeps it. Every task handed out ends at
the dispatch time plus the job's recorded run time, as a ``report`` carrying the seal it
was handed out with, and the machine gives its slots back as credit. Nothing reads a
clock: the clock jumps from event to event, a month of workload replays in seconds, and
the same inputs give the same numbers.

A job runs for its recorded run time whatever its estimate: estimates() never makes one
shorter, and the trace says how long the job ran, not that it was killed."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from tiercel.core.engine import Engine, Refused, SendTasks
from tiercel.core.model import JobId, JobSpec, Outcome, Report, TaskRef, UserName, WorkerId, WorkerInfo
from tiercel.core.pipeline import Chain
from tiercel.core.ranges import IndexRanges
from tiercel.core.seal import Seal
from tiercel.core.sim.clock import EventQueue
from tiercel.core.sim.metrics import SimResult, measure
from tiercel.core.sim.workload import SimJob

MACHINE = WorkerId("machine")
# A trace's job is rigid: one task holding all its processors at once.
_ONE_TASK = IndexRanges(((0, 1),))
_COMMAND = ("simulated",)
# At one instant, what ends is settled before what arrives is queued, then one cycle runs:
# the order the simulator was first validated with.
_END, _ARRIVE = 0, 1


@dataclass(frozen=True, slots=True)
class _End:
    """A task the machine was handed, ending."""

    task: TaskRef
    started: float
    cpus: int


def simulate(jobs: Iterable[SimJob], slots: int, chain: Chain, *, half_life: float = 86400.0) -> SimResult:
    """Replay ``jobs``, whose numbers must be distinct (see renumber_duplicates), on ``slots`` slots."""
    arrivals = sorted(jobs, key=lambda j: (j.submit, j.id))
    # the engine knows jobs by number: two alike would silently become one (their waits mixed up)
    if len({j.id for j in arrivals}) != len(arrivals):
        reused = sorted(n for n, times in Counter(j.id for j in arrivals).items() if times > 1)
        raise ValueError(f"job numbers must be distinct, but {reused[:5]} are used more than once")
    runnable = [j for j in arrivals if j.procs <= slots]
    skipped = len(arrivals) - len(runnable)
    by_id = {j.id: j for j in runnable}
    first = runnable[0].submit if runnable else 0.0

    # The seal's key guards nothing here, but the engine checks reports against it all the same.
    engine = Engine(queues={chain.name: chain}, half_life=half_life, seal=Seal(b"simulated"))
    engine.connect(MACHINE, WorkerInfo("machine", "simulated", slots), first, credit=slots)
    machine = engine.workers[MACHINE]
    events: EventQueue[SimJob | _End] = EventQueue()
    for j in runnable:
        events.at(j.submit, j, _ARRIVE)
    start: dict[int, float] = {}
    waiting = 0  # tasks queued in the engine: with none, or no free slot, a cycle could start nothing
    cycles = 0
    while events:
        now = events.next_time()
        for event in events.due(now):
            if isinstance(event, _End):
                t = event.task
                done = Report(t.job, t.index, t.attempt, Outcome.DONE, 0, event.started, now, seal=t.seal)
                _check(engine.report(MACHINE, [done], now))
                engine.add_credit(MACHINE, event.cpus)
            else:
                engine.add_job(JobId(event.id), _spec(event, chain.name), UserName(event.user), now)
                waiting += 1
        if not waiting or machine.credit <= 0:
            continue
        cycles += 1
        for effect in engine.dispatch(now):
            if isinstance(effect, SendTasks):
                for task in effect.tasks:
                    job = by_id[task.job]
                    start[job.id] = now
                    waiting -= 1
                    events.at(now + job.runtime, _End(task, now, job.procs), _END)
    never = [j.id for j in runnable if j.id not in start]
    if never:
        raise ValueError(f"{len(never)} job(s) never started (first: job {never[0]}): "
                         f"the queue's policies placed nothing more once the machine was idle")
    return measure(runnable, start, slots, first, skipped, cycles)


def _spec(job: SimJob, queue: str) -> JobSpec:
    return JobSpec(_COMMAND, _ONE_TASK, cpus=job.procs, walltime=job.estimate, queue=queue)


def _check(effects: Iterable[object]) -> None:
    for effect in effects:
        if isinstance(effect, Refused):  # the driver's own bookkeeping is wrong: stop rather than mis-measure
            raise RuntimeError(f"the engine refused the simulated machine's reports: {effect.tasks[:3]}")
