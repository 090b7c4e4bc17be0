"""tiercel completion SHELL prints what click's own completion prints for that shell, and it completes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SHELLS = ("bash", "zsh", "fish")


def tiercel(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.endswith("_COMPLETE")}
    return subprocess.run([sys.executable, "-m", "tiercel", *args], env={**clean, **env}, capture_output=True,
                          text=True, timeout=60)


@pytest.mark.parametrize("shell", SHELLS)
def test_the_printed_script_is_what_click_generates_for_the_shell(shell: str) -> None:
    printed = tiercel("completion", shell)
    assert printed.returncode == 0, printed.stderr
    generated = tiercel(_TIERCEL_COMPLETE=f"{shell}_source")
    assert generated.returncode == 0, generated.stderr
    assert printed.stdout == generated.stdout
    assert "_TIERCEL_COMPLETE" in printed.stdout and "tiercel" in printed.stdout
    assert printed.stdout != tiercel("completion", next(s for s in SHELLS if s != shell)).stdout


def test_the_script_completes_commands_and_options() -> None:
    words = tiercel(_TIERCEL_COMPLETE="bash_complete", COMP_WORDS="tiercel hist", COMP_CWORD="1")
    assert words.stdout.split() == ["plain,history"]
    options = tiercel(_TIERCEL_COMPLETE="bash_complete", COMP_WORDS="tiercel history --st", COMP_CWORD="2")
    assert options.stdout.split() == ["plain,--state"]
    shells = tiercel(_TIERCEL_COMPLETE="bash_complete", COMP_WORDS="tiercel completion ", COMP_CWORD="2")
    assert shells.stdout.split() == ["plain,bash", "plain,zsh", "plain,fish"]


@pytest.mark.skipif(shutil.which("bash") is None and not os.environ.get("CI"),  # in CI: run, and fail without bash
                    reason="bash is not installed")
def test_bash_sources_the_script_and_asks_tiercel_for_completions(tmp_path: Path) -> None:
    script = tiercel("completion", "bash").stdout
    shim = tmp_path / "tiercel"
    shim.write_text(f"#!/bin/sh\nexec {sys.executable} -m tiercel \"$@\"\n")
    shim.chmod(0o755)
    # as bash calls it for 'tiercel forg<TAB>': the command, the word, the word before
    probe = script + '\nCOMP_WORDS=(tiercel forg); COMP_CWORD=1\n_tiercel_completion tiercel forg tiercel\n' \
                     'echo "${COMPREPLY[@]}"\n'
    ran = subprocess.run(["bash", "-c", probe], env={**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"},
                         capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.split() == ["forget"]


def test_an_unknown_shell_is_refused() -> None:
    refused = tiercel("completion", "tcsh")
    assert refused.returncode == 2 and "'tcsh' is not one of" in refused.stderr and refused.stdout == ""
