"""``tiercel``: submit, watch, cancel and collect many-task jobs.

The group and, in ``COMMANDS``, every command it offers: the command line's table of contents.
The commands live in ``tiercel.cli.commands`` and never import this module, so importing runs
one way, from here down.
"""

from __future__ import annotations

import click

from tiercel import __version__
from tiercel.cli.commands import (
    controls,
    daemons,
    history,
    jobflow,
    jobs,
    managers,
    run,
    sim,
    sites,
    tokens,
    users,
    workers,
    workflow,
)
from tiercel.cli.common import CONTEXT_SETTINGS


@click.group(context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, prog_name="tiercel")
def cli() -> None:
    """Tiercel: run thousands to millions of tasks on whatever you have.

    \b
    On a laptop, one command does it all:
      tiercel run --workers 4 --queue 1000 -- ./runtask.sh
    With a manager and workers:
      tiercel manager &                      # prints the URL and token files
      tiercel worker --slots 8 &             # on each machine (set TIERCEL_URL)
      tiercel submit --queue 10000 -- ~/runtask.sh
      tiercel wait 1; tiercel logs 1 --task 7

    Every command reads TIERCEL_URL and TIERCEL_TOKEN.
    """


# Grouped by topic for the reader; 'tiercel --help' lists them by name, as click does.
COMMANDS: tuple[click.Command, ...] = (
    # a job, from submission to its output
    jobs.submit, jobs.status, jobs.wait, jobs.cancel, jobs.logs, jobs.explain,
    # changing a job after submitting it
    controls.hold, controls.release, controls.update, controls.retry,
    # jobs that wait for one another, submitted from one file
    workflow.workflow,
    # jobs that ended: what they did, and dropping their outputs
    history.history, history.forget,
    # one job on this machine, manager and workers included
    run.run,
    # CSF4's two-step flow over RSL and XML job descriptions
    jobflow.job,
    # where tasks run and what orders them
    workers.workers, sites.sites, sites.queues, sites.reserve,
    # scheduling policies, and replaying a trace through them
    sim.policies, sim.simulate,
    # the long-running processes, and the store they keep
    daemons.manager, daemons.worker, managers.managers, managers.store,
    # administration
    tokens.token, users.user,
    # the shell's completion of tiercel's commands and options
    history.completion,
)

for command in COMMANDS:
    cli.add_command(command)


def main() -> None:
    cli(prog_name="tiercel")
