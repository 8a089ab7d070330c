"""The gateway's long-lived state.

:class:`Gateway` owns what lives as long as the server: the settings, the engine (one
``AsyncClient``), the ledger, the key hasher and the metrics. Per-request state travels
with the request (``_proxy.Call``), never in module globals.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from .._core.errors import CallmError, InvalidRequestError
from ._http import Incoming
from ._ingress import caller_key
from ._keys import KeyHasher, server_secret
from ._ledger import Ledger, Refused, VirtualKey
from ._observe import Metrics
from ._settings import GatewaySettings

if TYPE_CHECKING:
    from .. import AsyncClient

logger = logging.getLogger("callm.server")


class Gateway:
    """One gateway process's long-lived state (``_router.handle`` answers requests)."""

    def __init__(
        self,
        settings: GatewaySettings,
        *,
        ledger: Ledger | None = None,
        environ: Mapping[str, str] | None = None,
        metrics: bool = True,
    ) -> None:
        from ._local_ledger import LocalLedger
        from ._upstream import make_client

        env = os.environ if environ is None else environ
        self.settings = settings
        self.ledger: Ledger = ledger or LocalLedger(settings.database)
        self.hasher = KeyHasher(server_secret(settings.home, env))
        self.client: AsyncClient = make_client(settings, environ)
        self.metrics = Metrics() if metrics else None
        self.ready = False
        self.draining = False
        self.in_flight = 0

    async def start(self) -> None:
        await self.ledger.start()
        self.ready = True

    async def close(self) -> None:
        self.ready = False
        await self.client.close()
        await self.ledger.close()

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

    def resolve_model(self, name: str, native_provider: str) -> str:
        """The model a caller named, as the engine knows it (alias, group or provider/model)."""
        from ._settings import valid_model_name

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
    from fnmatch import fnmatchcase

    return any(fnmatchcase(name, p) for p in patterns)


def _unknown_model(name: str) -> CallmError:
    return Refused(
        f"the model {name!r} is not served by this gateway; GET /v1/models lists what is",
        code="model_not_found",
        status=404,
    )
