"""tiercel job create/list/show without a manager: the names they accept and the privacy of the job directory."""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from tiercel.cli.main import cli

RSL = "&(executable=/bin/echo)(arguments=hello)\n"


@pytest.fixture
def jobs(tmp_path: Path) -> Path:
    return tmp_path / "state" / "jobs"


@pytest.fixture
def lax_umask() -> Iterator[None]:
    """The common default umask, under which a plain mkdir or open would be readable by everyone."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def run(jobs: Path, *args: str) -> Result:
    env = {"TIERCEL_JOBS_DIR": str(jobs), "HOME": str(jobs.parent)}
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def create(jobs: Path, name: str) -> Result:
    rsl = jobs.parent / "job.rsl"
    rsl.parent.mkdir(parents=True, exist_ok=True)
    rsl.write_text(RSL)
    return run(jobs, "job", "create", "-rsl", str(rsl), "-name", name)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# ---- names ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["trail\n", "job1\n", "a\nb", "\njob", "job 1", "-job", "x" * 65, ""])
def test_a_name_that_is_not_all_letters_digits_dots_underscores_dashes_is_refused(jobs: Path, name: str) -> None:
    result = create(jobs, name)
    assert result.exit_code == 2, result.output
    assert "name:" in result.stderr and "must be 1 to 64 letters, digits" in result.stderr
    assert not jobs.exists() or not any(jobs.iterdir()), "a file was written under a refused name"


@pytest.mark.parametrize("command", [("job", "show"), ("job", "submit"), ("job", "data")])
def test_every_command_refuses_a_name_ending_in_a_newline(jobs: Path, command: tuple[str, ...]) -> None:
    assert create(jobs, "trail").exit_code == 0
    result = run(jobs, *command, "trail\n")
    assert result.exit_code == 2 and "must be 1 to 64 letters, digits" in result.stderr, result.output


@pytest.mark.parametrize("name", ["j", "job1", "a.b_c-d", "9" * 64])
def test_valid_names_are_kept_as_files_of_that_name(jobs: Path, name: str) -> None:
    result = create(jobs, name)
    assert result.exit_code == 0, result.output
    assert [p.name for p in jobs.iterdir()] == [f"{name}.json"]


# ---- the job directory is private --------------------------------------------------------------


@pytest.mark.usefixtures("lax_umask")
def test_a_new_job_directory_is_0700_and_its_files_0600(jobs: Path) -> None:
    assert create(jobs, "one").exit_code == 0
    assert create(jobs, "two").exit_code == 0
    assert run(jobs, "job", "create", "-rsl", str(jobs.parent / "job.rsl"), "-name", "two", "--replace").exit_code == 0
    assert mode(jobs) == 0o700
    assert {p.name: mode(p) for p in jobs.iterdir()} == {"one.json": 0o600, "two.json": 0o600}


@pytest.mark.usefixtures("lax_umask")
@pytest.mark.parametrize("command", [("job", "list"), ("job", "show", "old"), ("job", "create")])
def test_an_existing_job_directory_readable_by_others_is_made_private_and_said_once(
        jobs: Path, command: tuple[str, ...]) -> None:
    assert create(jobs, "old").exit_code == 0
    (jobs / "notes.txt").write_text("kept by hand\n")
    jobs.chmod(0o755)
    (jobs / "old.json").chmod(0o644)
    (jobs / "notes.txt").chmod(0o666)

    first = create(jobs, "new") if command == ("job", "create") else run(jobs, *command)
    assert first.exit_code == 0, first.output
    assert mode(jobs) == 0o700
    assert {p.name: mode(p) for p in jobs.iterdir()} == {n: 0o600 for n in ("old.json", "notes.txt", "new.json")
                                                          if (jobs / n).exists()}
    notes = [line for line in first.stderr.splitlines() if str(jobs) in line]
    assert len(notes) == 1, first.stderr
    assert "0700 (was 0755)" in notes[0] and "2 files in it to mode 0600" in notes[0]

    again = run(jobs, "job", "list")
    assert again.exit_code == 0 and str(jobs) not in again.stderr


# ---- descriptions whose substitutions would blow up --------------------------------------------


def test_create_refuses_nested_substitutions_in_one_line_naming_the_variable_and_the_limit(jobs: Path) -> None:
    # each definition repeats the one before ten times: V7 would be 10,000,000 characters
    defs = "(V0 x)" + "".join(f"(V{k} " + f"$(V{k - 1})" * 10 + ")" for k in range(1, 8))
    rsl = jobs.parent / "bomb.rsl"
    rsl.parent.mkdir(parents=True, exist_ok=True)
    rsl.write_text(f"&(rsl_substitution={defs})(executable=/bin/echo)(arguments=$(V7))\n")
    result = run(jobs, "job", "create", "-rsl", str(rsl), "-name", "bomb")
    assert result.exit_code == 2
    [line] = result.stderr.strip().splitlines()
    assert str(rsl) in line and "in the definition of V" in line
    assert re.search(r"at most [\d,]+ characters", line), line
    assert not jobs.exists() or not any(jobs.iterdir())
