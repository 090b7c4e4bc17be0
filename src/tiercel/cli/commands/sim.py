"""``tiercel simulate`` and ``tiercel policies``."""

from __future__ import annotations

import gzip
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from tiercel.cli.common import CONTEXT_SETTINGS, UserError, console, errors, json_option, make_table, print_json
from tiercel.config import load_queues
from tiercel.core import sim
from tiercel.core.problems import Problem
from tiercel.core.sim import SimJob, estimates, renumber_duplicates
from tiercel.core.sim.swf import SKIP_REASONS, Skipped, SwfJob, parse_line
from tiercel.queues import Queue, single


def read_swf(path: Path, on_error: str) -> Iterator[SwfJob | Skipped | Problem]:
    opener = gzip.open if path.suffix == ".gz" else open
    lineno = 0
    try:
        with opener(path, "rt", encoding="utf-8", errors="replace") as f:
            for lineno, line in enumerate(f, 1):
                item = parse_line(line, lineno)
                if item is None:
                    continue
                if isinstance(item, Problem) and on_error == "stop":
                    raise UserError(f"{path}: {item.message()} (use --on-error skip to pass over bad lines)")
                yield item
    # a damaged .gz shows itself only while it is read, and not as an OSError: gzip raises
    # EOFError for a file cut short (which click would print as a bare "Aborted!") and
    # zlib.error for a corrupt block
    except EOFError:
        raise UserError(f"trace: {str(path)!r} is cut short: its gzip data ends without the end marker, "
                        f"{_after(lineno)} (was it copied or downloaded completely?)") from None
    except zlib.error as exc:
        raise UserError(f"trace: {str(path)!r} is damaged: its gzip data cannot be decompressed "
                        f"{_after(lineno)} ({exc})") from None
    except gzip.BadGzipFile as exc:
        raise UserError(f"trace: {str(path)!r} is not a gzip file, though its name ends in .gz ({exc})") from None
    except OSError as exc:
        raise UserError(f"trace: {str(path)!r} cannot be read: {exc.strerror or exc}") from None


def _after(lineno: int) -> str:
    return f"after line {lineno:,}" if lineno else "before its first line"


@click.command(context_settings=CONTEXT_SETTINGS)
@click.option("--trace", type=click.Path(path_type=Path, dir_okay=False), required=True, metavar="FILE",
              help="Workload trace (Standard Workload Format, .swf or .swf.gz).")
@click.option("--format", "fmt", type=click.Choice(["swf"]), default="swf", show_default=True)
@click.option("--slots", type=click.IntRange(1), required=True, metavar="N", help="Slots of the simulated machine.")
@click.option("--queue-config", type=click.Path(path_type=Path, dir_okay=False), metavar="FILE",
              help="TOML with [queues.NAME] policies = [...]: its default queue is simulated.")
@click.option("--policy", "-p", "policy_list", metavar="A,B",
              help="Policies in order instead, e.g. fairshare,backfill.")
@click.option("--estimate-factor", type=click.FloatRange(1.0), default=1.0, show_default=True,
              help="Walltime estimate = run time × this, for a job the trace gives no requested time "
                   "(a requested time is the estimate, raised to the run time if below it).")
@click.option("--estimate-noise", type=click.FloatRange(0.0), default=0.0, show_default=True,
              help="Inflate each estimate made from the run time by a random factor in [1, 1 + this] "
                   "(reproducible with --seed).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for --estimate-noise.")
@click.option("--time-scale", type=click.FloatRange(0.01, 100), default=1.0, show_default=True,
              help="Multiply submit times (below 1 raises the load).")
@click.option("--limit", type=click.IntRange(1), metavar="N", help="Only the first N jobs.")
@click.option("--on-error", type=click.Choice(["skip", "stop"]), default="stop", show_default=True,
              help="What to do with a malformed trace line.")
