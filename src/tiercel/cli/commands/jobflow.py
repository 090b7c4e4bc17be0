"""``tiercel job create/submit/data``: CSF4's two-step flow over GT2 RSL and GT4 XML job descriptions.

``create`` checks a description and keeps it under a name in the user's job directory;
``submit`` sends it to the manager and records the job id beside it; ``data`` waits for the job
and writes its output where the description says. The job directory is ``$TIERCEL_JOBS_DIR``,
else ``$XDG_DATA_HOME/tiercel/jobs``, else ``~/.local/share/tiercel/jobs``: one JSON file per
name, holding the description as written and as it will run. A description holds the user's
command lines, environment and paths, so the directory is kept 0700 and its files 0600.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import stat
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import click
from rich.markup import escape

from tiercel.cli.common import (
    CONTEXT_SETTINGS,
    UserError,
    age,
    client,
    console,
    errors,
    friendly,
    json_option,
    make_table,
    print_json,
    print_summary,
    token_option,
    url_option,
)
from tiercel.cli.gfarm_outputs import gfarm_outputs, outputs_table
from tiercel.cli.progress import wait_with_progress
from tiercel.client import WaitTimeout
from tiercel.core.problems import Problem
from tiercel.jobspec.desc import looks_like_xml, parse_description
from tiercel.jobspec.desc import standard_variables as globus_variables
from tiercel.jobspec.gram import MAX_DESCRIPTION_CHARS, JobDescription
from tiercel.jobspec.request import spec_from_mapping

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # the whole name: fullmatch ('$' would allow a final newline)
_FINISHED = ("done", "failed", "cancelled")
_DIR_MODE = 0o700
_FILE_MODE = 0o600


def jobs_dir() -> Path:
    env = os.environ.get("TIERCEL_JOBS_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "tiercel" / "jobs"


def private_jobs_dir(*, create: bool = False) -> Path:
    """The job directory, first made private to its user: mode 0700, every file in it 0600.

    Checked at every use rather than only when created: a directory made by hand, by an older
    Tiercel or under a lax umask may be readable by every local account, and is fixed (and the fix
    said on stderr) the first time it is used. Afterwards nothing is wrong, so nothing more is said.
    """
    path = jobs_dir()
    if create:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.mkdir(mode=_DIR_MODE)
            os.chmod(path, _DIR_MODE)  # exactly, whatever the umask took away
        except FileExistsError:
            pass
        except OSError as exc:
            raise UserError(f"cannot store job descriptions in {path}: {exc.strerror or exc} "
                            f"(set TIERCEL_JOBS_DIR to use another directory)") from None
    try:
        if path.is_dir():
            _make_private(path)
    except OSError as exc:
        raise UserError(f"cannot keep job descriptions in {path} private (directory mode 0700, files 0600): "
                        f"{exc.strerror or exc} (set TIERCEL_JOBS_DIR to a directory of your own)") from None
    return path


def _make_private(path: Path) -> None:
    was = stat.S_IMODE(path.stat().st_mode)
    if was != _DIR_MODE:
        os.chmod(path, _DIR_MODE)  # first, so no new file can be read through it while the rest are fixed
    files = 0
    with os.scandir(path) as entries:
        for entry in entries:
            # a symbolic link's target is not ours to change; the directory already hides it
            if not entry.is_file(follow_symlinks=False):
                continue
            if stat.S_IMODE(entry.stat(follow_symlinks=False).st_mode) != _FILE_MODE:
                os.chmod(entry.path, _FILE_MODE)
                files += 1
    if was != _DIR_MODE or files:
        fixed = [f"the directory to mode 0700 (was {was:04o})"] if was != _DIR_MODE else []
        fixed += [f"{files} file{'s' if files != 1 else ''} in it to mode 0600"] if files else []
        errors.print(f"[yellow]note:[/] {escape(str(path))}: set {' and '.join(fixed)}, so that no other account "
                     f"can read your job descriptions", soft_wrap=True)


def _checked_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise UserError(Problem("name", name, "must be 1 to 64 letters, digits, '.', '_' or '-', starting with a "
                                              "letter or digit").message())
    return name


def _record_path(name: str, *, create: bool = False) -> Path:
    checked = _checked_name(name)
    return private_jobs_dir(create=create) / f"{checked}.json"


def _load(name: str) -> dict[str, Any]:
    path = _record_path(name)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"name: {name!r} is not a job description here: create it with "
                        f"'tiercel job create --rsl FILE --name {name}' (see 'tiercel job list')") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot be read as a stored job description: {exc}") from None
    why = _invalid(record)
    if why:
        raise UserError(f"{path}: is not a stored job description ({why}); remove it, or replace it with "
                        f"'tiercel job create --replace'")
    return dict(record)


def _invalid(record: Any) -> str:
    """Why a stored record cannot be used (edited or damaged by hand), or '' when it can."""
    if not isinstance(record, dict) or not isinstance(record.get("request"), dict):
        return "no request in it"
    spec = spec_from_mapping(record["request"])
    if isinstance(spec, Problem):
        return spec.message()
    if not isinstance(record.get("job_id"), (int, type(None))) or isinstance(record.get("job_id"), bool):
        return f"job_id {record.get('job_id')!r} is not a job number"
    if not isinstance(record.get("created", 0), (int, float)):
        return f"created {record.get('created')!r} is not a time"
    return ""


def _save(record: dict[str, Any], *, replace: bool) -> Path:
    """Write atomically; without ``replace`` an existing name is refused, even under a race."""
    path = _record_path(record["name"], create=True)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{record['name']}.", suffix=".tmp")
    except OSError as exc:
        raise UserError(f"cannot store job descriptions in {path.parent}: {exc.strerror or exc} "
                        f"(set TIERCEL_JOBS_DIR to use another directory)") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            os.fchmod(f.fileno(), _FILE_MODE)  # mkstemp's 0600 less the umask: make it exactly 0600
            json.dump(record, f, indent=2)
            f.write("\n")
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # refuses an existing name
    except FileExistsError:
        raise UserError(f"name: {record['name']!r} already names a job description: choose another name, or "
                        f"replace it with 'tiercel job create --replace ...'") from None
    except OSError as exc:
        raise UserError(f"cannot store the job description as {path}: {exc.strerror or exc}") from None
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def _read_description(path: Path) -> str:
    try:
        size = path.stat().st_size
        if size > MAX_DESCRIPTION_CHARS * 4:
            raise UserError(f"{path}: is too large for a job description ({size} bytes)")
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{path}: is not UTF-8 text") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot be read: {exc.strerror or exc}") from None


def _describe(record: dict[str, Any]) -> str:
    req = record["request"]
    tasks = int(req.get("queue", 1))
    return f"{shlex.join(req['command'])} ({tasks} task{'s' if tasks != 1 else ''})"


@click.group(context_settings=CONTEXT_SETTINGS)
def job() -> None:
    """CSF4-style jobs: describe once in GT2 RSL or GT4 XML, submit by name, collect the output.

    \b
      tiercel job create --rsl job.rsl --name job1     # -rsl and -name work too
      tiercel job submit job1
      tiercel job data job1                            # waits, then writes stdout/stderr
    Descriptions are kept, readable by you only, in $TIERCEL_JOBS_DIR (default ~/.local/share/tiercel/jobs).
    """


@job.command("create", context_settings=CONTEXT_SETTINGS)
@click.option("--rsl", "-rsl", "rsl", type=click.Path(path_type=Path, dir_okay=False), metavar="FILE",
              help="A GT2 RSL description (a GT4 XML one is recognised by its leading '<').")
@click.option("--xml", "-xml", "xml", type=click.Path(path_type=Path, dir_okay=False), metavar="FILE",
              help="A GT4 (WS GRAM) XML job description.")
@click.option("--name", "-name", "name", required=True, metavar="NAME",
              help="The name to submit it by: letters, digits, '.', '_', '-'.")
@click.option("--replace", is_flag=True, help="Replace a description of the same name.")
@json_option
def create(rsl: Path | None, xml: Path | None, name: str, replace: bool, as_json: bool) -> None:
    """Check a job description and keep it under NAME for 'tiercel job submit'.

    $(HOME)-style substitutions (${GLOBUS_USER_HOME} in XML) are resolved now, from this
    environment. count=N makes a job array of N tasks (GRAM's jobType=multiple); each task
    finds its index in TIERCEL_TASK_INDEX. Attributes Tiercel cannot honour are refused by name.
    """
    _checked_name(name)
    if (rsl is None) == (xml is None):
        raise UserError("give the description with --rsl FILE or --xml FILE (one of them)")
    path = rsl or xml
    assert path is not None
    text = _read_description(path)
    if xml is not None and not looks_like_xml(text):
        raise UserError(f"{path}: does not start with '<', so it is not a GT4 XML description (RSL goes with --rsl)")
    env = dict(os.environ)
    env.setdefault("HOME", str(Path.home()))
    desc = parse_description(text, globus_variables(env))
    if isinstance(desc, Problem):
        raise UserError(f"{path}: {desc.message()}")
    record = _record(name, path, text, desc)
    spec = spec_from_mapping(record["request"])
    if isinstance(spec, Problem):
        raise UserError(f"{path}: {spec.message()}")
    stored = _save(record, replace=replace)
    if as_json:
        print_json(record)
    else:
        console.print(f"job description [bold]{escape(name)}[/]: {escape(_describe(record))}, kept in {stored}")


def _record(name: str, path: Path, text: str, desc: JobDescription) -> dict[str, Any]:
    return {
        "name": name,
        "kind": desc.kind,
        "source": str(path.resolve()),
        "text": text,
        "request": {**desc.request, "name": name},
        "stdout": desc.stdout,
        "stderr": desc.stderr,
        "created": time.time(),
        "job_id": None,
        "url": None,
        "submitted": None,
    }


@job.command("submit", context_settings=CONTEXT_SETTINGS)
@click.argument("name")
@click.option("--again", is_flag=True, help="Submit it even though it was submitted before (records the new id).")
@url_option
@token_option
@json_option
@friendly
def submit(name: str, again: bool, url: str | None, token: str | None, as_json: bool) -> None:
    """Submit the job description NAME to the manager; prints the job id."""
    record = _load(name)
    if record.get("job_id") is not None and not again:
        raise UserError(f"{name}: was already submitted as job {record['job_id']}: collect it with "
                        f"'tiercel job data {name}', or submit it once more with --again")
    with client(url, token) as c:
        submitted = c.submit(**record["request"])
        record.update(job_id=submitted.id, url=c.url, submitted=time.time())
    _save(record, replace=True)
    if as_json:
        print_json(submitted.data)
    else:
        total = int(submitted.data["total"])
        tasks = f"{total} task{'s' if total != 1 else ''}"
        console.print(f"submitted {escape(name)} as job [bold]{submitted.id}[/] ({tasks})")


@job.command("data", context_settings=CONTEXT_SETTINGS)
@click.argument("name")
@click.option("--no-wait", is_flag=True, help="Fail at once if the job is still running.")
@click.option("--timeout", type=float, metavar="SECONDS", help="Give up waiting after this long (exit status 124).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@url_option
@token_option
@json_option
@friendly
def data(name: str, no_wait: bool, timeout: float | None, quiet: bool, url: str | None, token: str | None,
         as_json: bool) -> None:
    """Wait for job NAME, then write its output where its description says.

    Standard output goes to the description's stdout file, standard error to its stderr file
    (relative names are taken from the current directory), or to NAME.stdout and NAME.stderr
    here when it names none. With count > 1 the tasks' outputs are concatenated in task
    order into the same file. Exit status 1 if any task failed.
    """
    record = _load(name)
    if record.get("job_id") is None:
        raise UserError(f"{name}: has not been submitted yet: submit it with 'tiercel job submit {name}'")
    job_id = int(record["job_id"])
    with client(url or record.get("url"), token) as c:
        found = c.job(job_id)
        if not found.finished and no_wait:
            d = found.data
            raise UserError(f"{name}: job {job_id} is still {d['state']} ({d['done'] + d['failed']} of "
                            f"{d['total']} tasks finished): wait for it with 'tiercel job data {name}'")
        try:
            found = wait_with_progress(found, show=not (quiet or as_json), timeout=timeout)
        except WaitTimeout as exc:
            errors.print(f"[yellow]timeout:[/] {exc}")
            raise click.exceptions.Exit(124) from None
        outputs = {s: c.request("GET", f"/v1/jobs/{job_id}/logs", params={"stream": s}).content
                   for s in ("stdout", "stderr")}
        in_gfarm = gfarm_outputs(found) if record["request"].get("outputs") else []
    written = _write_outputs(name, record, outputs)
    if as_json:
        print_json({"job": found.data, **{s: str(p) for s, p in written.items()}, "gfarm_outputs": in_gfarm})
    else:
        print_summary(found.data)
        for stream, path in written.items():
            console.print(f"{stream} written to {escape(str(path))} ({len(outputs[stream])} bytes)")
        if in_gfarm:
            console.print(f"written to Gfarm ({len(in_gfarm)} file{'s' if len(in_gfarm) != 1 else ''}):")
            console.print(outputs_table(in_gfarm))
    sys.exit(0 if found.state == "done" else 1)


def _write_outputs(name: str, record: dict[str, Any], outputs: dict[str, bytes]) -> dict[str, Path]:
    paths = {s: Path(record.get(s) or f"{name}.{s}") for s in ("stdout", "stderr")}
    if paths["stdout"].resolve() == paths["stderr"].resolve():
        # one file named for both: standard output, then standard error
        contents = {paths["stdout"]: outputs["stdout"] + outputs["stderr"]}
    else:
        contents = {paths[s]: outputs[s] for s in ("stdout", "stderr")}
    for path, body in contents.items():
        try:
            with open(path, "wb") as f:
                f.write(body)
        except OSError as exc:
            raise UserError(f"cannot write the job's output to {str(path)!r}: {exc.strerror or exc}") from None
    return paths


@job.command("list", context_settings=CONTEXT_SETTINGS)
@json_option
def list_(as_json: bool) -> None:
    """List the stored job descriptions and the jobs they were submitted as."""
    records = []
    for path in sorted(private_jobs_dir().glob("*.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            why = _invalid(record)
        except (OSError, ValueError) as exc:
            why = str(exc)
        if why:
            errors.print(f"[yellow]skipped[/] {escape(str(path))}: not a stored job description ({escape(why)})")
        else:
            records.append(record)
    if as_json:
        print_json(records)
        return
    if not records:
        console.print("no job descriptions yet: create one with 'tiercel job create --rsl FILE --name NAME'")
        return
    table = make_table("NAME", "KIND", "JOB", "CREATED", "COMMAND", wrap=("COMMAND",))
    now = time.time()
    for r in records:
        table.add_row(escape(str(r.get("name"))), str(r.get("kind", "?")), str(r.get("job_id") or "-"),
                      age(now - float(r.get("created") or now)) + " ago", escape(_describe(r)))
    console.print(table)


@job.command("show", context_settings=CONTEXT_SETTINGS)
@click.argument("name")
@json_option
def show(name: str, as_json: bool) -> None:
    """Show how the job description NAME will run: command, directory, tasks, limits, outputs."""
    record = _load(name)
    if as_json:
        print_json(record)
        return
    req = record["request"]
    rows = [("name", name), ("from", f"{record.get('source')} ({record.get('kind')})"),
            ("command", shlex.join(req["command"])), ("directory", req.get("cwd") or "(the worker's)"),
            ("tasks", str(req.get("queue", 1)))]
    rows += [(label, str(req[key])) for key, label in (("cpus", "cpus"), ("queue_name", "queue"),
                                                       ("walltime", "walltime (s)"), ("memory", "memory (MB)"))
             if key in req]
    rows += [(f"env {k}", v) for k, v in req.get("env", {}).items()]
    rows += [(s, record.get(s) or f"{name}.{s} (here)") for s in ("stdout", "stderr")]
    rows.append(("job", str(record["job_id"]) if record.get("job_id") is not None else "not submitted"))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        console.print(f"{key:<{width}}  {escape(value)}")
