"""The Python client: ``Client(url).submit(...)``, ``job.wait()``, iterate results.

Which manager to ask (URLs, standbys, the token) is client_reach.py; this module sends the requests.
"""

from __future__ import annotations

import base64
import json
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from tiercel.client_reach import (
    ACTIVE_HEADER,
    DEFAULT_PORT,
    TiercelError,
    default_state_dir,
    default_url,
    manager_url,
    manager_urls,
    next_url,
    resolve_token,
    standby_active,
)

__all__ = [  # client_reach.py's names too: the command line, the worker and scripts import them from here
    "ACTIVE_HEADER",
    "DEFAULT_PORT",
    "FOLLOW_POLL",
    "Client",
    "Job",
    "TaskOutput",
    "TaskResult",
    "TiercelError",
    "WaitTimeout",
    "default_state_dir",
    "default_url",
    "manager_url",
    "manager_urls",
    "next_url",
    "resolve_token",
    "standby_active",
]


class WaitTimeout(TiercelError):
    """A job did not finish within the time given to ``Job.wait``."""


@dataclass
class TaskResult:
    index: int
    attempt: int
    outcome: str
    exit_code: int | None
    worker: str
    started: float
    ended: float


def _tls_for(url: str) -> bool | ssl.SSLContext:
    """How a client of ``url`` checks certificates. An https:// manager's against the system's
    authorities, as httpx does by default. An http:// manager's client never makes a TLS connection,
    so it gets a context that trusts no authority, made without reading the system's bundle (which
    took 16 ms of every command): were it ever asked to connect over TLS, it would refuse."""
    if urlsplit(url).scheme == "https":
        return True
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


