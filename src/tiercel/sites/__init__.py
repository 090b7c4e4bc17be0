"""Sites: the pool, the manager's own machine, and batch systems in native or pilot mode.

    config.py    [sites.NAME] tables → validated configuration
    adapters/    per batch system: pure builders and parsers (no I/O)
    runner.py    the one place batch commands run: time-outs, retries, counts
    site.py      what every site shell shares: health, the poll loop, `tiercel sites` rows
    native.py    tasks as elements of native arrays (one submit per array, one poll per site)
    pilot.py     workers started as batch jobs (or local processes) when work waits
    shim.py      what a native array element runs inside the batch system
"""

from __future__ import annotations

from pathlib import Path

from tiercel.core.problems import SetupError
from tiercel.sites.config import PoolConfig, SiteConfig
from tiercel.sites.site import Host, Site


def build(configs: dict[str, SiteConfig | PoolConfig], host: Host, state_dir: Path) -> dict[str, Site]:
    """The shells of the configured batch and local sites (the pool needs none)."""
    from tiercel.sites.native import NativeSite
    from tiercel.sites.pilot import PilotSite

    out: dict[str, Site] = {}
    for name, cfg in configs.items():
        if not isinstance(cfg, SiteConfig):
            continue
        spool = Path(cfg.spool).expanduser() / name if cfg.spool else state_dir / "sites" / name
        try:
            spool.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SetupError(f"sites.{name}.spool: {str(spool)!r} cannot be created: "
                                 f"{exc.strerror or exc}") from None
        if cfg.kind != "local" and cfg.mode == "native":
            out[name] = NativeSite(name, cfg, host, spool)
        else:
            out[name] = PilotSite(name, cfg, host, spool)
    return out
