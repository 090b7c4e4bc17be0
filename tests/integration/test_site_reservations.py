"""Reservations on batch sites, and mirrored into the real Slurm (scontrol create reservation)."""

from __future__ import annotations

import getpass
import json
import signal
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.batch import slurm  # noqa: F401  (fixture: started here, a failure in CI)
from tests.integration.conftest import Cluster, wait_until
from tests.integration.test_sites import results, start, submit, wait_end

pytestmark = pytest.mark.integration
RUN = uuid.uuid4().hex[:6]  # Slurm's reservations outlive a test run that was cut short: names of this run's own
COURSE, LAB, BIG = f"course{RUN}", f"lab{RUN}", f"big{RUN}"


def slurm_reservation(name: str) -> str | None:
    """What `scontrol show reservation NAME` prints, or None when Slurm has no such reservation."""
    out = subprocess.run(["scontrol", "show", f"reservation={name}"], capture_output=True, text=True, timeout=20)
    return out.stdout if out.returncode == 0 and f"ReservationName={name}" in out.stdout else None


def test_a_reservation_mirrored_into_slurm_holds_cores_there_and_its_work_runs_inside(
        slurm: None, bare_cluster: Cluster, tmp_path: Path) -> None:  # noqa: F811
    cluster = bare_cluster
    # Tiercel lets 32 tasks into this site at once, more than the 16 cores Slurm has
    start(cluster, f'[sites.hpc]\nkind = "slurm"\nmode = "native"\nmax_in_flight = 32\npoll_interval = "0.5s"\n'
                   f'spool = "{tmp_path / "spool"}"\n\n'
                   '[sites.loc]\nkind = "local"\nmode = "pilot"\nmax_pilots = 1\nslots = 2\n')
    with cluster.client() as admin:
        bob = admin.json("POST", "/v1/tokens", json={"user": "bob"})["token"]
    made = cluster.cli("reserve", "create", "--site", "hpc", "--slots", "2", "--start", "now", "--end", "+10m",
                       "--users", "bob", "--name", COURSE, "--mirror", "--json")
    assert made.returncode == 0, made.stderr + cluster.dump_logs()
    assert json.loads(made.stdout)["mirror"] == f"tiercel-{COURSE}"
    shown = slurm_reservation(f"tiercel-{COURSE}")
    assert shown is not None, f"Slurm has no reservation tiercel-{COURSE}"
    assert f"Users={getpass.getuser()}" in shown and "CoreCnt=2" in shown and "State=ACTIVE" in shown
    listing = cluster.cli("reserve", "list")
    assert f"tiercel-{COURSE}" in listing.stdout and "hpc" in listing.stdout

    # bob's job goes to the reservation's site by itself, and Slurm runs its array inside the mirror
    out = cluster.cli("submit", "--json", "--reservation", COURSE, "--walltime", "1m", "--queue", "2",
                      "--no-index", "--", "sh", "-c", 'echo "in $SLURM_JOB_RESERVATION"', token=bob)
    assert out.returncode == 0, out.stderr
    job = int(json.loads(out.stdout)["id"])
    end = wait_end(cluster, job)
    assert end["done"] == 2, cluster.dump_logs()
    with cluster.client() as c:
        j = c.job(job)
        assert [j.output(i).decode() for i in range(2)] == [f"in tiercel-{COURSE}\n"] * 2
        assert {r.worker for r in j.results()} == {"site:hpc"}
    elsewhere = cluster.cli("submit", "--reservation", COURSE, "--walltime", "1m", "--site", "pool", "--",
                            "true", token=bob)
    assert elsewhere.returncode == 2
    assert f"site: 'pool' is not where reservation {COURSE} holds its slots (hpc)" in elsewhere.stderr

    # the mirror is stored with the reservation: a restarted manager still deletes it
    cluster.kill_manager(signal.SIGKILL)
    start(cluster, (cluster.root / "tiercel.toml").read_text())
    gone = cluster.cli("reserve", "delete", COURSE)
    assert gone.returncode == 0, gone.stderr
    wait_until(lambda: slurm_reservation(f"tiercel-{COURSE}") is None, 20, "Slurm's reservation to go")