class Client:
    """A connection to the manager, or to the first that answers of several (an active one and standbys).

    ``url`` may hold several URLs separated by commas. A request goes to the one that served the last
    request; when it cannot be reached, or is a standby (503 naming the active manager, or none), the
    request is sent again once to the active manager named (even if not listed), else to the next URL
    of the list, each at most once. ``url`` is the URL in use, ``urls`` the list given.
    """

    def __init__(self, url: str | None = None, token: str | None = None, timeout: float = 30.0) -> None:
        self.urls = manager_urls(url or default_url())
        self.url = self.urls[0]
        self.token = resolve_token(token)
        self._headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        self._timeout = timeout
        self._clients: dict[str, httpx.Client] = {}

    @property
    def _http(self) -> httpx.Client:
        """The HTTP client of the URL in use."""
        return self._client_for(self.url)

    def _client_for(self, url: str) -> httpx.Client:
        http = self._clients.get(url)
        if http is None:
            http = self._clients[url] = httpx.Client(base_url=url, headers=self._headers, timeout=self._timeout,
                                                     verify=_tls_for(url))
        return http

    def close(self) -> None:
        for http in self._clients.values():
            http.close()
        self._clients.clear()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def request(self, method: str, path: str, *, stream: bool = False, **kw: Any) -> httpx.Response:
        """Send a request to the active manager. With ``stream`` a successful answer's body is left
        unread: read it with ``iter_bytes`` or ``iter_lines``, then ``close`` it."""
        # What each URL tried said: "standby", "unreachable" or "did not answer in time".
        said: dict[str, str] = {}
        url: str | None = self.url
        # Bounded: each URL of the list once, and a standby's pointers to at most two more.
        while url is not None and len(said) < len(self.urls) + 2:
            active = None
            try:
                http = self._client_for(url)
                resp = (http.send(http.build_request(method, path, **kw), stream=True) if stream
                        else http.request(method, path, **kw))
            except (httpx.ConnectError, httpx.ConnectTimeout):  # nothing was sent: safe to send elsewhere
                said[url] = "unreachable"
            except httpx.TimeoutException:
                # A request that may have been carried out is not sent again elsewhere; a read is.
                if method.upper() not in _SAFE or len(self.urls) == 1:
                    raise TiercelError(f"the manager at {url} did not answer in time") from None
                said[url] = "did not answer in time"
            except httpx.HTTPError as exc:
                raise TiercelError(f"talking to the manager at {url} failed: {exc}") from None
            else:
                standby = False
                if resp.status_code == 503:
                    resp.read()  # a streamed answer's body too: a standby says who is active in it
                    standby, active = standby_active(resp.headers, resp.content)
                if not standby:
                    self.url = url
                    return _checked(resp)
                said[url] = "standby"
            url = next_url(self.urls, url, said, active)
        raise _no_manager(said)

    def json(self, method: str, path: str, **kw: Any) -> Any:
        return self.request(method, path, **kw).json()

    # ---- jobs ----------------------------------------------------------

    def submit(self, command: list[str] | str, **fields: Any) -> Job:
        """Submit a job: ``fields`` are the request's (jobspec/request.py), e.g. ``queue=10``, or
        ``entries=["a.txt", "b.txt"]`` for a task per entry, ``stdout="out/{index}.txt"`` for files;
        ``after=[prep, 12, "13:corr"]`` waits for other jobs (Job objects, ids, or ``ID:KIND``)."""
        if "after" in fields:
            fields["after"] = [str(a.id) if isinstance(a, Job) else str(a) for a in fields["after"]]
        from tiercel.jobspec.request import request_json  # pydantic: loaded only to submit

        data = self.json("POST", "/v1/jobs", json=request_json({"command": command, **fields}))
        return Job(self, data)

    def job(self, job_id: int) -> Job:
        return Job(self, self.json("GET", f"/v1/jobs/{job_id}"))

    def jobs(self, everyone: bool = False) -> list[dict[str, Any]]:
        return list(self.json("GET", "/v1/jobs", params={"all": everyone}))

    def jobs_by_id(self, ids: list[int]) -> list[dict[str, Any]]:
        """The state of many jobs in one request (those that are not yours are left out)."""
        out: list[dict[str, Any]] = []
        for start in range(0, len(ids), 1000):  # a URL of a few kilobytes, which every HTTP server reads
            chunk = ",".join(str(i) for i in ids[start:start + 1000])
            out += list(self.json("GET", "/v1/jobs", params={"ids": chunk}))
        return out

    def submit_checked_by_manager(self, request: dict[str, Any]) -> Job:
        """Submit a job request that already has the API's types (the command line's), unchecked here:
        the manager checks it as it checks every request, and a problem comes back in the same words."""
        return Job(self, self.json("POST", "/v1/jobs", json=request))

    def submit_workflow(self, request: dict[str, Any]) -> dict[str, Any]:
        """Submit a workflow (``{"name": ..., "jobs": [job requests with names]}``, as
        ``tiercel.cli.workflowfile.load_workflow`` reads a file): accepted whole or not at all."""
        return dict(self.json("POST", "/v1/workflows", json=request))

    def workflow(self, workflow_id: int) -> dict[str, Any]:
        return dict(self.json("GET", f"/v1/workflows/{workflow_id}"))

    def workflows(self, everyone: bool = False) -> list[dict[str, Any]]:
        return list(self.json("GET", "/v1/workflows", params={"all": everyone}))

    def wait_workflow(self, workflow_id: int, timeout: float | None = None, poll: float = 0.5,
                      progress: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        """Wait until every job of the workflow has ended; its last state."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            data = self.workflow(workflow_id)
            if progress is not None:
                progress(data)
            if data["state"] in ("done", "failed", "cancelled"):
                return data
            if deadline is not None and time.monotonic() > deadline:
                raise WaitTimeout(f"workflow {workflow_id} did not end within {timeout:g}s (it is {data['state']})")
            time.sleep(poll)

    def cancel_all(self) -> list[int]:
        return list(self.json("POST", "/v1/jobs/cancel")["cancelled"])

    def workers(self) -> list[dict[str, Any]]:
        return list(self.json("GET", "/v1/workers"))

    def whoami(self) -> dict[str, str]:
        return dict(self.json("GET", "/v1/whoami"))

    def history(self, *, user: str | None = None, everyone: bool = False, since: str | None = None,
                state: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Ended jobs, the last ended first: yours, ``user``'s or (``everyone``) all of them (admins).

        ``since``: a duration back from now (``2d``, ``12h``) or a date (and time); ``state``: done,
        failed or cancelled (several separated by commas). Each has its counts, ``wall`` (ended -
        submitted, seconds) and ``places`` (where its attempts ran); ``cpu`` (CPU seconds of its
        tasks' processes, None where not measured)."""
        params: dict[str, Any] = {"all": everyone, "limit": limit}
        params.update({k: v for k, v in (("user", user), ("since", since), ("state", state)) if v is not None})
        return list(self.json("GET", "/v1/history", params=params))


_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})


def _checked(resp: httpx.Response) -> httpx.Response:
    if resp.status_code >= 400:
        resp.read()  # an error's body, even when the answer was to be streamed
        try:
            message = resp.json().get("error") or resp.text
        except ValueError:
            message = resp.text.strip() or resp.reason_phrase
        raise TiercelError(str(message))
    return resp


