"""What array users reach for daily, against a real manager and workers: logs by pages, followed and
written to files; the history of ended jobs; dropping the outputs of ended jobs."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import Cluster, wait_until

pytestmark = pytest.mark.integration

N = 1_000
PAD = 9_000  # each task prints its index padded to this many digits: about 9 MB for the job, several pages


def expected_logs(n: int, failing: set[int]) -> str:
    return "".join(f"==> task {i} (attempt 1, {'failed' if i in failing else 'done'}, exit "
                   f"{3 if i in failing else 0}) <==\n{i:0{PAD}d}\n" for i in range(n))


def test_logs_of_a_large_job_come_by_pages_to_stdout_json_and_files(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_worker("--slots", "4")
    failing = {7, 507}
    command = f"printf '%0{PAD}d\\n' $1; case $1 in 7|507) echo bad $1 >&2; exit 3;; esac"
    with cluster.client() as c:
        job = cluster.wait_job(c.submit(command, queue=N), 180)
        assert (job.data["done"], job.data["failed"]) == (N - 2, 2)

    every = cluster.cli("logs", str(job.id))
    assert every.returncode == 0, every.stderr
    assert every.stdout == expected_logs(N, failing)  # every task once, in task order, across pages

    failed = cluster.cli("logs", str(job.id), "--failed", "--stderr")
    assert failed.stdout == ("==> task 7 (attempt 1, failed, exit 3) <==\nbad 7\n"
                             "==> task 507 (attempt 1, failed, exit 3) <==\nbad 507\n")
    one = cluster.cli("logs", str(job.id), "--task", "998")
    assert one.stdout == f"{998:0{PAD}d}\n"

    lines = cluster.cli("logs", str(job.id), "--json").stdout.splitlines()
    assert len(lines) == N
    rows = [json.loads(line) for line in lines]
    assert [r["index"] for r in rows] == list(range(N))
    assert rows[507]["stderr"] == "bad 507\n" and rows[507]["outcome"] == "failed" and rows[507]["exit_code"] == 3
    assert all(r["stdout"] == f"{r['index']:0{PAD}d}\n" and not r["base64"] for r in rows)

    out = tmp_path / "out"
    wrote = cluster.cli("logs", str(job.id), "--to", str(out))
    assert wrote.returncode == 0, wrote.stderr
    assert wrote.stdout.strip() == f"wrote {N + 2} file(s) into {out} from {N} task(s)"
    assert sorted(p.name for p in out.iterdir() if p.suffix == ".err") == ["507.err", "7.err"]  # non-empty only
    assert len(list(out.glob("*.out"))) == N
    assert (out / "123.out").read_text() == f"{123:0{PAD}d}\n" and (out / "7.err").read_text() == "bad 7\n"
    report = json.loads(cluster.cli("logs", str(job.id), "--task", "7", "--to", str(tmp_path / "seven"),
                                    "--json").stdout)
    assert (report["files"], report["tasks"]) == (2, 1)

    # The REST answer is streamed as the pages are read (chunked, no length known up front).
    with httpx.Client(base_url=cluster.url, headers={"Authorization": f"Bearer {cluster.admin_token}"}) as http, \
            http.stream("GET", f"/v1/jobs/{job.id}/logs") as resp:
        assert resp.headers.get("transfer-encoding") == "chunked" and "content-length" not in resp.headers
        assert b"".join(resp.iter_raw()) == "".join(f"{i:0{PAD}d}\n" for i in range(N)).encode()

    bad = cluster.cli("logs", str(job.id), "--task", str(N + 5))
    assert bad.returncode == 2 and f"task: {N + 5} is not an index of job {job.id}" in bad.stderr
    unknown = cluster.cli("logs", "424242")
    assert unknown.returncode == 2 and unknown.stderr.count("\n") == 1 and "not a job of yours" in unknown.stderr


def test_logs_follow_prints_tasks_as_they_settle_and_ends_with_the_job(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_worker("--slots", "2")
    mark = tmp_path / "failed-once"
    command = f"sleep 0.4; if [ $1 = 3 ] && [ ! -e {mark} ]; then touch {mark}; exit 5; fi; echo line $1"
    with cluster.client() as c:
        wait_until(lambda: c.workers(), what="the worker")
        job = c.submit(command, queue=24, retries=1)
    follow = subprocess.Popen([sys.executable, "-m", "tiercel", "logs", str(job.id), "--follow"],
                              env=cluster.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen: list[tuple[float, str]] = []

    def read() -> None:
        assert follow.stdout is not None
        for line in follow.stdout:
            seen.append((time.time(), line))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        assert follow.wait(timeout=90) == 0, follow.stderr.read() if follow.stderr else ""
    finally:
        follow.kill()
        reader.join(10)
    with cluster.client() as c:
        ended = c.job(job.id).data
    assert ended["state"] == "done"
    text = "".join(line for _, line in seen)
    blocks = text.split("==> ")  # tasks show as they settle: task 3's retry comes after the others
    assert blocks[0] == ""
    assert sorted(blocks[1:]) == sorted(f"task {i} (attempt {2 if i == 3 else 1}, done, exit 0) <==\nline {i}\n"
                                        for i in range(24))  # each once, the settling attempt
    first = seen[0][0]
    assert first < ended["ended"] - 1.0, "follow printed nothing before the job ended"

    # The Python client follows the same way; on an ended job it reads what settled and stops.
    with cluster.client() as c:
        again = c.job(job.id)
        assert b"".join(again.logs(follow=True)) == b"".join(f"line {i}\n".encode() for i in range(24))
        outputs = list(again.outputs(follow=True))
        assert [(o.index, o.attempt, o.stdout) for o in outputs] == [
            (i, 2 if i == 3 else 1, f"line {i}\n".encode()) for i in range(24)]


def test_history_shows_ended_jobs_with_counts_wall_time_and_places(cluster: Cluster) -> None:
    cluster.start_worker("--slots", "2", name="node-a")
    with cluster.client() as admin:
        alice = admin.json("POST", "/v1/tokens", json={"user": "alice", "role": "user"})["token"]
        admins = admin.whoami()["user"]
        root_job = cluster.wait_job(admin.submit("true", queue=2, name="admin-job"))
    with cluster.client(alice) as c:
        done = cluster.wait_job(c.submit("echo ok", queue=3, name="good"))
        failed = cluster.wait_job(c.submit("exit 1", queue=2, name="bad"))
        cancelled = c.submit("sleep 30", queue=4, name="stopped", append_index=False)
        wait_until(lambda: cancelled.refresh().data["running"] >= 1, what="a task to start")
        cancelled.cancel()
        running = c.submit("sleep 30", queue=1, name="still-running", append_index=False)
        wait_until(lambda: running.refresh().data["running"] == 1, what="the task to start")

        rows = c.history()
        assert [r["id"] for r in rows] == [cancelled.id, failed.id, done.id]  # the last ended first; not running
        by_id = {r["id"]: r for r in rows}
        assert (by_id[done.id]["state"], by_id[done.id]["done"], by_id[done.id]["total"]) == ("done", 3, 3)
        assert (by_id[failed.id]["failed"], by_id[cancelled.id]["cancelled"]) == (2, 4)
        assert by_id[done.id]["places"] == ["node-a"] == by_id[failed.id]["places"]
        assert by_id[done.id]["cpu"] >= 0 and by_id[failed.id]["cpu"] >= 0  # measured as each task exited
        assert by_id[cancelled.id]["cpu"] is None  # none of its tasks ran
        for r in rows:
            assert r["owner"] == "alice"
            assert r["wall"] == pytest.approx(r["ended"] - r["submitted"]) and r["wall"] >= 0
        assert [r["id"] for r in c.history(state="failed")] == [failed.id]
        assert [r["id"] for r in c.history(state="done,cancelled", since="1h")] == [cancelled.id, done.id]
        assert [r["id"] for r in c.history(limit=1)] == [cancelled.id]
        assert [r["id"] for r in c.history(everyone=True)] == [cancelled.id, failed.id, done.id]  # still hers
        assert c.history(since="2020-01-01T00:00") == rows

    table = cluster.cli("history", token=alice)
    assert table.returncode == 0, table.stderr
    header, *lines = table.stdout.splitlines()
    assert header.split() == ["ID", "NAME", "STATE", "TASKS", "DONE", "FAILED", "CANCELLED", "ENDED", "WALL", "CPU",
                              "WHERE"]
    assert [line.split()[:3] for line in lines] == [[str(cancelled.id), "stopped", "cancelled"],
                                                    [str(failed.id), "bad", "failed"], [str(done.id), "good", "done"]]
    for line in lines:  # aligned: every column starts under its header
        assert line[header.index("STATE"):].split()[0] in ("cancelled", "failed", "done")
        assert line[header.index("ENDED"):header.index("ENDED") + 4].isdigit()
    assert lines[2].split()[-2:] == [f"{rows[2]['cpu']:.1f}s", "node-a"]  # CPU time; where it ran
    assert lines[0].split()[-2] == "-"  # the cancelled job's one task was killed: no CPU time kept
    as_json = json.loads(cluster.cli("history", "--state", "failed", "--json", token=alice).stdout)
    assert [r["id"] for r in as_json] == [failed.id]

    everyone = json.loads(cluster.cli("history", "--all", "--json").stdout)
    assert {r["id"] for r in everyone} == {root_job.id, done.id, failed.id, cancelled.id}
    hers = json.loads(cluster.cli("history", "--user", "alice", "--json").stdout)
    assert [r["id"] for r in hers] == [cancelled.id, failed.id, done.id]
    assert [r["id"] for r in json.loads(cluster.cli("history", "--json").stdout)] == [root_job.id]  # the admin's own
    owners = cluster.cli("history", "--all")
    assert owners.stdout.splitlines()[0].split()[:3] == ["ID", "NAME", "OWNER"]

    for args, says in ((["--user", admins], "only an admin sees another user's history"),
                       (["--since", "yesterday"], "2d"), (["--since", "3 days"], "2026-11-21"),
                       (["--state", "finished"], "done, failed or cancelled")):
        refused = cluster.cli("history", *args, token=alice)
        assert refused.returncode == 2, (args, refused.stdout)
        assert refused.stderr.count("\n") == 1 and says in refused.stderr and refused.stdout == "", refused.stderr
    with httpx.Client(base_url=cluster.url, headers={"Authorization": f"Bearer {cluster.worker_token}"}) as http:
        assert http.get("/v1/history").status_code == 403


def test_forget_drops_the_outputs_of_ended_jobs_only_and_keeps_their_counts(cluster: Cluster) -> None:
    cluster.start_worker("--slots", "2")
    with cluster.client() as admin:
        alice = admin.json("POST", "/v1/tokens", json={"user": "alice", "role": "user"})["token"]
        bob = admin.json("POST", "/v1/tokens", json={"user": "bob", "role": "user"})["token"]
    with cluster.client(alice) as c:
        kept = cluster.wait_job(c.submit("echo out $1; echo err $1 >&2", queue=20))
        other = cluster.wait_job(c.submit("echo other $1", queue=5))
        running = c.submit("sleep 30", queue=1, append_index=False)
        wait_until(lambda: running.refresh().data["running"] == 1, what="the task to start")
        before = cluster.cli("logs", str(kept.id), token=alice).stdout
        assert before.count("out ") == 20

        for args, token, says in (([str(running.id)], alice, f"job {running.id} has not ended (running)"),
                                  ([str(kept.id), str(running.id)], alice, "has not ended"),
                                  ([str(kept.id), "424242"], alice, "424242 is not a job of yours"),
                                  ([str(kept.id)], bob, f"{kept.id} is not a job of yours")):
            refused = cluster.cli("forget", *args, token=token)
            assert refused.returncode == 2 and refused.stderr.count("\n") == 1 and says in refused.stderr, (
                args, refused.stderr)
            assert cluster.cli("logs", str(kept.id), token=alice).stdout == before  # nothing was dropped

        dropped = cluster.cli("forget", str(kept.id), str(other.id), token=alice)
        assert dropped.returncode == 0, dropped.stderr
        first, second = dropped.stdout.splitlines()
        assert first.startswith(f"job {kept.id}: dropped the outputs of 20 attempt(s), ") and "bytes" in first
        assert second.startswith(f"job {other.id}: dropped the outputs of 5 attempt(s)")

        after = cluster.cli("logs", str(kept.id), token=alice)
        assert after.stdout == "".join(f"==> task {i} (attempt 1, done, exit 0) <==\n" for i in range(20))
        assert "were dropped" in after.stderr and "tiercel forget" in after.stderr
        assert cluster.cli("logs", str(kept.id), "--task", "3", "--stderr", token=alice).stdout == ""
        job = c.job(kept.id)
        assert (job.state, job.data["done"], job.data["total"]) == ("done", 20, 20)  # counts stay
        assert [r.attempt for r in job.results()] == [1] * 20  # and the attempts
        [row] = [r for r in c.history() if r["id"] == kept.id]
        assert row["forgotten"] is not None
        again = json.loads(cluster.cli("forget", str(kept.id), "--json", token=alice).stdout)
        assert again == [{"job": kept.id, "rows": 0, "bytes": 0}]
        with httpx.Client(base_url=cluster.url, headers={"Authorization": f"Bearer {alice}"}) as http:
            refused = http.post(f"/v1/jobs/{running.id}/forget")
            assert refused.status_code == 409 and refused.json()["field"] == "job"
        running.cancel()

        third = cluster.wait_job(c.submit("echo third", queue=2, append_index=False))
    with cluster.client() as admin:  # an admin may drop anyone's
        answer = admin.job(third.id).forget()
        assert (answer["job"], answer["rows"]) == (third.id, 2) and answer["bytes"] >= 2 * len(b"third\n")
        assert admin.job(third.id).output(0) == b""