def test_mirroring_that_cannot_be_done_changes_nothing(slurm: None, bare_cluster: Cluster,  # noqa: F811
                                                        tmp_path: Path) -> None:
    cluster = bare_cluster
    start(cluster, f'[sites.hpc]\nkind = "slurm"\nmode = "native"\nmax_in_flight = 32\npoll_interval = "0.5s"\n'
                   f'spool = "{tmp_path / "spool"}"\n\n'
                   '[sites.loc]\nkind = "local"\nmode = "pilot"\nmax_pilots = 1\nslots = 2\n')
    # Tiercel's own check passes (32 slots) but Slurm has 16 cores: its refusal comes back, nothing is kept
    big = cluster.cli("reserve", "create", "--site", "hpc", "--slots", "20", "--start", "now", "--end", "+10m",
                      "--name", BIG, "--mirror")
    assert big.returncode == 2
    assert "mirror: slurm refused the reservation: scontrol failed" in big.stderr, big.stderr
    assert json.loads(cluster.cli("reserve", "list", "--json").stdout) == []
    assert slurm_reservation(f"tiercel-{BIG}") is None
    pilot = cluster.cli("reserve", "create", "--site", "loc", "--slots", "1", "--start", "now", "--end", "+10m",
                        "--mirror")
    assert pilot.returncode == 2 and "cannot mirror reservations: only Slurm sites can" in pilot.stderr
    pool = cluster.cli("reserve", "create", "--slots", "1", "--start", "now", "--end", "+10m", "--mirror")
    assert pool.returncode == 2 and "mirror: a mirror is not possible: the pool is no batch system" in pool.stderr
    nowhere = cluster.cli("reserve", "create", "--site", "nowhere", "--slots", "1", "--start", "now",
                          "--end", "+10m")
    assert nowhere.returncode == 2 and "site: 'nowhere' is not a site here (sites: pool, hpc, loc" in nowhere.stderr
    too_big = cluster.cli("reserve", "create", "--site", "loc", "--slots", "3", "--start", "now", "--end", "+10m")
    assert too_big.returncode == 2 and "slots: 3 is more than site loc has (2)" in too_big.stderr
    # without a mirror a reservation on a pilot site is Tiercel's own, and its work is bound there
    ok = cluster.cli("reserve", "create", "--site", "loc", "--slots", "2", "--start", "now", "--end", "+10m",
                     "--name", LAB, "--json")
    assert ok.returncode == 0 and json.loads(ok.stdout)["mirror"] is None, ok.stderr
    job = submit(cluster, "--reservation", LAB, "--walltime", "1m", "--queue", "3", "--", "true")
    assert wait_end(cluster, job)["done"] == 3
    names = {w["id"]: w["name"] for w in json.loads(cluster.cli("workers", "--json").stdout)}
    ran_on = {names.get(str(r["worker"]), str(r["worker"])) for r in results(cluster, job)}
    assert ran_on and all(n.startswith("loc.") for n in ran_on), ran_on  # a pilot of loc, not site:hpc


def test_pilots_for_a_mirrored_reservation_start_inside_it_and_run_only_its_work(
        slurm: None, bare_cluster: Cluster, tmp_path: Path) -> None:  # noqa: F811
    cluster = bare_cluster
    # pilots stay 20 s when idle: the reservation's pilot is still in it when the reservation is deleted
    start(cluster, f'[sites.hpc]\nkind = "slurm"\nmode = "pilot"\nslots = 2\nmax_pilots = 3\n'
                   f'pilot_walltime = "10m"\nidle_timeout = "20s"\npoll_interval = "0.5s"\n'
                   f'spool = "{tmp_path / "spool"}"\n')
    made = cluster.cli("reserve", "create", "--site", "hpc", "--slots", "2", "--start", "now", "--end", "+10m",
                       "--name", LAB, "--mirror", "--json")
    assert made.returncode == 0, made.stderr + cluster.dump_logs()
    assert slurm_reservation(f"tiercel-{LAB}") is not None
    job = submit(cluster, "--reservation", LAB, "--walltime", "1m", "--queue", "6", "--no-index", "--",
                 "sh", "-c", 'echo "in $SLURM_JOB_RESERVATION"')
    other = submit(cluster, "--site", "hpc", "--queue", "4", "--no-index", "--",
                   "sh", "-c", 'echo "in ${SLURM_JOB_RESERVATION:-no reservation}"')
    assert wait_end(cluster, job, 180)["done"] == 6
    assert wait_end(cluster, other, 180)["done"] == 4
    with cluster.client() as c:
        inside = {c.job(job).output(i).decode() for i in range(6)}
        outside = {c.job(other).output(i).decode() for i in range(4)}
    assert inside == {f"in tiercel-{LAB}\n"}  # every task of the reservation ran on a pilot inside Slurm's
    assert outside == {"in no reservation\n"}  # and no other work ran on those pilots
    # Slurm will not delete a reservation its pilot still runs in: Tiercel deletes it once the pilot has left
    gone = cluster.cli("reserve", "delete", LAB)
    assert gone.returncode == 0, gone.stderr
    assert LAB not in cluster.cli("reserve", "list").stdout
    assert "still has jobs running in it; it is deleted once they end" in gone.stderr
    assert slurm_reservation(f"tiercel-{LAB}") is not None
    wait_until(lambda: slurm_reservation(f"tiercel-{LAB}") is None, 90, "Slurm's reservation to go")
