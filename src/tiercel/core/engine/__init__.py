"""The task state machine: events in, effects out (see ``machine`` for its rules).

``machine`` holds the Engine and its transitions, ``placement`` where waiting tasks go (sites,
reservations, dispatch), ``views`` what placement and ``explain`` read of its state, ``state`` that
state's records, ``effects`` what the engine asks the shell to do.
"""

from tiercel.core.engine.effects import Effect, JobEnded, KillTasks, Persist, Refused, RunCleanup, SendTasks
from tiercel.core.engine.machine import DEFAULT_QUEUE, Engine
from tiercel.core.engine.views import Explanation

__all__ = ["DEFAULT_QUEUE", "Effect", "Engine", "Explanation", "JobEnded", "KillTasks", "Persist", "Refused",
           "RunCleanup", "SendTasks"]
