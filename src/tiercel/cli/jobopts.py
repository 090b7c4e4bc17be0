"""The job options that ``tiercel submit`` and ``tiercel run`` share, and how they merge with a job file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from tiercel.cli.common import UserError
from tiercel.core.problems import Problem


def job_fields(
    queue: int | None, array: str | None, requires: tuple[str, ...], cleanup: str | None, retries: int | None,
    walltime: str | None, env: tuple[str, ...], cwd: str | None, name: str | None, no_index: bool,
    cpus: int | None, memory: str | None, priority: int | None, file: Path | None, command: tuple[str, ...],
    queue_name: str | None = None, reservation: str | None = None, site: str | None = None,
    max_running: int | None = None, max_failures: int | None = None, hold: bool = False,
    after: tuple[str, ...] = (), on_dependency_failure: str | None = None,
    each_line: Path | None = None, each_json: Path | None = None, stdout: str | None = None,
    stderr: str | None = None, inputs: tuple[str, ...] = (), outputs: tuple[str, ...] = (),
    on_missing_input: str | None = None, *, check: bool = True,
) -> dict[str, Any]:
    """Merge a job file with the command line (the command line wins) and validate locally.

    Without ``check`` a job from the command line alone is left for the manager to check (it says
    the same, in the same words): submitting then loads no parser of jobs (pydantic) at all."""
    # the job's parsers (pydantic) are loaded only when a job is checked here, or read from a file
    data: dict[str, Any] = {}
    if file is not None:
        from tiercel.jobspec.files import load_job_file

        loaded = load_job_file(file)
        if isinstance(loaded, Problem):
            raise UserError(loaded.message())
        data.update(loaded)
    sweep = [(key, path) for key, path in (("each_line", each_line), ("each_json", each_json)) if path is not None]
    if len(sweep) > 1:
        raise UserError("--each-line: cannot be given together with --each-json (choose one)")
    if sweep:
        from tiercel.jobspec.files import SWEEPS, read_json_entries, read_lines

        key, path = sweep[0]
        for other, given in (("--queue", queue), ("--array", array)):
            if given is not None:
                raise UserError(f"--{key.replace('_', '-')}: cannot be given together with {other}: "
                                f"the job has one task per {SWEEPS[key]} of the file")
        entries = read_lines(path) if key == "each_line" else read_json_entries(path)
        if isinstance(entries, Problem):
            raise UserError(entries.message())
        data["entries"] = entries
        data.pop("queue", None)
        data.pop("array", None)
    elif queue is not None or array is not None:
        data.pop("entries", None)  # the command line's count wins over a job file's sweep
    if command:
        # One word holding spaces or shell syntax ('cd ~/x && ./run.sh') is a command line for
        # /bin/sh -c, as the README says; a plain program and its arguments run without a shell.
        one = command[0]
        shell_line = len(command) == 1 and any(c in one for c in " \t\n;&|<>()$`*?[]{}~'\"\\")
        data["command"] = one if shell_line else list(command)
    for key, value in (("queue", queue), ("array", array), ("cleanup", cleanup), ("retries", retries),
                       ("walltime", walltime), ("cwd", cwd), ("name", name), ("cpus", cpus),
                       ("memory", memory), ("priority", priority), ("queue_name", queue_name),
                       ("reservation", reservation), ("site", site), ("max_running", max_running),
                       ("max_failures", max_failures), ("stdout", stdout), ("stderr", stderr)):
        if value is not None:
            data[key] = value
    if queue is not None:
        data.pop("array", None)
    if array is not None:
        data.pop("queue", None)
    if requires:
        data["requires"] = [t for item in requires for t in item.split(",") if t]
    if env:
        if not isinstance(data.get("env", {}), dict):
            raise UserError(f"env: {data['env']!r} in the job file must be a table of KEY = \"VALUE\"")
        pairs = dict(data.get("env", {}))
        for item in env:
            key, eq, value = item.partition("=")
            if not eq or not key:
                raise UserError(f"env: {item!r} must be written KEY=VALUE")
            pairs[key] = value
        data["env"] = pairs
    if no_index:
        data["append_index"] = False
    if hold:
        data["hold"] = True
    if after:
        data["after"] = [a for item in after for a in item.split(",") if a]
    if on_dependency_failure is not None:
        data["on_dependency_failure"] = on_dependency_failure
    if inputs:
        data["inputs"] = list(inputs)
    if outputs:
        data["outputs"] = list(outputs)
    if on_missing_input is not None:
        data["on_missing_input"] = on_missing_input
    if "command" not in data:
        raise UserError("command: is required: put it after '--' (tiercel submit --queue 10 -- ./task.sh) "
                        "or in the job file")
    if not check and file is None and each_line is None and each_json is None:
        return data
    from tiercel.jobspec.request import spec_from_mapping

    spec = spec_from_mapping(data)
    if isinstance(spec, Problem):
        raise UserError(spec.message())
    return data


def job_options(fn: Any) -> Any:
    options = [
        click.option("--queue", "-n", type=int, metavar="N", help="Run N tasks, indexes 0..N-1 (Kestrel's queue)."),
        click.option("--array", "-a", metavar="RANGES", help="Index ranges, e.g. 0-99,200-299 or 0-999:10."),
        click.option("--requires", "-r", multiple=True, metavar="TAG",
                     help="Tag a worker must have (repeat, or comma-separate)."),
        click.option("--cleanup", metavar="CMD", help="Run once on each worker that ran tasks, after the job."),
        click.option("--retries", type=int, metavar="K", help="Retry a failed task up to K times."),
        click.option("--walltime", "-t", metavar="TIME", help="Kill a task after TIME (90s, 10m, 1h30m)."),
        click.option("--env", "-e", multiple=True, metavar="K=V", help="Set an environment variable (repeat)."),
        click.option("--cwd", metavar="DIR", help="Working directory of the tasks."),
        click.option("--name", metavar="NAME", help="A name to show in status."),
        click.option("--no-index", is_flag=True, help="Do not append the task index to the command."),
        click.option("--cpus", type=int, metavar="N", help="Slots each task takes (default 1)."),
        click.option("--memory", metavar="SIZE", help="Memory each task needs (512M, 4G)."),
        click.option("--priority", type=int, metavar="P", help="Higher runs first (-1000..1000)."),
        click.option("--queue-name", "-Q", metavar="NAME", help="The queue (see 'tiercel queues')."),
        click.option("--reservation", metavar="NAME", help="Run inside this advance reservation."),
        click.option("--site", metavar="NAME", help="Run on this site (default: the scheduler chooses; "
                                                    "see 'tiercel sites')."),
        click.option("--max-running", type=int, metavar="N",
                     help="Run at most N of the job's tasks at once (Slurm's --array=...%N); 'tiercel update' "
                          "changes it."),
        click.option("--max-failures", type=int, metavar="N",
                     help="Fail fast: once N tasks failed (after their retries), cancel the rest."),
        click.option("--hold", is_flag=True, help="Submit held: nothing starts until 'tiercel release JOB'."),
        click.option("--after", multiple=True, metavar="JOB[:KIND]",
                     help="Start once job JOB ended: KIND ok (all its tasks done; the default), any, notok (it "
                          "failed or was cancelled), or corr (task i once JOB's task i is done). Repeat for more."),
        click.option("--on-dependency-failure", type=click.Choice(["cancel", "wait"]), metavar="cancel|wait",
                     help="When a dependency can never be met: cancel the tasks waiting for it (the default), or "
                          "wait (its job may be retried)."),
        click.option("--each-line", type=click.Path(path_type=Path, dir_okay=False), metavar="FILE",
                     help="A task per line of FILE (UTF-8; not with --queue or --array): task i gets line i "
                          "(from 0) in TIERCEL_ENTRY, and as its argument in place of the index."),
        click.option("--each-json", type=click.Path(path_type=Path, dir_okay=False), metavar="FILE",
                     help="A task per element of the JSON array in FILE: task i gets element i as compact JSON, "
                          "as with --each-line."),
        click.option("--stdout", metavar="PATTERN",
                     help="Also write each task's stdout to a file where it runs (relative to its directory): "
                          "'out/{index}.txt' one per task; without {index} one for the job, each task's output "
                          "appended as it ends after a '==> task I ...' line. Placeholders {index}, {job}, "
                          "{index:05}. The manager keeps its copy too ('tiercel logs')."),
        click.option("--stderr", metavar="PATTERN",
                     help="The same for stderr; the same pattern as --stdout puts both in one file."),
        click.option("--input", "inputs", multiple=True, metavar="URL",
                     help="A file the tasks read, in Gfarm: 'gfarm:///data/sample_{index}.bam' one per task, "
                          "'gfarm:///ref/genome.fa' one every task reads (repeat). Tasks run where the replicas "
                          "are; each finds its inputs at the local paths in TIERCEL_INPUTS."),
        click.option("--output", "outputs", multiple=True, metavar="URL",
                     help="A file each task writes, put into Gfarm on the node where it ran: "
                          "'gfarm:///results/{index}.out' (repeat); the task writes it at the local path in "
                          "TIERCEL_OUTPUTS. 'tiercel job data JOB' lists them."),
        click.option("--on-missing-input", type=click.Choice(["fail", "refuse"]), metavar="fail|refuse",
                     help="An input that does not exist: its task fails, saying so (fail, the default), or the "
                          "manager refuses the job at submit (refuse)."),
        click.option("--file", "-f", type=click.Path(path_type=Path, dir_okay=False), metavar="FILE",
                     help="Job file: TOML [job] table, or a Kestrel .job file."),
    ]
    for opt in reversed(options):
        fn = opt(fn)
    return fn
