"""A long-running process's set-up: its limit of open files raised to the system's."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import resource
from tiercel import eventloop
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
async def main():
    return resource.getrlimit(resource.RLIMIT_NOFILE)
print(*eventloop.run(main()), hard)
"""


def test_a_manager_or_worker_may_open_as_many_files_as_the_system_lets_it() -> None:
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, check=True)
    soft, hard, before = (int(x) for x in out.stdout.split())
    assert hard == before and soft == (hard if hard != -1 else 1 << 20) and soft > 64
