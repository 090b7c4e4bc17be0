"""Running batch commands: subprocesses with a time-out, retries and a count of what was issued.

Adapters only build ``Invocation`` values; this is the one place that runs
them. A command that is missing, hangs past its time-out or fails every retry
raises ``CommandFailed`` with a message fit for ``tiercel sites`` and the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections import Counter
from pathlib import Path
from typing import Protocol

from tiercel.sites.adapters.base import Invocation

RETRY_PAUSE = 0.5  # seconds before the first retry; doubles each time


class CommandFailed(Exception):
    def __init__(self, message: str, *, retry: bool = True) -> None:
        super().__init__(message)
        self.retry = retry  # False: trying again cannot help (the command is not there)


class Runner(Protocol):
    """What a site needs of a runner: ``CommandRunner``, or a fake batch system in tests."""

    issued: Counter[str]

    async def run(self, inv: Invocation, *, retries: int | None = None) -> str: ...


class CommandRunner:
    def __init__(self, *, timeout: float, retries: int, path: list[str] | None = None) -> None:
        self.timeout = timeout
        self.retries = retries
        self.env = dict(os.environ)
        if path:
            self.env["PATH"] = os.pathsep.join([*path, self.env.get("PATH", "")])
        self.issued: Counter[str] = Counter()  # commands run, by name: what the batch system saw

    async def run(self, inv: Invocation, *, retries: int | None = None) -> str:
        """Run one command; its stdout on success."""
        last = ""
        tries = 1 + (self.retries if retries is None else retries)
        for n in range(tries):
            if n:
                await asyncio.sleep(RETRY_PAUSE * 2 ** (n - 1))
            try:
                return await self._once(inv)
            except CommandFailed as exc:
                last = str(exc)
                if not exc.retry:
                    break
        raise CommandFailed(last)

    async def _once(self, inv: Invocation) -> str:
        for path, content in inv.files:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(content)
            if content.startswith("#!"):
                os.chmod(path, 0o755)
        name = os.path.basename(inv.argv[0])
        try:
            proc = await asyncio.create_subprocess_exec(
                *inv.argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, env=self.env, start_new_session=True)
        except FileNotFoundError:
            raise CommandFailed(f"{name}: command not found (is the batch system's client installed "
                                "and on PATH, or set path = [...] for the site?)", retry=False) from None
        except OSError as exc:
            raise CommandFailed(f"{name}: cannot run: {exc.strerror or exc}", retry=False) from None
        self.issued[name] += 1
        try:
            out, err = await asyncio.wait_for(
                proc.communicate(None if inv.stdin is None else inv.stdin.encode()), self.timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(Exception):
                await proc.wait()
            raise CommandFailed(f"{name} timed out after {self.timeout:g}s") from None
        if proc.returncode != 0:
            if inv.gone is not None and inv.gone in err.decode(errors="replace"):
                return out.decode(errors="replace")  # some ids are purged; the rest are listed
            text = (err or out).decode(errors="replace").strip().replace("\n", " | ")
            raise CommandFailed(f"{name} failed (exit {proc.returncode}): {text[:300]}")
        return out.decode(errors="replace")
