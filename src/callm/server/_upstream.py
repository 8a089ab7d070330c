"""Calling the model: the library's own AsyncClient, so routing, fallbacks, retries and cost
are the library's. This module turns a decoded Request into a call and prices reservations.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from .._core.types import Request, Usage
from .._policies.base import Attempt, Policy

if TYPE_CHECKING:
    from .. import AsyncClient
    from .._core.types import Response
    from .._engine.stream import AsyncStream
    from ._settings import GatewaySettings

# The Request fields a call passes on as keyword arguments.
_FIELDS = ("max_tokens", "temperature", "top_p", "top_k", "seed", "n", "user", "tool_choice")


def make_client(settings: GatewaySettings, environ: Mapping[str, str] | None = None) -> AsyncClient:
    """The engine the gateway calls through: built once, shared by every request."""
    from .. import AsyncClient

    return AsyncClient(
        max_retries=settings.max_retries,
        timeout=settings.timeout,
        providers=settings.providers,
        environ=environ,
        aliases=settings.aliases,
        fallbacks={k: list(v) for k, v in settings.fallbacks.items()},
        groups=settings.groups,
        log=settings.call_log,
        policies=[ProtocolFields()],
    )


class ProtocolFields(Policy):
    """A caller's protocol-specific fields (``extra_body``) reach an upstream of the caller's
    own protocol only; another protocol would refuse them."""

    def admit(self, attempt: Attempt) -> None:
        info = attempt.info
        request = info.request
        if request.extra_body and attempt.endpoint.protocol != info.tags.get("ingress"):
            attempt.info = replace(info, request=replace(request, extra_body={}))


def call_params(request: Request, tags: Mapping[str, str]) -> dict[str, Any]:
    """The keyword arguments of ``AsyncClient.complete`` / ``stream`` for ``request``."""
    params: dict[str, Any] = {"tags": tags}
    for name in _FIELDS:
        value = getattr(request, name)
        if value is not None:
            params[name] = value
    if request.stop:
        params["stop"] = list(request.stop)
    if request.tools:
        params["tools"] = list(request.tools)
    if request.response_format is not None:
        params["response_format"] = request.response_format
    if request.cache is not None:
        params["cache"] = request.cache
    if request.extra_body:
        params["extra_body"] = request.extra_body
    return params


async def complete(
    client: AsyncClient, model: str, request: Request, tags: Mapping[str, str]
) -> Response:
    return await client.complete(model, list(request.messages), **call_params(request, tags))


async def open_stream(
    client: AsyncClient, model: str, request: Request, tags: Mapping[str, str]
) -> AsyncStream:
    return await client.stream(model, list(request.messages), **call_params(request, tags))


def input_tokens(request: Request) -> int:
    """A conservative count of the prompt's tokens (it overcounts rather than undercounts)."""
    from .._policies.tokens import estimate

    return estimate(request).tokens


def price(client: AsyncClient, model: str, usage: Usage) -> Decimal | None:
    """What ``usage`` costs on ``model`` ("provider/model"); None when the price is unknown."""
    from .._policies.cost import cost_of

    provider, _, name = model.partition("/")
    try:
        protocol = client.settings.endpoint(provider).protocol
    except Exception:
        return None
    return cost_of(provider, name, usage, protocol=protocol)


def most_expensive(client: AsyncClient, models: list[str], usage: Usage) -> Decimal | None:
    """The highest cost of ``usage`` over ``models``; None if any price is unknown."""
    costs = [price(client, m, usage) for m in models]
    if not costs or any(c is None for c in costs):
        return None
    return max(c for c in costs if c is not None)
