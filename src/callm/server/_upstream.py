"""Calling the model: the library's own AsyncClient, so routing, fallbacks, retries and cost
are the library's. This module turns a decoded Request into a call and prices reservations.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from .._core.types import Request, Usage
from .._policies.base import Attempt, Policy
from .._policies.cost import cost_of
from .._policies.tokens import estimate

if TYPE_CHECKING:
    from .. import AsyncClient
    from ._settings import GatewaySettings


def make_client(
    settings: GatewaySettings,
    environ: Mapping[str, str] | None = None,
    tracer_provider: Any = None,
) -> AsyncClient:
    """The engine the gateway calls through: built once, shared by every request."""
    from .. import AsyncClient
    from ._http_client import UpstreamTransport

    return AsyncClient(
        transport=UpstreamTransport(),
        max_retries=settings.max_retries,
        timeout=settings.timeout,
        providers=settings.providers,
        environ=environ,
        aliases=settings.aliases,
        fallbacks={k: list(v) for k, v in settings.fallbacks.items()},
        groups=settings.groups,
        log=settings.call_log,
        policies=[ProtocolFields()],
        tracer_provider=tracer_provider,
    )


class ProtocolFields(Policy):
    """A caller's protocol-specific fields (``extra_body``) reach an upstream of the caller's
    own protocol only; another protocol would refuse them."""

    def admit(self, attempt: Attempt) -> None:
        info = attempt.info
        request = info.request
        if request.extra_body and attempt.endpoint.protocol != info.tags.get("ingress"):
            attempt.info = replace(info, request=replace(request, extra_body={}))


def engine_request(request: Request) -> Request:
    """A caller's decoded Request as the engine takes it: no header of the caller's goes
    upstream (the engine fills in the provider's model name)."""
    if request.extra_headers:
        return replace(request, extra_headers={})
    return request


def input_tokens(request: Request) -> int:
    """A conservative count of the prompt's tokens (it overcounts rather than undercounts)."""
    return estimate(request).tokens


def price(client: AsyncClient, model: str, usage: Usage) -> Decimal | None:
    """What ``usage`` costs on ``model`` ("provider/model"); None when the price is unknown."""
    provider, _, name = model.partition("/")
    try:
        protocol = client.settings.endpoint(provider).protocol
    except Exception:
        return None
    return cost_of(provider, name, usage, protocol=protocol)


def most_expensive(client: AsyncClient, models: Sequence[str], usage: Usage) -> Decimal | None:
    """The highest cost of ``usage`` over ``models``; None if any price is unknown."""
    costs = [price(client, m, usage) for m in models]
    if not costs or any(c is None for c in costs):
        return None
    return max(c for c in costs if c is not None)
