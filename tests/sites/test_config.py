"""Site configuration: every mistake is one message naming the line, the key, the value and what is allowed."""

from __future__ import annotations

import pytest

from tiercel.config import ConfigError, loads
from tiercel.core.model import JobId, UserName
from tiercel.core.policy import Group
from tiercel.core.problems import Problem
from tiercel.core.sites import Mode, admissible
from tiercel.sites.config import PoolConfig, SiteConfig, infos


def load(text: str) -> object:
    """The sites of a configuration's text, or its problem with the line, as the manager reads them."""
    try:
        return loads(text).site_tables()
    except ConfigError as exc:
        return exc.problem


def test_a_good_config_keeps_file_order_with_the_pool_first() -> None:
    sites = load('[sites.hpc]\nkind = "slurm"\nmode = "pilot"\nmax_pilots = 3\npilot_walltime = "2h"\n\n'
                 '[sites.sge]\nkind = "sge"\nqueue = "all.q"\nmax_memory = "8G"\n')
    assert isinstance(sites, dict)
    assert list(sites) == ["pool", "hpc", "sge"]
    assert isinstance(sites["pool"], PoolConfig)
    hpc = sites["hpc"]
    assert isinstance(hpc, SiteConfig) and hpc.seconds("pilot_walltime") == 7200
    views = infos(sites)
    assert [v.mode for v in views] == [Mode.POOL, Mode.PILOT, Mode.NATIVE]
    assert views[2].limits.max_memory_mb == 8192


def test_a_pilot_site_names_the_gfarm_nodes_its_hosts_see() -> None:
    sites = load('[sites.hpc]\nkind = "slurm"\nmode = "pilot"\ndata_nodes = ["gfnode1", "gfnode2.example.org"]\n'
                 '[sites.here]\nkind = "local"\ndata_nodes = ["gfnode3"]\n')
    assert isinstance(sites, dict)
    hpc, here = sites["hpc"], sites["here"]
    assert isinstance(hpc, SiteConfig) and hpc.data_nodes == ["gfnode1", "gfnode2.example.org"]
    assert isinstance(here, SiteConfig) and here.data_nodes == ["gfnode3"]


@pytest.mark.parametrize(("text", "words"), [
    ('[sites.hpc]\nkind = "torque"\n', ["line 2: sites.hpc.kind", "'torque'", "slurm"]),
    ('[sites.hpc]\npartition = "short"\n', ["line 1: sites.hpc", "needs kind = one of local, slurm"]),
    ('[sites.hpc]\nkind = "slurm"\n\nmax_pilot = 3\n', ["line 4: sites.hpc.max_pilot", "is not a site option"]),
    ('[sites.hpc]\nkind = "slurm"\nmax_pilots = -1\n', ["line 3: sites.hpc.max_pilots", "-1"]),
    ('[sites.hpc]\nkind = "slurm"\npoll_interval = "soon"\n', ["line 3: sites.hpc.poll_interval", "'soon'"]),
    ('[sites.hpc]\nkind = "slurm"\ndirectives = ["--qos=x\\n#SBATCH --evil"]\n', ["single line"]),
    ('[sites."1x"]\nkind = "slurm"\n', ["must be a site name"]),
    ('[sites.pool]\nkind = "slurm"\n', ["line 2: sites.pool.kind", "is not a site option"]),
    ('[sites.hpc]\nkind = "sge"\ntags = ["bio", "a b"]\n', ["line 3: sites.hpc.tags", "'a b' must be a tag"]),
    ('[sites.hpc]\nkind = "sge"\ntags = ["x,y"]\n', ["line 3: sites.hpc.tags", "'x,y' must be a tag"]),
    ('[sites.hpc]\nkind = "slurm"\nmode = "pilot"\ndata_nodes = ["gfnode1", "gf node;rm"]\n',
     ["line 4: sites.hpc.data_nodes", "'gf node;rm' must be a Gfarm node's host name"]),
    ('[sites.hpc]\nkind = "slurm"\nmode = "pilot"\ndata_nodes = ["gfnode1", "gfnode1"]\n',
     ["line 4: sites.hpc.data_nodes", "names a node twice"]),
    ('[sites.hpc]\nkind = "slurm"\ndata_nodes = ["gfnode1"]\n',
     ["line 3: sites.hpc.data_nodes", "only a site that starts pilots", "mode is native"]),
    ('[sites.hpc]\nkind = "local"\ndata_nodes = "gfnode1"\n', ["line 3: sites.hpc.data_nodes", "valid list"]),
])
def test_mistakes_name_the_line_and_what_is_allowed(text: str, words: list[str]) -> None:
    problem = load(text)
    assert isinstance(problem, Problem)
    message = problem.message()
    for w in words:
        assert w in message, message


@pytest.mark.parametrize(("table", "most"), [
    ('kind = "sge"\nmode = "pilot"\nslots = 2\nmax_cpus = 8\n', 2),  # a task runs inside one pilot
    ('kind = "local"\nslots = 3\n', 3),
    ('kind = "sge"\nmode = "pilot"\nslots = 8\nmax_cpus = 4\n', 4),
    ('kind = "sge"\nmode = "native"\nslots = 2\nmax_cpus = 8\n', 8),  # no pilots: slots do not apply
])
def test_a_pilot_site_takes_no_task_larger_than_its_pilots(table: str, most: int) -> None:
    sites = load(f"[sites.hpc]\n{table}")
    assert isinstance(sites, dict)
    hpc = infos(sites)[1]
    assert admissible(Group(JobId(1), UserName("ann"), 1, cpus=most), [hpc]) is None
    refused = admissible(Group(JobId(1), UserName("ann"), 1, cpus=most + 1), [hpc])
    assert refused is not None and f"allows {most} core(s)" in refused.message()
