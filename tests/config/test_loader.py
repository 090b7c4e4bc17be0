"""The manager's configuration: read once, each table to its parser, every mistake one line: file, line, key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tiercel.config import ConfigError, ManagerConfig, load, load_queues, loads
from tiercel.config.source import locate
from tiercel.core.problems import Problem, SetupError
from tiercel.gateways.xmpp.config import XmppConfig
from tiercel.sites.config import PoolConfig, SiteConfig

WHOLE = '''\
# every table a manager reads today
[queues.batch]
policies = ["fairshare", "backfill"]
default = true
max_running_per_user = 2
description = "the usual"

[queues.batch.fairshare]
half_life = 3600
shares = { alice = 2, bob = 1 }

[queues.short]
policies = ["priority"]

[sites.pool]
max_cpus = 8

[sites.hpc]
kind = "slurm"
mode = "pilot"
partition = "short"
max_pilots = 3
pilot_walltime = "2h"
tags = ["gpu"]

[sites.sge]
kind = "sge"
queue = "all.q"
max_memory = "8G"

[xmpp]
jid = "tiercel@example.org"
password_file = "xmpp.password"
workers = ["node1@example.org", "*@workers.example.org"]

[xmpp.users]
"Alice@Example.org" = "alice"
'''


def write(tmp_path: Path, text: str, name: str = "tiercel.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def refusal(path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load(path)
    return str(caught.value)


def test_a_whole_file_fills_every_table(tmp_path: Path) -> None:
    (tmp_path / "xmpp.password").write_text("secret\n")
    (tmp_path / "xmpp.password").chmod(0o600)
    config = load(write(tmp_path, WHOLE))

    assert list(config.queues) == ["batch", "short"]
    batch = config.queues["batch"]
    assert batch.default and not config.queues["short"].default
    assert batch.policies == ("fairshare", "backfill", "fcfs") and batch.limits == {"per_user": 2}
    assert batch.description == "the usual"

    assert isinstance(config.pool, PoolConfig) and config.pool.max_cpus == 8
    assert list(config.sites) == ["hpc", "sge"]
    hpc = config.sites["hpc"]
    assert isinstance(hpc, SiteConfig) and hpc.kind == "slurm" and hpc.seconds("pilot_walltime") == 7200
    assert config.sites["sge"].limits().max_memory_mb == 8192
    assert list(config.site_tables()) == ["pool", "hpc", "sge"]  # as the manager's settings keep them

    assert isinstance(config.xmpp, XmppConfig)
    assert config.xmpp.secret() == "secret"  # password_file beside the config file, not the working dir
    assert config.xmpp.users == {"alice@example.org": "alice"}
    assert config.xmpp.may_work("n1@workers.example.org")


def test_an_empty_file_is_all_defaults(tmp_path: Path) -> None:
    config = load(write(tmp_path, "# nothing yet\n"))
    assert config == ManagerConfig()
    assert config.site_tables() == {} and config.xmpp is None and config.queues == {}


def test_a_lone_pool_table_is_still_a_sites_configuration() -> None:
    config = loads("[sites.pool]\nmax_cpus = 2\n")
    assert config.sites == {} and list(config.site_tables()) == ["pool"]


@pytest.mark.parametrize(("text", "expected"), [
    # [queues.NAME]
    ('[queues.q]\npolicies = ["fairshare", "nope"]\n', "line 2: queues.q.policies: 'nope' is not a known policy"),
    ('[queues.q]\ncolour = "red"\n', "line 2: queues.q.colour: 'red' is not a queue setting"),
    ('[queues.q]\nmax_running = -3\n', "line 2: queues.q.max_running: -3 must be a whole number of at least 1"),
    ('[queues.q]\npolicies = ["fairshare"]\n\n[queues.q.fairshare]\nhalf_life = -1\n',
     "line 5: queues.q.fairshare.half_life: -1 must be a number of at least 1"),
    ('[queues.q]\npolicies = ["fairshare"]\nfairshare = { half_life = -1 }\n',
     "line 3: queues.q.fairshare.half_life: -1 must be a number of at least 1"),
    ('[queues."night shift"]\nmax_per_cycle = 0\n', "line 2: queues.night shift.max_per_cycle: 0 must be"),
    ('[queues.a]\ndefault = true\n[queues.b]\ndefault = true\n', "line 1: queues: ['a', 'b'] more than one queue"),
    ("queues = 3\n", "line 1: queues: 3 must be a table with at least one [queues.NAME]"),
    # [sites.NAME]
    ('[sites.hpc]\nkind = "torque"\n', "line 2: sites.hpc.kind: 'torque' is not allowed for kind"),
    ('[sites.hpc]\npartition = "short"\n', "line 1: sites.hpc: 'hpc' needs kind = one of local, slurm"),
    ('[sites.hpc]\nkind = "slurm"\n\nmax_pilot = 3\n', "line 4: sites.hpc.max_pilot: 3 is not a site option"),
    ('[sites]\nhpc.kind = "slurm"\nhpc.poll_interval = "soon"\n', "line 3: sites.hpc.poll_interval: 'soon'"),
    ('[sites.pool]\nmax_cpus = 0\n', "line 2: sites.pool.max_cpus: 0 is not valid for max_cpus"),
    # [xmpp]
    ('[xmpp]\njid = "t@example.org"\npassword = "pw"\ntls = "ssl"\n',
     "line 4: xmpp.tls: 'ssl' is not allowed: choose starttls, direct or plain"),
    ('[xmpp]\njid = "t@example.org"\npassword = "pw"\n\n[xmpp.users]\nalice = "alice"\n',
     "line 5: xmpp.users: {'alice': 'alice'} key 'alice' must be a bare JID"),
    ('[xmpp]\njid = "t@example.org"\npassword = "pw"\npassword_file = "pw"\n',
     "line 1: xmpp: give exactly one of password and password_file"),
    ('[xmpp]\njid = "t@example.org"\npassword = "pw"\ncolour = "blue"\n',
     "line 4: xmpp.colour: is not an [xmpp] setting"),
])
def test_each_tables_mistakes_name_the_file_the_line_and_the_key(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    message = refusal(path)
    assert message.startswith(f"{path}: {expected}"), message


def test_a_password_file_is_looked_for_beside_the_config_and_named_with_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, '[xmpp]\njid = "t@example.org"\n\npassword_file = "nope"\n')
    assert refusal(path) == f"{path}: line 4: xmpp.password_file: '{tmp_path}/nope' is not a readable file"


def test_of_several_mistakes_the_first_in_the_file_is_reported(tmp_path: Path) -> None:
    path = write(tmp_path, '[sites.hpc]\nkind = "torque"\n\n[queues.q]\npolicies = ["nope"]\n')
    assert "line 2: sites.hpc.kind" in refusal(path)


@pytest.mark.parametrize(("text", "key", "line"), [
    ('[queues.q]\n\n[colour]\nred = 1\n', "colour", 3),
    ('listen = "0.0.0.0:8750"\n[queues.q]\n', "listen", 1),
    ('[queue.q]\npolicies = ["fcfs"]\n', "queue", 1),
])
def test_an_unknown_table_is_refused_by_name_with_the_known_ones(tmp_path: Path, text: str, key: str,
                                                                 line: int) -> None:
    path = write(tmp_path, text)
    assert refusal(path) == (f"{path}: line {line}: {key}: is not a table of the manager's configuration (known: "
                             "[queues.NAME], [sites.NAME], [xmpp], [store], [data], [peers.NAME])")


def test_the_data_table_sets_the_copy_rate_and_the_recheck_of_unreadable_replicas() -> None:
    data = loads('[data]\ncopy_rate = "10MB/s"\nrecheck_unreadable = "2m"\n').data
    assert data.copy_rate == 10e6 and data.recheck_unreadable == 120
    assert loads('[data]\ncopy_rate = "1.5 GiB/s"\n').data.copy_rate == 1.5 * 2**30
    assert loads('[data]\ncopy_rate = 2500\n').data.copy_rate == 2500  # bytes per second
    default = loads('[queues.q]\n').data
    assert default.copy_rate is None and default.recheck_unreadable == 60


@pytest.mark.parametrize(("text", "expected"), [
    ('[data]\ncopy_rate = "fast"\n', "line 2: data.copy_rate: 'fast' must be a rate such as \"10MB/s\""),
    ('[data]\ncopy_rate = "10Mb/s"\n', "line 2: data.copy_rate: '10Mb/s' must be a rate"),
    ('[data]\ncopy_rate = "0MB/s"\n', "line 2: data.copy_rate: '0MB/s' must be a rate"),
    ('[data]\ncopy_rate = -5\n', "line 2: data.copy_rate: -5 must be a rate"),
    ('[data]\ncopy_rate = true\n', "line 2: data.copy_rate: True must be a rate"),
    ('[data]\nrecheck_unreadable = "soon"\n', "line 2: data.recheck_unreadable: 'soon' must be a duration"),
    ('[data]\n\ngfarm = "/gfarm"\n', "line 3: data.gfarm: '/gfarm' is not a [data] option; options: copy_rate, "
                                     "recheck_unreadable"),
    ('data = 3\n', "line 1: data: 3 must be a table [data]"),
])
def test_a_bad_data_table_is_refused_naming_the_key(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        loads(text)
    assert str(err.value).startswith(expected), str(err.value)


def test_the_store_table_gives_a_postgresql_store_with_its_password_file_beside_the_config(tmp_path: Path) -> None:
    (tmp_path / "store.password").write_text("s3cret\n")
    (tmp_path / "store.password").chmod(0o600)
    path = write(tmp_path, '[store]\nurl = "postgresql://tiercel@db:5433/tiercel"\npassword_file = "store.password"\n'
                           'name = "m1"\nlease = 3\n')
    store = load(path).store
    assert store is not None and (store.name, store.lease) == ("m1", 3.0)
    assert store.connect_url() == "postgresql://tiercel:s3cret@db:5433/tiercel"


@pytest.mark.parametrize(("text", "expected"), [
    ('[store]\nurl = "mysql://db/tiercel"\n', "line 2: store.url: 'mysql://db/tiercel' must be a postgresql:// URL"),
    ('[store]\nurl = "postgresql://u:pw@db"\n', "line 2: store.url: 'db' must name a database"),
    ('[store]\nurl = "postgresql://db/t"\nlease = 0.1\n', "line 3: store.lease: 0.1 must be a number of seconds"),
    ('[store]\nname = "m1"\n', "store.url: is required"),
    ('[store]\nurl = "postgresql://db/t"\nleese = 3\n', "line 3: store.leese: 3 is not a key of [store]"),
    ('[store]\nurl = "postgresql://db/t"\npassword_file = "nope"\n', "store.password_file: "),
])
def test_a_bad_store_table_is_refused_naming_the_key_and_never_showing_a_password(
        tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    message = refusal(path)
    assert expected in message and "pw" not in message, message


def test_a_syntax_error_names_the_file_and_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, '[queues.q]\npolicies = ["fcfs"\n\n[sites.hpc]\n')
    message = refusal(path)
    assert message.startswith(f"config: {path} is not valid TOML: ") and "(at line 4, column 1)" in message


def test_a_file_that_cannot_be_read_or_is_not_text_is_one_line(tmp_path: Path) -> None:
    assert refusal(tmp_path / "missing.toml") == f"config: '{tmp_path}/missing.toml' cannot be read: " \
                                                 "No such file or directory"
    latin = tmp_path / "latin.toml"
    latin.write_bytes(b'[queues.q]\ndescription = "caf\xe9"\n')
    assert refusal(latin).startswith(f"config: {latin} is not valid TOML: 'utf-8' codec can't decode")


def test_a_config_error_is_a_setup_error_and_keeps_its_problem(tmp_path: Path) -> None:
    with pytest.raises(SetupError) as caught:
        load(write(tmp_path, '[sites.hpc]\nkind = "torque"\n'))
    assert isinstance(caught.value, ConfigError)
    assert caught.value.problem.value == "torque" and caught.value.problem.field.endswith("line 2: sites.hpc.kind")


def test_load_queues_reads_only_queues_and_names_file_and_line(tmp_path: Path) -> None:
    # a manager's whole file: its [xmpp] password file is missing, which is not the simulator's business
    path = write(tmp_path, '[xmpp]\njid = "t@example.org"\npassword_file = "gone"\n\n'
                           '[queues.q]\npolicies = ["backfill"]\n')
    queues = load_queues(path)
    assert isinstance(queues, dict) and queues["q"].default
    bad = load_queues(write(tmp_path, '[queues.q]\n\npolicies = ["nope"]\n', "bad.toml"))
    assert isinstance(bad, Problem) and bad.message().startswith(f"{tmp_path}/bad.toml: line 3: queues.q.policies: "
                                                                 "'nope' is not a known policy")
    missing = load_queues(tmp_path / "none.toml")
    assert isinstance(missing, Problem) and missing.message().startswith("queue-config: ")


def test_the_manager_refuses_to_start_with_the_one_line_and_makes_nothing(tmp_path: Path) -> None:
    path = write(tmp_path, '[queues.q]\npolicies = ["fcfs"]\n\n[data]\ngfarm = "/gfarm"\n')
    out = subprocess.run([sys.executable, "-m", "tiercel", "manager", "--listen", "127.0.0.1:0", "--state-dir",
                          str(tmp_path / "state"), "--config", str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert f"{path}: line 5: data.gfarm: '/gfarm' is not a [data] option" in out.stderr
    assert not (tmp_path / "state").exists()


@pytest.mark.parametrize(("text", "key", "line"), [
    ('[a]\nb = 1\n', "a.b", 2),
    ('[a]\nb = 1\n', "a.c", 1),  # not written: its table
    ('[a]\nb = 1\n', "z", None),
    ('# [a]\n[ a . "b.c" ]  # comment\nd = 1\n', "a.b.c.d", 3),
    ("[a]\n'b' = 1\n", "a.b", 2),
    ('[a]\ntext = """\nb = 1\n"""\nb = 2\n', "a.b", 5),  # a line inside a multi-line string is no key
    ("[[a]]\nb = 1\n", "a.b", 2),
    ('[a]\nlist = [\n  "b = 1",\n]\nb = 2\n', "a.b", 5),
    ('x.y = 1\n[x.z]\n', "x.z", 2),
])
def test_locate_finds_the_line_that_names_the_most_of_a_key(text: str, key: str, line: int | None) -> None:
    assert locate(text, key) == line


# ---- [peers.NAME] ---------------------------------------------------------------------------


def test_peers_are_read_with_their_token_file_beside_the_config(tmp_path: Path) -> None:
    (tmp_path / "b.token").write_text("tc_x\n")
    (tmp_path / "b.token").chmod(0o600)
    path = write(tmp_path, '[peers.B]\nurl = "http://b:8750/"\ntoken_file = "b.token"\nuser = "fed-b"\n'
                           'timeout = "30s"\n\n[peers.C]\n')
    peers = load(path).peers
    assert list(peers) == ["B", "C"]
    b, c = peers["B"], peers["C"]
    assert (b.url, b.token_file, b.user, b.timeout, b.start_timeout) == ("http://b:8750", tmp_path / "b.token",
                                                                        "fed-b", 30.0, 300.0)
    assert (c.url, c.token_file, c.user) == (None, None, "peer-C")  # C connects in


@pytest.mark.parametrize(("text", "expected"), [
    ('[peers.B]\nurl = "ftp://b"\ntoken_file = "t"\n', "line 2: peers.B.url: 'ftp://b' must be an http:// or "
                                                        "https:// URL of a manager"),
    ('[peers.B]\nurl = "http://b:8750"\n', "line 1: peers.B.token_file: is needed with url"),
    ('[peers.B]\nurl = "http://b:8750"\ntoken_file = "nope"\n', "line 3: peers.B.token_file: "),
    ('[peers.B]\ntimeout = "soon"\n', "line 2: peers.B.timeout: 'soon'"),
    ('[peers.B]\ntimeout = "-5s"\n', "line 2: peers.B.timeout: '-5s'"),
    ('[peers.B]\nurll = "http://b"\n', "line 2: peers.B.urll: 'http://b' is not a peer option; options: url, "),
    ('[peers."b c"]\n', "line 1: peers.b c: 'b c' must be a peer name"),
    ('[sites.hpc]\nkind = "local"\n\n[peers.hpc]\n', "line 4: peers.hpc: 'hpc' is also a site's name"),
])
def test_a_bad_peer_table_is_refused_naming_the_key(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    message = refusal(path)
    assert message.startswith(f"{path}: {expected}"), message