@json_option
def simulate(trace: Path, fmt: str, slots: int, queue_config: Path | None, policy_list: str | None,
                 estimate_factor: float, estimate_noise: float, seed: int, time_scale: float, limit: int | None,
                 on_error: str, as_json: bool) -> None:
    """Replay a workload trace through a queue's policies in virtual time.

    Prints utilisation, mean wait, mean and 95th-percentile bounded slowdown
    (threshold 10 s) and makespan. The same inputs and seed give the same numbers.
    """
    queue = _queue(queue_config, policy_list)
    jobs, bad, unreplayable = _read_jobs(trace, on_error, time_scale, limit)
    for problem in bad[:5]:
        errors.print(f"[yellow]skipped[/] {escape(problem.message())}")
    if len(bad) > 5:
        errors.print(f"[yellow]skipped[/] {len(bad) - 5} more malformed lines")
    _say_unreplayable(unreplayable)
    jobs, renumbered = renumber_duplicates(jobs)
    _say_renumbered(renumbered)
    jobs = estimates(jobs, estimate_factor, estimate_noise, seed)
    started = time.perf_counter()
    r = sim.simulate(jobs, slots, queue.chain)
    elapsed = time.perf_counter() - started
    result = {
        "trace": str(trace), "slots": slots, "policies": list(queue.policies), "jobs": r.jobs,
        "skipped_too_big": r.skipped, "skipped_malformed": len(bad),
        "skipped_not_replayable": sum(unreplayable.values()),
        "skipped_not_replayable_by_reason": {k: unreplayable[k] for k in SKIP_REASONS if unreplayable[k]},
        "renumbered": sum(len(new) for new in renumbered.values()), "utilisation": r.utilisation,
        "mean_wait": r.mean_wait, "mean_bounded_slowdown": r.mean_bounded_slowdown,
        "p95_bounded_slowdown": r.p95_bounded_slowdown, "makespan": r.makespan,
        "simulated_seconds": elapsed, "jobs_per_second": r.jobs / elapsed if elapsed else 0.0,
    }
    if as_json:
        print_json(result)
        return
    table = Table(box=None, pad_edge=False, show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    for label, value in (
        ("policies", ", ".join(queue.policies)), ("jobs", f"{r.jobs:,}"),
        ("skipped (larger than the machine)", f"{r.skipped:,}"),
        ("skipped (cannot be replayed)", f"{result['skipped_not_replayable']:,}"),
        ("utilisation", f"{r.utilisation:.1%}"),
        ("mean wait", f"{r.mean_wait:,.0f} s"), ("mean bounded slowdown", f"{r.mean_bounded_slowdown:.2f}"),
        ("p95 bounded slowdown", f"{r.p95_bounded_slowdown:.2f}"), ("makespan", f"{r.makespan:,.0f} s"),
        ("simulated in", f"{elapsed:.2f} s ({result['jobs_per_second']:,.0f} jobs/s)"),
    ):
        table.add_row(label, value)
    console.print(table)


def _read_jobs(trace: Path, on_error: str, time_scale: float,
               limit: int | None) -> tuple[list[SimJob], list[Problem], Counter[str]]:
    """The trace's jobs (up to ``limit``), its malformed lines, and how many jobs it cannot replay, by reason."""
    jobs: list[SimJob] = []
    bad: list[Problem] = []
    unreplayable: Counter[str] = Counter()
    for item in read_swf(trace, on_error):
        if isinstance(item, Problem):
            bad.append(item)
        elif isinstance(item, Skipped):
            unreplayable[item.reason] += 1
        else:
            jobs.append(SimJob(item.id, item.user, item.submit * time_scale, item.runtime, item.procs,
                               item.requested_time or 0.0))
            if limit is not None and len(jobs) >= limit:
                break
    return jobs, bad, unreplayable


def _say_unreplayable(unreplayable: Counter[str]) -> None:
    if unreplayable:
        why = ", ".join(f"{unreplayable[k]:,} with {SKIP_REASONS[k]}" for k in SKIP_REASONS if unreplayable[k])
        total = sum(unreplayable.values())
        errors.print(f"[yellow]skipped[/] {total:,} job{'s' if total != 1 else ''} that cannot be replayed: {why}",
                     soft_wrap=True)


def _say_renumbered(renumbered: dict[int, list[int]]) -> None:
    if renumbered:
        count = sum(len(new) for new in renumbered.values())
        shown = ", ".join(f"{old} → {', '.join(map(str, new))}" for old, new in list(renumbered.items())[:5])
        more = f" and {len(renumbered) - 5:,} more numbers" if len(renumbered) > 5 else ""
        errors.print(f"[yellow]renumbered[/] {count:,} job{'s' if count != 1 else ''} reusing a job number of the "
                     f"trace, replayed as jobs of their own: {shown}{more}", soft_wrap=True)


def _queue(queue_config: Path | None, policy_list: str | None) -> Queue:
    if queue_config is not None and policy_list is not None:
        raise UserError("policy: give either --queue-config or --policy, not both")
    if queue_config is not None:
        queues = load_queues(queue_config)
        if isinstance(queues, Problem):
            raise UserError(queues.message())
        return next(q for q in queues.values() if q.default)
    names = [n.strip() for n in (policy_list or "fcfs").split(",") if n.strip()]
    queue = single(names)
    if isinstance(queue, Problem):
        raise UserError(queue.message())
    return queue


@click.command(context_settings=CONTEXT_SETTINGS)
@json_option
def policies(as_json: bool) -> None:
    """List scheduling policies: built-in and installed plug-ins, with their load status."""
    from tiercel.plugins import listing

    rows = listing()
    if as_json:
        print_json([r.__dict__ for r in rows])
        return
    table = make_table("NAME", "FROM", "STATUS", "WHAT IT DOES", wrap=("STATUS", "WHAT IT DOES"))
    for r in rows:
        status = "[green]ok[/]" if r.status == "ok" else f"[red]{escape(r.status)}[/]"
        table.add_row(r.name, r.origin, status, r.description)
    console.print(table)
