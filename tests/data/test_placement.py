"""Data-aware placement over a real Gfarm: tasks run where their files are, files move once when
they must, outputs go back into Gfarm, and a node that dies does not lose a task."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from tests.data.conftest import DataCluster
from tests.gfarm import Gfarm
from tests.integration.conftest import wait_until

pytestmark = pytest.mark.integration

N = int(os.environ.get("TIERCEL_TEST_DATA_TASKS", "300"))
READ = 'cat $TIERCEL_INPUTS | wc -c > /dev/null && echo "$TIERCEL_DATA_NODE" && sleep 0.2'


def put_many(gfarm: Gfarm, folder: str, n: int, size: int, *nodes: str) -> list[str]:
    """n files of ``size`` bytes in one Gfarm folder, on the first node, replicated to the others."""
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp, "in")
        local.mkdir()
        for i in range(n):
            (local / f"f_{i}").write_bytes(os.urandom(size))
        (Path(tmp) / "hosts").write_text(nodes[0] + "\n")
        gfarm.run("gfpcopy", "-q", "-B", "-H", str(Path(tmp) / "hosts"), str(local), f"gfarm://{folder}")
    paths = [f"{folder}/in/f_{i}" for i in range(n)]
    for node in nodes[1:]:
        gfarm.run("gfrep", "-q", "-D", node, *paths)
    return paths


def ran_on(job: object, n: int) -> dict[int, str]:
    outs = {o.index: o.stdout.decode().strip() for o in job.outputs()}  # type: ignore[attr-defined]
    assert len(outs) == n
    return outs


def test_each_task_runs_where_its_file_is_and_node_3_only_through_copies(data_cluster: DataCluster,
                                                                         gfarm: Gfarm) -> None:
    folder = gfarm.workdir()
    files = put_many(gfarm, folder, N, 20_000, "gfnode1", "gfnode2")
    for node in gfarm.nodes:
        data_cluster.start_node_worker(node)
    wait_until(lambda: len(data_cluster.client().workers()) == 3, 30, "three workers")
    job = data_cluster.client().submit(READ, queue=N, inputs=[f"gfarm://{folder}/in/f_{{index}}"], append_index=False)
    done = data_cluster.wait_job(job, timeout=300)
    assert done.data["state"] == "done", done.data
    where = gfarm.where(*files)
    nodes = ran_on(done, N)
    local = sum(nodes[i] in where[f] for i, f in enumerate(files))
    assert local >= 0.95 * N, f"{local} of {N} tasks ran where their file is"
    on_3 = [i for i, n in nodes.items() if n == "gfnode3"]
    # node 3 held nothing: each task it ran had its own file copied there first, once
    assert all("gfnode3" in where[files[i]] for i in on_3)
    copied_to_3 = [f for f in files if "gfnode3" in where[f]]
    assert len(copied_to_3) <= len(on_3) + 3  # (a copy made for a task that then ran elsewhere: at most a few)
    log = (data_cluster.logs / "manager.log").read_text()
    assert all(log.count(f"copying {f} to gfnode3 ") <= 1 for f in files)  # each file copied there once


def test_a_file_every_task_reads_is_copied_at_most_once_per_node(data_cluster: DataCluster, gfarm: Gfarm) -> None:
    folder = gfarm.workdir()
    [ref] = put_many(gfarm, folder, 1, 200_000, "gfnode1")
    for node in gfarm.nodes:
        data_cluster.start_node_worker(node)
    wait_until(lambda: len(data_cluster.client().workers()) == 3, 30, "three workers")
    job = data_cluster.client().submit(READ, queue=60, inputs=[f"gfarm://{ref}"], append_index=False)
    done = data_cluster.wait_job(job, timeout=300)
    assert done.data["state"] == "done", done.data
    nodes = set(ran_on(done, 60).values())
    where = gfarm.where(ref)[ref]
    assert nodes <= where  # every task read it where a replica was
    log = (data_cluster.logs / "manager.log").read_text()
    for node in ("gfnode2", "gfnode3"):
        assert log.count(f"copying {ref} to {node}") <= 1, log[-3000:]


def test_outputs_go_into_gfarm_on_the_node_where_the_task_ran(data_cluster: DataCluster, gfarm: Gfarm) -> None:
    folder = gfarm.workdir()
    put_many(gfarm, folder, 4, 1000, "gfnode2")
    data_cluster.start_node_worker("gfnode2")
    job = data_cluster.client().submit(
        'wc -c < "$TIERCEL_INPUTS" > "$TIERCEL_OUTPUTS"', queue=4, inputs=[f"gfarm://{folder}/in/f_{{index}}"],
        outputs=[f"gfarm://{folder}/out_{{index}}.txt"], append_index=False)
    done = data_cluster.wait_job(job, timeout=120)
    assert done.data["state"] == "done", done.data
    logs = {o.index: o.stderr.decode() for o in done.outputs()}
    for i in range(4):
        assert f"tiercel: wrote gfarm://{folder}/out_{i}.txt on gfnode2" in logs[i]  # tiercel logs --stderr
        assert gfarm.read(f"{folder}/out_{i}.txt").strip() == b"1000"
        assert gfarm.where(f"{folder}/out_{i}.txt")[f"{folder}/out_{i}.txt"] == {"gfnode2"}


def test_a_missing_input_fails_its_task_or_refuses_the_job_as_asked(data_cluster: DataCluster, gfarm: Gfarm) -> None:
    folder = gfarm.workdir()
    put_many(gfarm, folder, 1, 10, "gfnode1")
    data_cluster.start_node_worker("gfnode1")
    client = data_cluster.client()
    job = client.submit("cat $TIERCEL_INPUTS", queue=2, inputs=[f"gfarm://{folder}/in/f_{{index}}"], append_index=False)
    done = data_cluster.wait_job(job, timeout=120)
    assert done.data["state"] == "failed"
    [failed] = [o for o in done.outputs() if o.outcome == "failed"]
    assert failed.index == 1 and f"input gfarm://{folder}/in/f_1 does not exist in Gfarm" in failed.stderr.decode()
    refused = data_cluster.cli("submit", "--queue", "2", "--input", f"gfarm://{folder}/in/f_{{index}}",
                               "--on-missing-input", "refuse", "--", "true")
    assert refused.returncode != 0
    assert f"gfarm://{folder}/in/f_1" in refused.stderr and "do not exist in Gfarm" in refused.stderr
    bad = data_cluster.cli("submit", "--queue", "2", "--input", "s3://bucket/x", "--", "true")
    assert bad.returncode != 0 and "inputs.0: 's3://bucket/x' has the scheme 's3'" in bad.stderr
