"""``tiercel``: submit, watch, cancel and collect many-task jobs.

The group and, in ``COMMANDS``, every command it offers: the command line's table of contents.
The commands live in ``tiercel.cli.commands`` and never import this module, so importing runs
one way, from here down.
"""

from __future__ import annotations

import importlib

import click

from tiercel import __version__
from tiercel.cli.common import CONTEXT_SETTINGS

# Grouped by topic for the reader; 'tiercel --help' lists them by name, as click does. Each is
# imported only when it runs (or --help lists it): 'tiercel status' never loads the manager's server.
COMMANDS: dict[str, str] = {
    # a job, from submission to its output
    "submit": "jobs", "status": "jobs", "wait": "jobs", "cancel": "jobs", "logs": "jobs", "explain": "jobs",
    # changing a job after submitting it
    "hold": "controls", "release": "controls", "update": "controls", "retry": "controls",
    # jobs that wait for one another, submitted from one file
    "workflow": "workflow",
    # jobs that ended: what they did, and dropping their outputs
    "history": "history", "forget": "history",
    # one job on this machine, manager and workers included
    "run": "run",
    # CSF4's two-step flow over RSL and XML job descriptions
    "job": "jobflow",
    # where tasks run and what orders them
    "workers": "workers", "sites": "sites", "peers": "sites", "queues": "sites", "reserve": "sites",
    # scheduling policies, and replaying a trace through them
    "policies": "sim", "simulate": "sim",
    # the long-running processes, and the store they keep
    "manager": "daemons", "worker": "daemons", "managers": "managers", "store": "managers",
    # administration
    "token": "tokens", "user": "users",
    # the shell's completion of tiercel's commands and options
    "completion": "history",
}


class LazyGroup(click.Group):
    """The tiercel group: a command's module is imported when that command is asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = COMMANDS.get(cmd_name)
        if module is None:
            return None
        command = getattr(importlib.import_module(f"tiercel.cli.commands.{module}"), cmd_name)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=LazyGroup, context_settings=CONTEXT_SETTINGS)
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


def main() -> None:
    cli(prog_name="tiercel")
