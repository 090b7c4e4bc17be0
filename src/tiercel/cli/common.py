"""What every command shares: the client, error handling, output helpers."""

from __future__ import annotations

import functools
import json
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tiercel.client_reach import TiercelError

if TYPE_CHECKING:
    from tiercel.client import Client

F = TypeVar("F", bound=Callable[..., Any])

CONTEXT_SETTINGS: dict[str, Any] = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

# Piped output is read by scripts and people alike: let tables keep their full width there.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
errors = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 200)


class UserError(click.ClickException):
    """Printed as one line, exit status 2, never a traceback."""

    exit_code = 2

    def show(self, file: Any = None) -> None:
        errors.print(f"[bold red]error:[/] {escape(self.message)}", soft_wrap=True)


def friendly(fn: F) -> F:
    """Turn TiercelError into a clean one-line error."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except TiercelError as exc:
            raise UserError(str(exc)) from None

    return wrapper  # type: ignore[return-value]


URL_HELP = ("Manager URL, or several separated by commas (an active manager and its standbys): requests go to "
            "the active one, wherever it is (default: $TIERCEL_URL, else the local manager).")
url_option = click.option("--url", envvar="TIERCEL_URL", metavar="URL[,URL]", help=URL_HELP)
token_option = click.option("--token", envvar="TIERCEL_TOKEN", metavar="TOKEN", show_envvar=True,
                            help="Bearer token (default: the local manager's admin.token).")
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


def client(url: str | None, token: str | None) -> Client:
    from tiercel.client import Client  # the HTTP client's import (40 ms) only for commands that talk to a manager

    return Client(url, token)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


def age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


STATE_STYLE = {"queued": "yellow", "running": "cyan", "done": "green", "failed": "red", "cancelled": "magenta"}


def make_table(*columns: str, right: tuple[str, ...] = (), wrap: tuple[str, ...] = ()) -> Table:
    """A plain aligned table: bold headers, two spaces between columns; ``right`` columns are numbers,
    only ``wrap`` columns may wrap (the others never cut their values)."""
    t = Table(box=None, pad_edge=False, header_style="bold", padding=(0, 2, 0, 0))
    for col in columns:
        t.add_column(col, justify="right" if col in right else "left", no_wrap=col not in wrap)
    return t


def jobs_table(jobs: list[dict[str, Any]], show_owner: bool) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold", padding=(0, 1, 0, 0))
    table.add_column("ID", no_wrap=True, min_width=2)
    table.add_column("NAME", no_wrap=True, max_width=28, overflow="ellipsis")
    if show_owner:
        table.add_column("OWNER", no_wrap=True, max_width=16, overflow="ellipsis")
    table.add_column("STATE", no_wrap=True, min_width=9)
    # numbers are never cut: the name gives way first when the terminal is narrow
    for col in ["TASKS", "QUEUED", "RUNNING", "DONE", "FAILED", "CANCELLED", "AGE"]:
        table.add_column(col, justify="right", no_wrap=True, min_width=len(col))
    now = time.time()
    for j in jobs:
        name = j["name"] or " ".join(j["command"])[:30]
        state = "held" if j.get("held") and j["state"] in ("queued", "running") else j["state"]
        style = STATE_STYLE.get(state, "yellow" if state == "held" else "")
        table.add_row(
            str(j["id"]), name, *([j["owner"]] if show_owner else []), f"[{style}]{state}[/]",
            str(j["total"]), str(j["queued"]), str(j["running"]), str(j["done"]), str(j["failed"]),
            str(j["cancelled"]), age(now - j["submitted"]),
        )
    return table


def when(ts: float) -> str:
    """A time stamp as a local date and time, as reservations and tokens show them."""
    import datetime

    return datetime.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def exit_status(data: dict[str, Any]) -> int:
    """What ``wait`` and ``run`` exit with: 0 only when every task of the job succeeded."""
    return 0 if data["state"] == "done" else 1


def print_summary(data: dict[str, Any], wall: float | None = None) -> None:
    color = {"done": "green", "failed": "red", "cancelled": "magenta"}.get(data["state"], "")
    line = (f"job {data['id']} [{color}]{data['state']}[/]: {data['done']} done, {data['failed']} failed, "
            f"{data['cancelled']} cancelled of {data['total']}")
    if wall is not None and wall > 0:
        line += f" in {wall:.2f}s ({data['total'] / wall:,.0f} tasks/s)"
    console.print(line)
    if data["failed"]:
        console.print(f"see failures with: tiercel logs {data['id']} --failed --stderr")
