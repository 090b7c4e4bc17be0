"""Waiting for a job with a live progress bar (rate and ETA)."""

from __future__ import annotations

import time
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from tiercel.cli.common import console
from tiercel.client import Job


def wait_with_progress(job: Job, *, show: bool = True, timeout: float | None = None) -> Job:
    if not show:
        return job.wait(timeout=timeout)
    total = int(job.data["total"])
    with Progress(
        TextColumn("[bold]job {task.fields[job]}[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TextColumn("[cyan]{task.fields[rate]}[/]"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
        refresh_per_second=8,
    ) as bar:
        task = bar.add_task("wait", total=total, job=job.id, detail="", rate="")
        started = time.monotonic()
        first_done: list[float] = []

        def update(data: dict[str, Any]) -> None:
            finished = data["done"] + data["failed"] + data["cancelled"]
            if finished and not first_done:
                first_done.append(time.monotonic())
            elapsed = time.monotonic() - started
            rate = f"{finished / elapsed:,.0f} tasks/s" if elapsed > 0.5 and finished else ""
            parts = [f"{data['running']} running"]
            if data["failed"]:
                parts.append(f"[red]{data['failed']} failed[/]")
            if data["cancelled"]:
                parts.append(f"[magenta]{data['cancelled']} cancelled[/]")
            if data.get("waiting"):
                parts.append(f"[yellow]{data['waiting']}[/]")
            bar.update(task, completed=finished, detail=", ".join(parts), rate=rate)

        return job.wait(timeout=timeout, progress=update, poll=0.2)
