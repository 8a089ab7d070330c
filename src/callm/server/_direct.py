"""A whole request passed through to an upstream of the caller's own protocol.

When a caller speaks the protocol of the model it asked for (an OpenAI SDK calling
``openai/…``, an Anthropic SDK calling ``anthropic/…``), nothing needs translating: the
gateway sends the caller's own body on, with only the model renamed to the provider's
name, and returns the upstream's JSON with the caller's model name in it. The request is
still decoded and checked first (a bad field is the same 400 naming it), the key, its
models and its limits still apply, the library's retry policy still runs (the same
``retrying_async`` and ``decode_failure``), and usage and cost still settle; what is skipped
is the engine's per-call machinery and the re-encoding of both bodies, which were most of
a passed-through request's cost in the profile.

A request takes the engine's path instead when it needs what only the engine does: a
stream, a model with fallbacks or a group, a traced request (the engine's CLIENT span), the
call log, a provider whose credentials are made per request (tokens, signatures), or a
protocol that has no whole-reply body of the caller's (token counting).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._core.errors import CallmError
from .._core.http import HttpRequest
from .._core.types import Message, Request, Response, priced
from .._engine.send import Call as WireCall
from .._engine.send import retrying_async
from ..protocols import WireProtocol, protocol_for
from . import _upstream
from ._http import dumps

if TYPE_CHECKING:
    from ._gateway import Gateway

_MAX_ROUTES = 1024


@dataclass(frozen=True, slots=True)
class DirectRoute:
    """Where a model's requests go when passed through, worked out once per model."""

    model: str  # "provider/model", for prices and usage
    name: str  # the provider's own name of the model
    protocol: str
    wire: WireProtocol
    http: HttpRequest  # the URL and headers the client codec would send (its body unused)
    call: WireCall


def direct_route(
    gateway: Gateway, protocol: str, request: Request, candidates: tuple[str, ...]
) -> DirectRoute | None:
    """The route a whole ``request`` from a caller of ``protocol`` may take directly, or
    None for the engine's path (see the module's docstring for when)."""
    if request.stream or len(candidates) != 1 or gateway.settings.call_log:
        return None
    routes = gateway.direct_routes
    model = candidates[0]
    if model in routes:
        route: DirectRoute | None = routes[model]
    else:
        route = _route(gateway, model)
        if len(routes) >= _MAX_ROUTES:
            routes.clear()
        routes[model] = route
    if route is None or route.protocol != protocol:
        return None
    return route


def _route(gateway: Gateway, model: str) -> DirectRoute | None:
    client = gateway.client
    if model in gateway.settings.fallbacks:
        return None
    try:
        endpoint, name = client.resolve_model(model)
        wire = protocol_for(endpoint.protocol)
    except CallmError:
        return None  # the engine's path says what is wrong
    if endpoint.token_provider is not None or endpoint.signer is not None:
        return None
    probe = wire.encode(endpoint, Request(model=name, messages=(Message.user("."),)))
    call = WireCall(endpoint, wire, probe, client.timeout, client.max_retries)
    return DirectRoute(model, name, endpoint.protocol, wire, probe, call)


async def send_direct(gateway: Gateway, route: DirectRoute, body: dict[str, Any]) -> Response:
    """Send the caller's body on; the upstream's reply, priced (errors as the engine's)."""
    if "model" in body:
        body = {**body, "model": route.name}
    probe = route.http
    http = HttpRequest(probe.method, probe.url, probe.headers, dumps(body), probe.secret_headers)
    transport = gateway.client.transport
    started = time.perf_counter()

    async def once(call: WireCall) -> Response:
        answer = await transport.send(call.http, call.timeout)
        if answer.status >= 300:
            raise call.wire.decode_failure(call.endpoint, answer)
        return call.wire.decode(call.endpoint, answer, time.perf_counter() - started)

    wire_call = route.call
    response = await retrying_async(
        WireCall(
            wire_call.endpoint, wire_call.wire, http, wire_call.timeout, wire_call.max_retries
        ),
        once,
    )
    cost = _upstream.price(gateway.client, route.model, response.usage)
    return priced(response, cost, (route.model,))


def reply_body(response: Response, shown_model: str) -> dict[str, Any] | None:
    """The upstream's own JSON with the caller's name of the model, or None when the reply
    holds no JSON object to pass on."""
    raw = response.raw
    if not isinstance(raw, dict):
        return None
    for key in ("model", "modelVersion"):  # Gemini names it modelVersion
        if key in raw:
            return {**raw, key: shown_model}
    return raw