def _no_manager(said: dict[str, str]) -> TiercelError:
    """Why no manager served a request, and what to do about it."""
    if len(said) == 1:
        [(url, what)] = said.items()
        if what == "unreachable":
            return TiercelError(f"cannot reach the manager at {url}: is 'tiercel manager' running? (set TIERCEL_URL)")
        if what != "standby":
            return TiercelError(f"the manager at {url} {what}")
    tried = ", ".join(f"{url} ({what})" for url, what in said.items())
    if "standby" in said.values():
        return TiercelError(f"no active manager is reachable right now (tried {tried}): a standby takes over "
                            "within a few seconds of the active manager going away; wait a few seconds and try again")
    return TiercelError(f"cannot reach any manager (tried {tried}): is 'tiercel manager' running? (set TIERCEL_URL)")


@dataclass
class TaskOutput:
    """A task's outputs as ``Job.outputs`` reads them: of its settling attempt, else its latest one."""

    index: int
    attempt: int
    outcome: str
    final: bool
    exit_code: int | None
    worker: str
    started: float
    ended: float
    stdout: bytes
    stderr: bytes

    @staticmethod
    def of(line: str) -> TaskOutput:
        d = json.loads(line)
        out, err = (base64.b64decode(d["stdout"]), base64.b64decode(d["stderr"])) if d["base64"] else (
            d["stdout"].encode(), d["stderr"].encode())
        return TaskOutput(d["index"], d["attempt"], d["outcome"], d["final"], d["exit_code"], d["worker"],
                          d["started"], d["ended"], out, err)


FOLLOW_POLL = 0.5  # seconds between two steps of following that brought something; doubles up to ``poll``


