"""``tiercel manager`` and ``tiercel worker``."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from tiercel.cli.common import CONTEXT_SETTINGS, UserError
from tiercel.cli.xmpp_options import xmpp_settings, xmpp_worker_options
from tiercel.client import TiercelError, default_state_dir, default_url, manager_urls, resolve_token

if TYPE_CHECKING:
    from tiercel.store.config import StoreConfig


def _listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UserError(f"listen: {value!r} must be HOST:PORT, e.g. 127.0.0.1:8750 (port 0 picks a free one)")
    return host.strip("[]") or "127.0.0.1", int(port)


def _wait_for_file(path: Path, seconds: float) -> str:
    """The file's text, waiting up to ``seconds`` for it to appear (written whole, by a rename)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return path.read_text().strip()
        except FileNotFoundError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


def _store_config(table: StoreConfig | None, url: str | None, name: str | None, advertise: str | None,
                  lease: float | None) -> StoreConfig | None:
    """[store] of the config file, with the command line's --store, --name, --advertise, --lease over it."""
    import dataclasses

    from tiercel.store.config import StoreConfig, check_url

    if url is not None:
        problem = check_url(url, "store")
        if problem is not None:
            raise UserError(problem.message())
        table = StoreConfig(url) if table is None else dataclasses.replace(table, url=url)
    if table is None:
        given = [flag for flag, value in (("--name", name), ("--advertise", advertise), ("--lease", lease))
                 if value is not None]
        if given:
            raise UserError(f"{given[0]}: only with --store (or [store] in the config): a manager on SQLite "
                            "is the only one on its state")
        return None
    if advertise is not None and not advertise.startswith(("http://", "https://")):
        raise UserError(f"advertise: {advertise!r} must be this manager's http:// or https:// URL")
    return dataclasses.replace(table, name=name or table.name, advertise=advertise or table.advertise,
                               lease=lease or table.lease)


def _logging(verbose: int) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)


@click.command(context_settings=CONTEXT_SETTINGS)
@click.option("--listen", default="127.0.0.1:8750", show_default=True, metavar="HOST:PORT",
              help="Where to serve the API, the worker channel and the event stream.")
@click.option("--state-dir", type=click.Path(path_type=Path, file_okay=False), metavar="DIR",
              help="Where the SQLite store and tokens live (default: $TIERCEL_STATE_DIR or ~/.local/state/tiercel).")
@click.option("--worker-timeout", type=click.FloatRange(0.5, 86400), default=30.0, show_default=True,
              metavar="SECONDS", help="Re-queue a worker's tasks after this long without a word from it.")
@click.option("--heartbeat", type=click.FloatRange(0.1, 3600), default=5.0, show_default=True, metavar="SECONDS",
              help="How often workers must say they are alive.")
@click.option("--reconnect-grace", type=click.FloatRange(0, 3600), default=10.0, show_default=True,
              metavar="SECONDS", help="After a restart, wait this long for workers to reclaim running tasks.")
@click.option("--sync", type=click.Choice(["FULL", "NORMAL"], case_sensitive=False), default="FULL",
              show_default=True, help="SQLite synchronous mode: FULL survives power loss, NORMAL a crash.")
@click.option("--pool-slots", type=click.IntRange(0), default=0, metavar="N",
              help="Size of the worker pool for reservations, when more than the workers connected now.")
@click.option("--config", type=click.Path(path_type=Path, dir_okay=False), metavar="FILE",
              help="TOML configuration: [queues.NAME] (policies, limits), [sites.NAME] (batch systems), [xmpp] (chat, "
                   "XMPP workers), [store] (PostgreSQL), [data] (copies between Gfarm nodes).")
@click.option("--store", "store_url", envvar="TIERCEL_STORE", metavar="URL",
              help="Keep the state in PostgreSQL (postgresql://USER@HOST/DB; $TIERCEL_STORE) instead of SQLite in "
                   "the state dir. Several managers may share one: the first is active, the others standby.")
@click.option("--name", "store_name", metavar="NAME",
              help="With --store: this manager's name in 'tiercel managers' (default HOST:PORT).")
@click.option("--advertise", metavar="URL",
              help="With --store: the URL clients and workers reach this manager at (default: from --listen).")
