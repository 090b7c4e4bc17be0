"""The Python client: ``Client(url).submit(...)``, ``job.wait()``, iterate results."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tiercel.jobspec.request import request_json

DEFAULT_PORT = 8750


class TiercelError(Exception):
    """An error a person can act on; its text is one line, without a traceback."""


class WaitTimeout(TiercelError):
    """A job did not finish within the time given to ``Job.wait``."""


def default_state_dir() -> Path:
    env = os.environ.get("TIERCEL_STATE_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "tiercel"


def default_url() -> str:
    url = os.environ.get("TIERCEL_URL")
    if url:
        return url
    info = default_state_dir() / "manager.json"
    try:
        return str(json.loads(info.read_text())["url"])
    except (OSError, ValueError, KeyError):
        return f"http://127.0.0.1:{DEFAULT_PORT}"


def resolve_token(explicit: str | None = None, *, files: tuple[str, ...] = ("admin.token",)) -> str | None:
    """--token, then TIERCEL_TOKEN, TIERCEL_TOKEN_FILE, then the local manager's token file."""
    if explicit:
        return explicit
    if os.environ.get("TIERCEL_TOKEN"):
        return os.environ["TIERCEL_TOKEN"]
    paths = [Path(os.environ["TIERCEL_TOKEN_FILE"])] if os.environ.get("TIERCEL_TOKEN_FILE") else []
    paths += [default_state_dir() / f for f in files]
    for path in paths:
        try:
            return path.expanduser().read_text().strip()
        except OSError:
            continue
    return None


@dataclass
class TaskResult:
    index: int
    attempt: int
    outcome: str
    exit_code: int | None
    worker: str
    started: float
    ended: float


class Client:
    def __init__(self, url: str | None = None, token: str | None = None, timeout: float = 30.0) -> None:
        self.url = (url or default_url()).rstrip("/")
        self.token = resolve_token(token)
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        try:
            resp = self._http.request(method, path, **kw)
        except httpx.ConnectError:
            raise TiercelError(
                f"cannot reach the manager at {self.url}: is 'tiercel manager' running? (set TIERCEL_URL)"
            ) from None
        except httpx.TimeoutException:
            raise TiercelError(f"the manager at {self.url} did not answer in time") from None
        except httpx.HTTPError as exc:
            raise TiercelError(f"talking to the manager at {self.url} failed: {exc}") from None
        if resp.status_code >= 400:
            try:
                message = resp.json().get("error") or resp.text
            except ValueError:
                message = resp.text.strip() or resp.reason_phrase
            raise TiercelError(str(message))
        return resp

    def json(self, method: str, path: str, **kw: Any) -> Any:
        return self.request(method, path, **kw).json()

    # ---- jobs ----------------------------------------------------------

    def submit(self, command: list[str] | str, **fields: Any) -> Job:
        data = self.json("POST", "/v1/jobs", json=request_json({"command": command, **fields}))
        return Job(self, data)

    def job(self, job_id: int) -> Job:
        return Job(self, self.json("GET", f"/v1/jobs/{job_id}"))

    def jobs(self, everyone: bool = False) -> list[dict[str, Any]]:
        return list(self.json("GET", "/v1/jobs", params={"all": everyone}))

    def cancel_all(self) -> list[int]:
        return list(self.json("POST", "/v1/jobs/cancel")["cancelled"])

    def workers(self) -> list[dict[str, Any]]:
        return list(self.json("GET", "/v1/workers"))

    def whoami(self) -> dict[str, str]:
        return dict(self.json("GET", "/v1/whoami"))


class Job:
    def __init__(self, client: Client, data: dict[str, Any]) -> None:
        self.client = client
        self.data = data

    @property
    def id(self) -> int:
        return int(self.data["id"])

    @property
    def state(self) -> str:
        return str(self.data["state"])

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed", "cancelled")

    def refresh(self) -> Job:
        self.data = self.client.json("GET", f"/v1/jobs/{self.id}")
        return self

    def cancel(self) -> Job:
        self.data = self.client.json("POST", f"/v1/jobs/{self.id}/cancel")
        return self

    def wait(self, timeout: float | None = None, poll: float = 0.2,
             progress: Callable[[dict[str, Any]], None] | None = None) -> Job:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self.refresh()
            if progress is not None:
                progress(self.data)
            if self.finished:
                return self
            if deadline is not None and time.monotonic() > deadline:
                raise WaitTimeout(f"job {self.id} did not finish within {timeout:g}s")
            time.sleep(poll)

    def results(self) -> Iterator[TaskResult]:
        for row in self.client.json("GET", f"/v1/jobs/{self.id}/tasks", params={"final": True}):
            yield TaskResult(row["index"], row["attempt"], row["outcome"], row["exit_code"], row["worker"],
                             row["started"], row["ended"])

    def output(self, index: int, stream: str = "stdout") -> bytes:
        return self.client.request("GET", f"/v1/jobs/{self.id}/logs",
                                   params={"task": index, "stream": stream}).content
