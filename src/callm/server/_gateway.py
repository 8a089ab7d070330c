"""The gateway's long-lived state.

:class:`Gateway` owns what lives as long as the server: the settings, the engine (one
``AsyncClient``), the ledger, the key hasher and the metrics. Per-request state travels
with the request (``_proxy.Call``), never in module globals.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from fnmatch import fnmatchcase
from typing import IO, TYPE_CHECKING, Any

from .._core.errors import CallmError, ConfigurationError, InvalidRequestError
from .._policies.tracing import TracingPolicy
from ._http import Incoming
from ._ingress import caller_key
from ._keys import KeyHasher, server_secret
from ._ledger import Ledger, Refused, VirtualKey
from ._observe import AccessLog, Metrics, Observer
from ._settings import GatewaySettings, expand, valid_model_name

if TYPE_CHECKING:
    from .. import AsyncClient

logger = logging.getLogger("callm.server")
_MAX_REMEMBERED = 4096  # routes and permissions remembered (model names come from callers)


def make_ledger(settings: GatewaySettings) -> Ledger:
    """The fleet's ledger when a PostgreSQL URL is set, else the in-process one over SQLite."""
    if settings.database_url is None:
        from ._local_ledger import LocalLedger

        return LocalLedger(settings.database)
    import importlib.util

    from ._fleet import FleetConfig, FleetLedger

    if not all(importlib.util.find_spec(m) for m in ("asyncpg", "redis")):
        raise ConfigurationError(
            "a gateway fleet needs its database drivers: pip install 'callm[server,fleet]'"
        )
    config = FleetConfig(
        settings.database_url,
        settings.redis_url,
        "local" if settings.redis_unavailable == "local" else "refuse",
        lease_s=settings.lease_seconds,
    )
    return FleetLedger(config)


class Gateway:
    """One gateway process's long-lived state (``_router.handle`` answers requests)."""

    def __init__(
        self,
        settings: GatewaySettings,
        *,
        ledger: Ledger | None = None,
        environ: Mapping[str, str] | None = None,
        metrics: bool = True,
        access_log: IO[str] | None = None,
        tracer_provider: Any = None,
    ) -> None:
        """``access_log``: where request lines go (default: stderr when the settings say
        ``access_log``; tests pass their own); ``tracer_provider``: OpenTelemetry's, else
        the global one."""
        from ._upstream import make_client

        env = os.environ if environ is None else environ
        self.settings = settings
        self.ledger: Ledger = ledger or make_ledger(settings)
        self.hasher = KeyHasher(server_secret(settings.home, env))
        self.client: AsyncClient = make_client(settings, environ, tracer_provider)
        self.metrics = Metrics() if metrics else None
        if access_log is None and settings.access_log:
            access_log = sys.stderr
        traced = self.client.pipeline.find(TracingPolicy)
        self.observer = Observer(
            self.metrics,
            AccessLog(access_log) if access_log is not None else None,
            traced.tracing if traced is not None else None,
        )
        self.ready = False
        self.draining = False
        self.in_flight = 0
        self._routes: dict[tuple[str, str], tuple[str, tuple[str, ...]]] = {}
        # model -> how its whole requests pass straight through (_direct.DirectRoute, or
        # None: through the engine)
        self.direct_routes: dict[str, Any] = {}
        self._allowed: dict[tuple[tuple[str, ...], str], bool] = {}

    async def start(self) -> None:
        await self.ledger.start()
        self.ready = True

    async def close(self) -> None:
        self.ready = False
        await self.client.close()
        await self.ledger.close()
        self.observer.close()

    async def authenticate(self, request: Incoming) -> VirtualKey:
        """The caller's live virtual key, or Refused (401) saying what is wrong."""
        key = caller_key(request)
        if key is None:
            raise Refused(
                "no API key: send a virtual key made by this gateway (Authorization: Bearer, "
                "x-api-key, x-goog-api-key or ?key=)",
                code="missing_api_key",
                status=401,
            )
        found = await self.ledger.find_key(self.hasher.hash(key))
        if found is None:
            raise Refused(
                "the API key is not valid here: it is unknown, revoked or expired; ask the "
                "gateway's administrator for a key",
                code="invalid_api_key",
                status=401,
            )
        return found

    def route(self, name: str, native_provider: str) -> tuple[str, tuple[str, ...]]:
        """The model a caller named, as the engine knows it (alias, group or provider/model),
        and every concrete model it may reach; remembered, as callers repeat their names."""
        key = (name, native_provider)
        found = self._routes.get(key)
        if found is None:
            model = self.resolve_model(name, native_provider)
            found = (model, tuple(expand(self.settings, model)))
            if len(self._routes) >= _MAX_REMEMBERED:
                self._routes.clear()
            self._routes[key] = found
        return found

    def allowed(self, key: VirtualKey, model: str, candidates: tuple[str, ...]) -> bool:
        """Whether ``key`` may call ``model``: the name asked for matches one of its globs,
        or every model the name may reach does (remembered per set of globs and model)."""
        patterns = key.limits.models
        memo = (patterns, model)
        found = self._allowed.get(memo)
        if found is None:
            found = _matches(patterns, model) or (
                bool(candidates) and all(_matches(patterns, m) for m in candidates)
            )
            if len(self._allowed) >= _MAX_REMEMBERED:
                self._allowed.clear()
            self._allowed[memo] = found
        return found

    def resolve_model(self, name: str, native_provider: str) -> str:
        """The model a caller named, as the engine knows it (alias, group or provider/model)."""
        settings = self.settings
        if name in settings.aliases or name in settings.groups:
            return name
        if not valid_model_name(name):
            raise InvalidRequestError(f"{name!r} is not a valid model name")
        if "/" not in name:
            name = f"{native_provider}/{name}"
        provider = name.partition("/")[0]
        if provider not in self.client.settings.providers:
            raise _unknown_model(name)
        if settings.models and not _matches(settings.models, name):
            raise _unknown_model(name)
        return name

    def known_models(self) -> list[str]:
        """What ``GET /v1/models`` lists: aliases, groups and the configured model globs."""
        settings = self.settings
        names = list(settings.aliases) + list(settings.groups)
        names += [m for m in settings.models if "*" not in m and "?" not in m]
        return names


def _matches(patterns: tuple[str, ...], name: str) -> bool:
    return any(fnmatchcase(name, p) for p in patterns)


def _unknown_model(name: str) -> CallmError:
    return Refused(
        f"the model {name!r} is not served by this gateway; GET /v1/models lists what is",
        code="model_not_found",
        status=404,
    )