class Job:
    def __init__(self, client: Client, data: dict[str, Any]) -> None:
        self.client = client
        self.data = data
        self.forgotten: float | None = None  # when its outputs were dropped, as the last read of them said

    @property
    def id(self) -> int:
        return int(self.data["id"])

    @property
    def state(self) -> str:
        return str(self.data["state"])

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed", "cancelled")

    def refresh(self, wait: float = 0) -> Job:
        """Read the job's state again; with ``wait``, the manager answers as soon as the job ends, or
        after ``wait`` seconds."""
        params = {"wait": wait} if wait else None
        self.data = self.client.json("GET", f"/v1/jobs/{self.id}", params=params)
        return self

    # As a concurrent.futures.Future: a script chains stages with after=[job] and waits at the end.

    def done(self) -> bool:
        """Whether the job has ended (asks the manager)."""
        return self.refresh().finished

    def result(self, timeout: float | None = None) -> Job:
        """Wait for the job; the job when every task is done, else a TiercelError saying how it ended."""
        self.wait(timeout=timeout)
        if self.state != "done":
            why = f": {self.data['reason']}" if self.data.get("reason") else ""
            raise TiercelError(f"job {self.id} {self.state} ({self.data['done']} done, {self.data['failed']} "
                               f"failed, {self.data['cancelled']} cancelled of {self.data['total']}){why}")
        return self

    def cancel(self) -> Job:
        self.data = self.client.json("POST", f"/v1/jobs/{self.id}/cancel")
        return self

    def hold(self) -> Job:
        """No new task of the job starts until ``release``; running ones go on."""
        self.data = self.client.json("POST", f"/v1/jobs/{self.id}/hold")
        return self

    def release(self) -> Job:
        self.data = self.client.json("POST", f"/v1/jobs/{self.id}/release")
        return self

    def update(self, *, priority: int | None = None, walltime: str | float | None = None,
               max_running: int | None = None, no_max_running: bool = False) -> Job:
        """Change the job's priority or cap on running tasks (or its walltime before any task started)."""
        changes = {k: v for k, v in (("priority", priority), ("walltime", walltime), ("max_running", max_running))
                   if v is not None}
        if no_max_running:
            changes["no_max_running"] = True
        self.data = self.client.json("PATCH", f"/v1/jobs/{self.id}", json=changes)
        return self

    def retry(self, *, failed: bool = False, cancelled: bool = False, tasks: str | None = None) -> dict[str, Any]:
        """Run ended tasks again as new attempts (default: the failed ones); says how many, which."""
        body: dict[str, Any] = {"failed": failed, "cancelled": cancelled}
        if tasks is not None:
            body = {"tasks": tasks}
        answer = self.client.json("POST", f"/v1/jobs/{self.id}/retry", json=body)
        self.data = answer["job"]
        return {"tasks": int(answer["tasks"]), "indexes": str(answer["indexes"])}

    def wait(self, timeout: float | None = None, poll: float = 0.2,
             progress: Callable[[dict[str, Any]], None] | None = None) -> Job:
        deadline = None if timeout is None else time.monotonic() + timeout
        self.refresh()
        while True:
            if progress is not None:
                progress(self.data)
            if self.finished:
                return self
            if deadline is not None and time.monotonic() > deadline:
                raise WaitTimeout(f"job {self.id} did not finish within {timeout:g}s")
            # The manager holds each read until the job ends or ``poll`` passes: the end is seen at once.
            asked = time.monotonic()
            self.refresh(wait=poll)
            early = poll - (time.monotonic() - asked)
            if early > 0 and not self.finished:  # a manager that does not wait: poll as before
                time.sleep(early)

    def results(self) -> Iterator[TaskResult]:
        for row in self.client.json("GET", f"/v1/jobs/{self.id}/tasks", params={"final": True}):
            yield TaskResult(row["index"], row["attempt"], row["outcome"], row["exit_code"], row["worker"],
                             row["started"], row["ended"])

    def output(self, index: int, stream: str = "stdout") -> bytes:
        return self.client.request("GET", f"/v1/jobs/{self.id}/logs",
                                   params={"task": index, "stream": stream}).content

    def logs(self, stream: str = "stdout", *, task: int | None = None, failed: bool = False, headers: bool = False,
             follow: bool = False, poll: float = 2.0, format: str = "text") -> Iterator[bytes]:
        """The tasks' ``stream`` in task order, as the manager reads them, a page at a time: the settling
        attempt of each task, else its latest one (``failed``: tasks that failed only; ``headers``: a
        ``==> task N ... <==`` line before each). With ``follow``, settled tasks only: those settled
        already, then each as it settles, until the job ends (checked at most ``poll`` seconds apart).
        ``format="jsonl"``: a line of JSON per task instead, with both outputs (see ``outputs``)."""
        params: dict[str, Any] = {"stream": stream, "headers": headers, "failed": failed, "format": format}
        if task is not None:
            params["task"] = task
        return self._read(params, follow, poll)

    def outputs(self, *, task: int | None = None, failed: bool = False, follow: bool = False,
                poll: float = 2.0) -> Iterator[TaskOutput]:
        """Each task's stdout and stderr, as ``logs`` reads them."""
        pending = b""
        for chunk in self.logs(task=task, failed=failed, follow=follow, poll=poll, format="jsonl"):
            lines = (pending + chunk).split(b"\n")
            pending = lines.pop()
            for line in lines:
                if line.strip():
                    yield TaskOutput.of(line.decode())

    def save_outputs(self, directory: str | Path, *, task: int | None = None, failed: bool = False,
                     follow: bool = False, poll: float = 2.0) -> tuple[int, int]:
        """Write each task's stdout and stderr into ``directory``/INDEX.out and INDEX.err, the non-empty
        ones only (the directory is made if need be). Answers (files written, tasks read)."""
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        files = tasks = 0
        for t in self.outputs(task=task, failed=failed, follow=follow, poll=poll):
            tasks += 1
            for suffix, data in ((".out", t.stdout), (".err", t.stderr)):
                if data:
                    (folder / f"{t.index}{suffix}").write_bytes(data)
                    files += 1
        return files, tasks

    def forget(self) -> dict[str, int]:
        """Drop the outputs of this ended job from the manager's store; its attempts and counts stay.
        Answers how many attempt rows held an output (``rows``) and what they took (``bytes``)."""
        return {k: int(v) for k, v in self.client.json("POST", f"/v1/jobs/{self.id}/forget").items()}

    def _read(self, params: dict[str, Any], follow: bool, poll: float) -> Iterator[bytes]:
        path = f"/v1/jobs/{self.id}/logs"
        if not follow:
            resp = self.client.request("GET", path, params=params, stream=True)
            self.forgotten = _forgotten(resp)
            try:
                yield from resp.iter_bytes()
            except httpx.HTTPError as exc:
                raise TiercelError(f"the manager at {self.client.url} stopped sending job {self.id}'s outputs "
                                   f"mid-way ({exc}); try again") from None
            finally:
                resp.close()
            return
        cursor, wait = "-1", FOLLOW_POLL
        while True:
            resp = self.client.request("GET", path, params={**params, "cursor": cursor})
            self.forgotten = _forgotten(resp)
            if resp.content:
                yield resp.content
            cursor = resp.headers["X-Tiercel-Cursor"]
            if resp.headers.get("X-Tiercel-More") == "true":
                continue
            if resp.headers.get("X-Tiercel-Ended") == "true":
                self.refresh()
                return
            wait = FOLLOW_POLL if resp.content else min(max(poll, FOLLOW_POLL), wait * 2)
            time.sleep(wait)


def _forgotten(resp: httpx.Response) -> float | None:
    value = resp.headers.get("X-Tiercel-Forgotten")
    return float(value) if value else None
