"""A Snakemake executor plugin: ``snakemake --executor tiercel --jobs 100`` runs each job on a Tiercel manager.

Each Snakemake job (or group of jobs) becomes a one-task Tiercel job whose command is the job's own
``python -m snakemake ...`` line, run with ``/bin/sh -c`` by a worker in the workflow's directory (a
shared file system, as for any cluster executor). The state of all active jobs is read in one request
per status interval (``GET /v1/jobs?ids=...``); only a job that failed costs two more (its task's exit
code and its stderr, for Snakemake's error report).
"""

# No ``from __future__ import annotations`` here: Snakemake reads the settings' field types at run time.

import os
import threading
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from snakemake_interface_common.exceptions import WorkflowError
from snakemake_interface_executor_plugins.executors.base import SubmittedJobInfo
from snakemake_interface_executor_plugins.executors.remote import RemoteExecutor
from snakemake_interface_executor_plugins.jobs import JobExecutorInterface
from snakemake_interface_executor_plugins.settings import CommonSettings, ExecutorSettingsBase

from snakemake_executor_plugin_tiercel.mapping import failure_message, job_fields, split_tags, verdict
from tiercel.client import Client, TiercelError, manager_urls

__all__ = ["Executor", "ExecutorSettings", "common_settings"]

MISSING_LIMIT = 3  # status rounds a job may be absent from the manager's answer before it counts as lost


@dataclass
class ExecutorSettings(ExecutorSettingsBase):
    url: str = field(default="", metadata={
        "help": "The Tiercel manager's URL, or several separated by commas (an active manager and its standbys). "
                "Default: $TIERCEL_URL, else the manager of this machine.",
        "env_var": False, "required": False})
    token: str = field(default="", metadata={
        "help": "The bearer token (a user's or an admin's). Default: the file of --tiercel-token-file, else "
                "$TIERCEL_TOKEN, else the file named by $TIERCEL_TOKEN_FILE, else the local manager's admin.token. "
                "Prefer a file or the environment: a command line is visible to every user of the machine.",
        "env_var": False, "required": False})
    token_file: str = field(default="", metadata={
        "help": "A file holding the token (read once, at start).", "env_var": False, "required": False})
    queue: str = field(default="", metadata={
        "help": "The Tiercel queue to submit to (default: the manager's default queue).",
        "env_var": False, "required": False})
    requires: str = field(default="", metadata={
        "help": "Tags every job's worker must have, separated by commas (each rule can add its own with the "
                "tiercel_requires resource).",
        "env_var": False, "required": False})
    stderr_lines: int = field(default=40, metadata={
        "help": "How many of the last lines of a failed job's stderr to show in Snakemake's error (0: all).",
        "env_var": False, "required": False})


common_settings = CommonSettings(
    non_local_exec=True,
    implies_no_shared_fs=False,  # workers run in the workflow's directory: it must be on a shared file system
    job_deploy_sources=False,
    pass_default_storage_provider_args=True,
    pass_default_resources_args=True,
    # --envvars go in the Tiercel job's environment, not on its command line (which anyone may read in a listing)
    pass_envvar_declarations_to_cmd=False,
    auto_deploy_default_storage_provider=False,
    init_seconds_before_status_checks=0,
)


def _token(settings: ExecutorSettings) -> str | None:
    """--tiercel-token, else --tiercel-token-file; None leaves the search to the client ($TIERCEL_TOKEN,
    $TIERCEL_TOKEN_FILE, the local manager's admin.token)."""
    if settings.token:
        return settings.token
    if settings.token_file:
        path = Path(settings.token_file).expanduser()
        try:
            return path.read_text().strip()
        except OSError as exc:
            raise WorkflowError(f"tiercel: cannot read the token file {path}: {exc.strerror or exc}") from None
    return None