@click.option("--lease", type=click.FloatRange(1, 600), metavar="SECONDS",
              help="With --store: a standby takes over this long after the active manager stops renewing "
                   "its lease (default 5).")
@click.option("--quiet", is_flag=True, help="Print nothing on start.")
@click.option("-v", "--verbose", count=True, help="Log more (-v info, -vv debug).")
@click.option("--listen-fd", type=click.IntRange(3), hidden=True,
              help="Serve on this inherited socket, bound and listening already (tiercel run's).")
def manager(listen: str, state_dir: Path | None, worker_timeout: float, heartbeat: float, reconnect_grace: float,
            sync: str, pool_slots: int, config: Path | None, store_url: str | None, store_name: str | None,
            advertise: str | None, lease: float | None, quiet: bool, verbose: int, listen_fd: int | None) -> None:
    """Run a manager: REST API, worker channel and event stream on one port.

    On first start it writes an admin token and a worker token into the state dir.

    \b
    With --store postgresql://... (or [store] in the config) the state lives in PostgreSQL and
    several managers can share it: one holds the store's lease and is active, the others are
    standby and take over within seconds when it dies. Give clients and workers every manager's
    URL (TIERCEL_URL=http://m1:8750,http://m2:8750): they follow the active one.
    """
    from tiercel.config import ConfigError, ManagerConfig, load
    from tiercel.core.problems import SetupError
    from tiercel.manager.settings import Settings
    from tiercel.server import ListenFailed, StateDirBusy, serve

    _logging(verbose)
    host, port = _listen(listen)
    try:  # read before the state dir is made: a bad file changes nothing
        tables = ManagerConfig() if config is None else load(config)
    except ConfigError as exc:
        raise UserError(str(exc)) from None
    state = (state_dir or default_state_dir()).expanduser()
    try:
        state.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise UserError(f"state-dir: {str(state)!r} cannot be created: {exc.strerror}") from None
    settings = Settings(state_dir=state, worker_timeout=worker_timeout, heartbeat=min(heartbeat, worker_timeout / 3),
                        reconnect_grace=reconnect_grace, queues=tables.queues, pool_slots=pool_slots,
                        sites=tables.site_tables(), data=tables.data, peers=tables.peers,
                        url=f"http://{host if host not in ('0.0.0.0', '::', '') else '127.0.0.1'}:{port}")
    store = _store_config(tables.store, store_url, store_name, advertise, lease)
    try:
        if store is not None:
            from tiercel.replicated import serve_replicated

            serve_replicated(host, port, settings, store, quiet=quiet, xmpp=tables.xmpp)
        else:
            serve(host, port, settings, synchronous=sync.upper(), quiet=quiet, xmpp=tables.xmpp, listen_fd=listen_fd)
    except KeyboardInterrupt:
        pass
    except (StateDirBusy, SetupError, ListenFailed) as exc:
        raise UserError(str(exc)) from None
    except OSError as exc:  # the state dir's file system, most often
        raise UserError(f"manager: {exc.strerror or exc} (state in {state})") from None


@click.command(context_settings=CONTEXT_SETTINGS)
@click.option("--manager", "manager_url", envvar="TIERCEL_URL", metavar="URL[,URL]",
              help="Manager URL, or several separated by commas (an active manager and its standbys): the worker "
                   "connects to the active one, and to the next when it goes away or falls silent (default: "
                   "$TIERCEL_URL, else the local manager).")
@click.option("--slots", type=click.IntRange(1, 100_000), default=1, show_default=True,
              help="Tasks to run at once.")
@click.option("--tags", default="", metavar="TAG,TAG", help="Capabilities that jobs can require (--requires).")
@click.option("--name", default="", metavar="NAME", help="Name shown in 'tiercel workers' (default host-pid).")
@click.option("--token", envvar="TIERCEL_TOKEN", metavar="TOKEN", help="Worker token ($TIERCEL_TOKEN).")
@click.option("--token-file", type=click.Path(path_type=Path, dir_okay=False), metavar="FILE",
              help="Read the token from FILE (default: the local manager's worker.token).")
@click.option("--prefetch", type=click.IntRange(0, 100_000), metavar="N",
              help="Extra tasks to keep queued locally (default: as many as slots).")
