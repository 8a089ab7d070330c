"""Wire protocols. Each module here is pure: callm types in, HTTP values out, and back.

Every protocol module offers the same functions (see :class:`WireProtocol`), so the
clients drive any of them alike; a provider entry names its protocol and this registry
imports the module on first use.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

from .._core.errors import ConfigurationError

if TYPE_CHECKING:
    from .._core.endpoint import Endpoint
    from .._core.errors import APIError
    from .._core.http import HttpRequest, HttpResponse
    from .._core.types import ModelInfo, Request, Response, StreamEvent
    from ._shared.sse import SSEEvent

# protocol name -> client module under callm.protocols
PROTOCOL_MODULES: Mapping[str, str] = {
    "openai_chat": "openai_chat.client",
    "openai_responses": "openai_responses.client",
    "anthropic": "anthropic.client",
    "gemini": "gemini.client",
}


class StreamDecoder(Protocol):
    """Turns one protocol's SSE events into callm stream events, accumulating a Response."""

    endpoint: Endpoint
    request_id: str | None

    def feed(self, event: SSEEvent) -> list[StreamEvent]: ...

    @property
    def finished(self) -> bool: ...

    def response(self) -> Response: ...


class WireProtocol(Protocol):
    """What every protocol module provides (as module-level functions)."""

    def encode(self, endpoint: Endpoint, request: Request) -> HttpRequest: ...

    def decode(
        self, endpoint: Endpoint, response: HttpResponse, latency_s: float | None = None
    ) -> Response: ...

    def stream_decoder(self, endpoint: Endpoint, request_id: str | None) -> StreamDecoder: ...

    def decode_failure(self, endpoint: Endpoint, response: HttpResponse) -> APIError: ...

    def encode_models(self, endpoint: Endpoint) -> HttpRequest: ...

    def decode_models(self, endpoint: Endpoint, response: HttpResponse) -> list[ModelInfo]: ...


_loaded: dict[str, WireProtocol] = {}


def protocol_for(name: str) -> WireProtocol:
    """The module that speaks protocol ``name``, imported on first use."""
    wire = _loaded.get(name)
    if wire is not None:
        return wire
    module = PROTOCOL_MODULES.get(name)
    if module is None:
        known = ", ".join(PROTOCOL_MODULES)
        raise ConfigurationError(f"unknown protocol {name!r}; known: {known}")
    try:
        wire = importlib.import_module(f"{__name__}.{module}")
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}.{module}":
            raise
        raise ConfigurationError(
            f"the {name} protocol is not available in this version of callm"
        ) from None
    _loaded[name] = wire
    return wire
