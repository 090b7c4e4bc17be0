"""What a command imports: each loads only what it needs, so the command line answers quickly."""

from __future__ import annotations

import subprocess
import sys


def _modules_after(*args: str) -> set[str]:
    code = ("import sys\nfrom tiercel.cli.main import cli\n"
            f"try:\n    cli({list(args)!r}, prog_name='tiercel')\nexcept SystemExit:\n    pass\n"
            "print('\\n'.join(sorted(sys.modules)), file=sys.stderr)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    return set(out.stderr.split())


def test_version_loads_neither_the_http_client_nor_the_managers_server() -> None:
    loaded = _modules_after("--version")
    assert "tiercel.cli.main" in loaded
    assert not {"httpx", "tiercel.client", "fastapi", "uvicorn", "tiercel.server"} & loaded


def test_status_loads_the_http_client_but_not_the_managers_server() -> None:
    loaded = _modules_after("status", "--help")
    assert "tiercel.cli.commands.jobs" in loaded
    assert not {"fastapi", "uvicorn", "tiercel.server", "slixmpp", "psycopg"} & loaded