@click.option("--idle-exit", type=click.FloatRange(0.1), metavar="SECONDS", help="Exit after idling this long.")
@click.option("--max-output", type=click.IntRange(0), default=1024 * 1024, show_default=True, metavar="BYTES",
              help="Keep at most this much of each task's stdout and stderr.")
@click.option("--site", default="pool", show_default=True, metavar="NAME",
              help="The site this worker belongs to (pilots started by a batch site name it).")
@click.option("--lifetime", type=click.FloatRange(60), metavar="SECONDS",
              help="Leave after this long (a pilot's batch walltime): tasks that would not finish are not taken.")
@click.option("--drain-before", type=click.FloatRange(0), metavar="SECONDS",
              help="With --lifetime: take no new task this long before the end (default 10%, at most 300 s).")
@click.option("--reservation", metavar="NAME",
              help="Run only the work of this reservation (pilots started inside a mirrored reservation).")
@click.option("--data-host", metavar="NODE",
              help="The Gfarm file-system node this worker runs on or next to (as 'gfhost -l' names it): tasks "
                   "whose input files have a replica there are sent here, and read them there. Default: this "
                   "host's name, when Gfarm knows a node by it.")
@click.option("--executor", type=click.Choice(["process", "noop"]), default="process", hidden=True)
@click.option("--token-wait", type=click.FloatRange(0, 600), default=0, hidden=True,
              help="Wait this long for --token-file to appear (a manager starting beside it writes it).")
@xmpp_worker_options
@click.option("-v", "--verbose", count=True, help="Log more (-v info, -vv debug).")
def worker(manager_url: str | None, slots: int, tags: str, name: str, token: str | None, token_file: Path | None,
           prefetch: int | None, idle_exit: float | None, max_output: int, site: str, lifetime: float | None,
           drain_before: float | None, reservation: str | None, data_host: str | None, executor: str,
           token_wait: float, verbose: int) -> None:
    """Run a worker: connect out to the manager, pull tasks, run them, report back.

    It reconnects with backoff when the manager or the network goes away, to the
    active manager when several are given, and reports what it ran meanwhile.
    Signals: SIGTERM or Ctrl-C stops the tasks, hands in their results and
    leaves; SIGUSR1 makes it busy (what it holds runs to the end, it takes
    nothing new; an XMPP worker's presence says do-not-disturb) and SIGUSR2
    available again.
    """
    from tiercel.worker.agent import run_worker
    from tiercel.worker.options import WorkerOptions

    _logging(verbose)
    xmpp = xmpp_settings()  # --xmpp: the manager is reached over XMPP, with no URL nor token
    if xmpp is None:
        if token_file is not None:
            try:
                token = _wait_for_file(token_file, token_wait)
            except OSError as exc:
                raise UserError(f"token-file: {str(token_file)!r} cannot be read: {exc.strerror}") from None
            from tiercel.secretfiles import exposed

            why = exposed(token_file)
            if why is not None:
                raise UserError(f"token-file: {str(token_file)!r} {why}")
        token = resolve_token(token, files=("worker.token", "admin.token"))
        if not token:
            raise UserError("token: none given; pass --token-file (the manager wrote worker.token in its state dir)")
        try:
            url = ",".join(manager_urls(manager_url or default_url(), "manager"))
        except TiercelError as exc:
            raise UserError(str(exc)) from None
    else:
        token, url = "", f"xmpp:{xmpp.manager_jid}"
    tag_set = frozenset(t.strip() for t in tags.split(",") if t.strip())
    opts = WorkerOptions(manager=url, token=token, slots=slots, tags=tag_set, name=name,
                         prefetch=prefetch, max_output=max_output, executor=executor, idle_exit=idle_exit,
                         site=site, lifetime=lifetime, drain_before=drain_before, reservation=reservation,
                         data_node=data_host or _data_node())
    if xmpp is not None:
        from tiercel.gateways.xmpp.worker_link import run_xmpp_worker

        sys.exit(run_xmpp_worker(opts, xmpp))
    sys.exit(run_worker(opts))


def _data_node() -> str | None:
    """The Gfarm node named as this host is, when Gfarm's client is here and knows one by that name."""
    from tiercel.data.gfarm import local_node

    return local_node()
