"""The parsers of Gfarm's commands, over output recorded from the real commands (gfarm-client 2.7.20)."""

from __future__ import annotations

import pytest

from tiercel.core.data import DataView, unreadable, written, wrote_line
from tiercel.data.gfarm import parse_hosts, parse_sizes, parse_up, parse_where

WHERE_MANY = "/d/a:\ngfnode3 gfnode1\n\n/d/b:\ngfnode2\n"
WHERE_DOWN = "/d/big:\ngfnode2- gfnode3\n\n/d/small:\ngfnode2-\n"
LS = ("-rw-r--r-- 1 root     gfarmadm     100000 Dec  1 14:01 /d/a\n"
      "-rw-r--r-- 1 root     gfarmadm     100000 Dec  1 14:01 /d/with space\n")
HOSTS = ("0.91/0.66/0.65 s x86_64-debian12-linux 2 gfnode1 10611 0(127.0.0.2)\n"
         "-.--/-.--/-.-- - x86_64-debian12-linux 2 gfnode2 10612 0(127.0.0.3)\n")


@pytest.mark.parametrize(("text", "paths", "expected"), [
    (WHERE_MANY, ["/d/a", "/d/b", "/d/nope"], {"/d/a": ["gfnode3", "gfnode1"], "/d/b": ["gfnode2"]}),
    ("gfnode3 gfnode1\n", ["/d/a"], {"/d/a": ["gfnode3", "gfnode1"]}),  # one path: its hosts alone
    ("", ["/d/nope"], {}),
    (WHERE_DOWN, ["/d/big", "/d/small"], {"/d/big": ["gfnode2-", "gfnode3"], "/d/small": ["gfnode2-"]}),
])
def test_gfwhere(text: str, paths: list[str], expected: dict[str, list[str]]) -> None:
    assert parse_where(text, paths) == expected


def test_gfls_sizes_keep_paths_with_spaces() -> None:
    assert parse_sizes(LS) == {"/d/a": 100000, "/d/with space": 100000}


def test_gfsched_and_gfhost() -> None:
    assert parse_up("gfnode1\ngfnode3\n") == {"gfnode1", "gfnode3"}
    assert parse_hosts(HOSTS) == {"gfnode1", "gfnode2"}


def test_the_line_a_worker_gives_a_task_back_with_names_the_replica() -> None:
    line = b"tiercel: cannot read gfarm:///d/b on gfnode3: gfexport: /d/b: file migrated\n"
    assert unreadable(line) == ("/d/b", "gfnode3")
    assert unreadable(b"tiercel: cannot read gfarm:///d/b: no such file\n") is None


def test_the_data_table_s_copy_rate_is_what_placement_counts_on_and_copies_are_held_to() -> None:
    from tiercel.data.config import DataConfig
    from tiercel.data.service import DataService

    service = DataService(lambda view: None, lambda path, node, ok: None, DataConfig(copy_rate=10e6))
    try:
        assert service.rate == 10e6 and service.view().copy_rate == 10e6
    finally:
        service.close()
    unheld = DataService(lambda view: None, lambda path, node, ok: None)
    try:
        assert unheld.rate is None and unheld.view().copy_rate == DataView.copy_rate
    finally:
        unheld.close()


@pytest.mark.parametrize(("stderr", "found"), [
    (b"task's own line\ntiercel: wrote gfarm:///r/0.out on gfnode2\ntiercel: wrote gfarm:///r/0.log on gfnode2\n",
     [("/r/0.out", "gfnode2"), ("/r/0.log", "gfnode2")]),
    (b"tiercel: wrote gfarm:///r/x\n", [("/r/x", None)]),  # a worker with no node: where Gfarm chose
    (b"tiercel: wrote gfarm:///r/a on b on gfnode1\n", [("/r/a on b", "gfnode1")]),
    (b"wrote gfarm:///r/x on gfnode1\n\xff\n", []),  # the task's own words are not the worker's line
])
def test_the_outputs_a_task_put_into_gfarm_are_read_from_its_stderr(stderr: bytes,
                                                                    found: list[tuple[str, str | None]]) -> None:
    assert written(stderr) == found


def test_the_line_a_worker_writes_is_the_one_read_back() -> None:
    line = wrote_line("/r/7.out", "gfnode3") + wrote_line("/r/8.out", None)
    assert written(line.encode()) == [("/r/7.out", "gfnode3"), ("/r/8.out", None)]