class Executor(RemoteExecutor):
    """Submits each job to a Tiercel manager and follows all of them with one request per status round."""

    def __post_init__(self) -> None:
        settings = self.workflow.executor_settings
        if settings is None:
            settings = ExecutorSettings()
        self.settings: ExecutorSettings = settings
        if self.workflow.remote_execution_settings.immediate_submit:
            raise WorkflowError("tiercel: --immediate-submit is not supported: Tiercel jobs carry no dependencies "
                                "on one another, so each job is submitted when its input is ready")
        try:
            url = ",".join(manager_urls(settings.url, "--tiercel-url")) if settings.url else None
            token = _token(settings)
            # Jobs are submitted from Snakemake's scheduling thread and followed from its status thread:
            # each has its own connection.
            self._submitter = Client(url, token)
            self._watcher = Client(url, token)
            who = self._submitter.whoami()
        except TiercelError as exc:
            raise WorkflowError(f"tiercel: {exc}") from None
        if who.get("role") == "worker":
            raise WorkflowError("tiercel: the token is a worker token, which can only run tasks; use a user's "
                                "token (tiercel token create --user NAME) in $TIERCEL_TOKEN")
        self._requires = split_tags(settings.requires)
        self._lock = threading.Lock()  # guards the counters, read at shutdown
        self.submitted = 0
        self.status_requests = 0
        self._live: set[int] = set()  # submitted and not yet reported ended: what an interrupt cancels
        self._missing: dict[int, int] = {}  # job id -> status rounds it has been absent
        self._unreachable = False
        self._told: set[str] = set()  # why queued jobs wait, as already logged
        self.logger.info(f"tiercel: submitting to {self._submitter.url} as {who.get('user', '?')}")

    # ---- submit --------------------------------------------------------------------------------

    def run_job(self, job: JobExecutorInterface) -> None:
        command = self.format_job_exec(job)
        fields = job_fields(job, name=self.get_jobname(job).removesuffix(".sh"), cwd=os.getcwd(), env=self.envvars(),
                            queue=self.settings.queue or None, requires=self._requires)
        try:
            submitted = self._submitter.submit(command, **fields)
        except TiercelError as exc:
            raise WorkflowError(f"tiercel: submitting {job} failed: {exc}") from None
        with self._lock:
            self.submitted += 1
            self._live.add(submitted.id)
        self.logger.debug(f"tiercel: job {job.jobid} submitted as Tiercel job {submitted.id}: {command}")
        self.report_job_submission(SubmittedJobInfo(job=job, external_jobid=str(submitted.id)))

    # ---- follow ----------------------------------------------------------------------------------

    async def check_active_jobs(
        self, active_jobs: list[SubmittedJobInfo]
    ) -> AsyncGenerator[SubmittedJobInfo, None]:
        if not active_jobs:
            return
        ids = [int(info.external_jobid) for info in active_jobs]
        async with self.status_rate_limiter:
            try:
                rows = self._watcher.jobs_by_id(ids)
            except TiercelError as exc:
                if not self._unreachable:
                    self.logger.warning(f"tiercel: cannot read the state of {len(ids)} jobs, trying again at the "
                                        f"next status check: {exc}")
                self._unreachable = True
                for info in active_jobs:
                    yield info
                return
        with self._lock:
            self.status_requests += 1
            count = self.status_requests
        if self._unreachable:
            self.logger.info("tiercel: the manager answers again")
            self._unreachable = False
        self.logger.debug(f"tiercel: status request {count}: {len(ids)} active jobs in one request")
        by_id = {int(row["id"]): row for row in rows}
        self._log_waiting(rows)
        for info in active_jobs:
            job_id = int(info.external_jobid)
            row = by_id.get(job_id)
            if row is None:
                missed = self._missing[job_id] = self._missing.get(job_id, 0) + 1
                if missed < MISSING_LIMIT:
                    yield info
                    continue
                self._missing.pop(job_id, None)
                with self._lock:
                    self._live.discard(job_id)
                self.report_job_error(info, msg=f"Tiercel job {job_id} is not known to the manager at "
                                                f"{self._watcher.url} (was its state lost, or the token changed?).")
                continue
            self._missing.pop(job_id, None)
            ended = verdict(row)
            if ended is None:
                yield info
                continue
            with self._lock:
                self._live.discard(job_id)
            if ended == "done":
                self.report_job_success(info)
            else:
                self._report_failure(info, row)

    def _report_failure(self, info: SubmittedJobInfo, row: dict[str, Any]) -> None:
        """Snakemake's error for a failed or cancelled job, with its task's exit code and stderr."""
        job_id = int(info.external_jobid)
        attempts: list[dict[str, Any]] = []
        stderr: str | None = None
        try:
            attempts = list(self._watcher.json("GET", f"/v1/jobs/{job_id}/tasks", params={"final": True}))
            if row.get("state") == "failed":
                stderr = self._watcher.request("GET", f"/v1/jobs/{job_id}/logs",
                                               params={"stream": "stderr"}).content.decode(errors="replace")
        except TiercelError as exc:
            self.logger.warning(f"tiercel: cannot read how job {job_id} ended: {exc}")
        message = failure_message(job_id, row, attempts, stderr, lines=self.settings.stderr_lines)
        if info.job.is_group():
            self.logger.error(message)  # a group's error report leaves the message out
        self.report_job_error(info, msg=message + "\n")

    def _log_waiting(self, rows: list[dict[str, Any]]) -> None:
        """Say why queued jobs wait (e.g. no worker has a required tag), each reason once."""
        waiting: dict[str, int] = {}
        for row in rows:
            reason = row.get("waiting")
            if row.get("state") == "queued" and reason and str(reason) not in self._told:
                waiting[str(reason)] = waiting.get(str(reason), 0) + 1
        for reason, count in waiting.items():
            self._told.add(reason)
            self.logger.info(f"tiercel: {count} job{'s' if count != 1 else ''} waiting: {reason}")

    # ---- stop ----------------------------------------------------------------------------------------

    def cancel_jobs(self, active_jobs: list[SubmittedJobInfo]) -> None:
        # Also those the status thread holds at this moment (it takes them out of active_jobs while it looks).
        with self._lock:
            ids = sorted(self._live | {int(info.external_jobid) for info in active_jobs})
            self._live.clear()
        cancelled = 0
        for job_id in ids:
            try:
                self._submitter.json("POST", f"/v1/jobs/{job_id}/cancel")
                cancelled += 1
            except TiercelError as exc:
                self.logger.warning(f"tiercel: cancelling Tiercel job {job_id} failed: {exc}")
        if cancelled:
            self.logger.info(f"tiercel: cancelled {cancelled} Tiercel job{'s' if cancelled != 1 else ''}")

    def shutdown(self) -> None:
        super().shutdown()
        with self._lock:
            submitted, requests = self.submitted, self.status_requests
        if submitted:
            self.logger.info(f"tiercel: {submitted} jobs submitted; their state read in {requests} status requests")
        self._submitter.close()
        self._watcher.close()
