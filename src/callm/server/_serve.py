"""``callm serve``: check the setup, then run the gateway: in one process on its own HTTP/1.1
server (``_httpd.py``), or with ``--workers N`` (a fleet's instances) on granian's RSGI."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

from .._core.errors import ConfigurationError
from ._settings import MASTER_KEY_ENV, load_settings

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4000


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check(host: str, config: Path | None, workers: int) -> None:
    """Refuse a setup that would be unsafe or inexact, before anything starts."""
    settings = load_settings(config)  # a bad config file fails here, with its reason
    if not settings.master_key and not is_loopback(host):
        raise ConfigurationError(
            f"set {MASTER_KEY_ENV} to serve on {host}: beyond loopback the gateway needs "
            "an administrator"
        )
    if workers != 1 and settings.database_url is None:
        raise ConfigurationError(
            "the SQLite ledger keeps exact limits in one process: run one worker per "
            "gateway (--workers 1), or set CALLM_DATABASE_URL=postgresql://… (and "
            "CALLM_REDIS_URL) to run a fleet, whose workers share their limits"
        )


def serve(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    config: Path | None = None,
    workers: int = 1,
) -> None:
    """Run the gateway in the foreground until SIGINT/SIGTERM (in-flight streams finish)."""
    check(host, config, workers)
    if workers == 1:
        # One process: the gateway's own server (lower latency than granian's hand-offs).
        from ._gateway import Gateway
        from ._httpd import run

        run(Gateway(load_settings(config)), host, port)
        return
    try:
        from granian.constants import Interfaces, Loops
        from granian.server import Server
    except ImportError:
        raise ConfigurationError(
            "the gateway needs its server packages: pip install 'callm[server]'"
        ) from None
    if config is not None:
        os.environ["CALLM_SERVE_CONFIG"] = str(config.resolve())
    settings = load_settings(config)
    Server(
        "callm.server._rsgi:app",
        address=host,
        port=port,
        interface=Interfaces.RSGI,
        workers=workers,  # with a fleet's stores each worker is one more instance
        loop=Loops.uvloop if _has_uvloop() else Loops.asyncio,
        factory=True,
        log_access=False,
        workers_kill_timeout=max(1, round(settings.shutdown_grace)),
    ).serve()


def _has_uvloop() -> bool:
    import importlib.util

    return importlib.util.find_spec("uvloop") is not None
