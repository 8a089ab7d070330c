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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._core.errors import CallmError
from .._core.http import HttpRequest
from .._core.types import Message, Request, Response, Usage
from .._engine.send import Call as WireCall
from .._engine.send import retrying_async
from ..protocols import WireProtocol, protocol_for
from ._http import dumps, loads

if TYPE_CHECKING:
    from ._gateway import Gateway

_MAX_ROUTES = 1024
UsageReader = Callable[[dict[str, Any]], Usage | None]


@dataclass(frozen=True, slots=True)
class DirectRoute:
    """Where a model's requests go when passed through, worked out once per model."""

    model: str  # "provider/model", for prices and usage
    name: str  # the provider's own name of the model
    protocol: str
    wire: WireProtocol
    http: HttpRequest  # the URL and headers the client codec would send (its body unused)
    call: WireCall
    read_usage: UsageReader | None  # reads a reply's usage alone (None: decode it whole)


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
    reader = _usage_reader(endpoint.protocol)
    return DirectRoute(model, name, endpoint.protocol, wire, probe, call, reader)


@dataclass(frozen=True, slots=True)
class Answer:
    """A whole reply: the upstream's JSON, its usage, and the decoded Response when there is
    one (a passed-through reply has only its usage read: see :func:`send_direct`)."""

    raw: Any
    usage: Usage
    response: Response | None = None

    @classmethod
    def of(cls, response: Response) -> Answer:
        return cls(response.raw, response.usage, response)


async def send_direct(gateway: Gateway, route: DirectRoute, body: Mapping[str, object]) -> Answer:
    """Send the caller's body on; the upstream's reply, not yet priced (errors as the
    engine's)."""
    if "model" in body:
        body = {**body, "model": route.name}
    probe = route.http
    http = HttpRequest(probe.method, probe.url, probe.headers, dumps(body), probe.secret_headers)
    transport = gateway.client.transport
    started = time.perf_counter()
    read_usage = route.read_usage

    async def once(call: WireCall) -> Answer:  # (the route's call: this request is http)
        answer = await transport.send(http, call.timeout)
        if answer.status >= 300:
            raise call.wire.decode_failure(call.endpoint, answer)
        if read_usage is not None:
            try:
                data = loads(answer.body)
            except ValueError:
                data = None
            usage = read_usage(data) if isinstance(data, dict) else None
            if usage is not None:
                return Answer(data, usage)
        # Not a reply of the usual shape: the protocol's decoder says what it is.
        return Answer.of(call.wire.decode(call.endpoint, answer, time.perf_counter() - started))

    return await retrying_async(route.call, once)


def reply_body(raw: Any, shown_model: str) -> dict[str, Any] | None:
    """The upstream's own JSON with the caller's name of the model, or None when the reply
    holds no JSON object to pass on."""
    if not isinstance(raw, dict):
        return None
    for key in ("model", "modelVersion"):  # Gemini names it modelVersion
        if key in raw:
            return {**raw, key: shown_model}
    return raw


def _usage_reader(protocol: str) -> UsageReader | None:
    """How to read the usage of a reply of ``protocol`` without decoding all of it, for the
    protocols whose whole decoding was a passed-on reply's largest cost; None: decode it.

    A reply not of the usual shape (no choice, no content list, an error in a 2xx) reads as
    None, and the protocol's own decoder then makes of it what the engine would.
    """
    if protocol == "openai_chat":
        from ..protocols._shared.openai import decode_usage as chat_usage

        def read_chat(data: dict[str, Any]) -> Usage | None:
            choices = data.get("choices")
            if not isinstance(choices, list) or not choices or "error" in data:
                return None
            for choice in choices:
                if not isinstance(choice, dict) or not isinstance(choice.get("message"), dict):
                    return None
            return chat_usage(data)

        return read_chat
    if protocol == "anthropic":
        from ..protocols.anthropic.client import decode_usage as message_usage

        def read_message(data: dict[str, Any]) -> Usage | None:
            if not isinstance(data.get("content"), list) or data.get("type") == "error":
                return None
            return message_usage(data.get("usage"))

        return read_message
    return None
