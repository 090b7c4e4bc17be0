"""Failures over a real Gfarm: a file-system node that dies mid-job, and CSF4's Demo 4 end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.data.conftest import DataCluster
from tests.data.test_placement import put_many, ran_on
from tests.gfarm import Gfarm
from tests.integration.conftest import wait_until

pytestmark = pytest.mark.integration


def test_a_node_that_dies_mid_job_sends_its_tasks_to_the_other_replica(data_cluster: DataCluster,
                                                                      gfarm: Gfarm) -> None:
    folder = gfarm.workdir()
    files = put_many(gfarm, folder, 80, 5000, "gfnode1", "gfnode2")
    data_cluster.start_node_worker("gfnode1")
    data_cluster.start_node_worker("gfnode2")
    client = data_cluster.client()
    wait_until(lambda: len(client.workers()) == 2, 30, "two workers")
    job = client.submit('cat $TIERCEL_INPUTS > /dev/null && echo "$TIERCEL_DATA_NODE" && sleep 0.3', queue=80,
                        inputs=[f"gfarm://{folder}/in/f_{{index}}"], append_index=False)
    try:
        wait_until(lambda: job.refresh().data["done"] >= 10, 120, "ten tasks done")
        gfarm.node("kill", 2)  # a crash: gfmd sees it down at once
        done = data_cluster.wait_job(job, timeout=300)
    finally:
        gfarm.node("start", 2)
    assert done.data["state"] == "done", done.data
    assert done.data["done"] == 80
    finals = [r for r in done.results()]
    assert sorted(r.index for r in finals) == list(range(80))  # every task settled once, done
    nodes = ran_on(done, 80)
    assert set(nodes.values()) <= {"gfnode1", "gfnode2"}
    assert all(nodes[i] in {"gfnode1", "gfnode2"} for i in range(len(files)))


RSL = """& (executable = /bin/sh)
  (arguments = -c "i=$TIERCEL_TASK_INDEX; tr acgt ACGT < seq_$i.fa > motifs_$i.txt; echo meme $i")
  (count = 3)
  (fileStageIn = (gfarm://{folder}/seq_{{index}}.fa seq_{{index}}.fa))
  (fileStageOut = (motifs_{{index}}.txt gfarm://{folder}/motifs_{{index}}.txt))
  (stdout = meme.out)
"""


def test_csf4_demo_4_an_rsl_job_reads_and_writes_gfarm(data_cluster: DataCluster, gfarm: Gfarm,
                                                       tmp_path: Path) -> None:
    folder = gfarm.workdir()
    for i in range(3):
        gfarm.put(f"{folder}/seq_{i}.fa", f"acgtacgt{i}\n".encode(), f"gfnode{i + 1}")
    for node in gfarm.nodes:
        data_cluster.start_node_worker(node)
    (tmp_path / "meme.rsl").write_text(RSL.format(folder=folder))
    env = {**data_cluster.env(), "TIERCEL_JOBS_DIR": str(tmp_path / "jobs")}

    def tiercel(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "tiercel", *args], env=env, cwd=tmp_path, capture_output=True,
                              text=True, timeout=180)

    created = tiercel("job", "create", "--rsl", "meme.rsl", "--name", "meme")
    assert created.returncode == 0, created.stderr
    assert tiercel("job", "submit", "meme").returncode == 0
    data = tiercel("job", "data", "meme", "--quiet", "--json")
    assert data.returncode == 0, data.stdout + data.stderr
    out = json.loads(data.stdout)
    # each output listed with the node it was written on: where its task ran, where its sequence was
    listed = [{"task": i, "url": f"gfarm://{folder}/motifs_{i}.txt", "node": f"gfnode{i + 1}"} for i in range(3)]
    assert out["gfarm_outputs"] == listed
    job_id = str(out["job"]["id"])
    logs = tiercel("logs", job_id, "--data", "--json")  # the same list, from tiercel logs
    assert logs.returncode == 0, logs.stderr
    assert json.loads(logs.stdout) == {"job": int(job_id), "outputs": listed}
    one = json.loads(tiercel("logs", job_id, "--data", "--json", "--task", "1").stdout)
    assert one["outputs"] == listed[1:2]
    table = tiercel("logs", job_id, "--data").stdout.splitlines()
    assert table[0].split() == ["TASK", "URL", "NODE"]
    assert table[3].split() == ["2", f"gfarm://{folder}/motifs_2.txt", "gfnode3"]
    refused = tiercel("logs", job_id, "--data", "--stderr")
    assert refused.returncode != 0 and "data: lists the outputs of done tasks" in refused.stderr
    for i in range(3):
        assert gfarm.read(f"{folder}/motifs_{i}.txt") == f"ACGTACGT{i}\n".encode()
        # each ran where its sequence was, and wrote its motifs there
        assert gfarm.where(f"{folder}/motifs_{i}.txt")[f"{folder}/motifs_{i}.txt"] == {f"gfnode{i + 1}"}
    assert (tmp_path / "meme.out").read_text().split() == ["meme", "0", "meme", "1", "meme", "2"]
