"""Wire protocols. Each module here is pure: callm types in, HTTP values out, and back.

Every protocol's client module offers the same functions (see :class:`WireProtocol`), so
the clients drive any of them alike; a provider entry names its protocol and this registry
imports the module on first use. Every protocol's server module (``<name>/server.py``)
offers the reverse (see :class:`ServerCodec`): a caller's request in, replies and errors
out, for the gateway; :func:`server_codec_for` finds it. A protocol with an embeddings
endpoint offers the functions of :class:`EmbedProtocol` in a module of its own
(``EMBED_MODULES``, imported on first use); :func:`embed_protocol_for` finds it.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

from .._core.errors import ConfigurationError

if TYPE_CHECKING:
    from .._core.embeddings import Embeddings, EmbedLimits, EmbedRequest
    from .._core.endpoint import Endpoint
    from .._core.errors import APIError, CallmError
    from .._core.http import HttpRequest, HttpResponse
    from .._core.types import ModelInfo, Request, Response, StreamEvent
    from ._shared.sse import SSEEvent

# protocol name -> its package under callm.protocols
PROTOCOL_MODULES: Mapping[str, str] = {
    "openai_chat": "openai_chat",
    "openai_responses": "openai_responses",
    "anthropic": "anthropic",
    "gemini": "gemini",
    "bedrock": "bedrock",
}
# protocol name -> its embeddings module under callm.protocols (protocols with embeddings)
EMBED_MODULES: Mapping[str, str] = {
    "openai_chat": "openai_chat.embeddings",
    "openai_responses": "openai_chat.embeddings",  # the same OpenAI servers
    "gemini": "gemini.embeddings",  # Vertex AI's :predict too (gemini.vertex_embeddings)
    "bedrock": "bedrock.embeddings",  # Titan and Cohere Embed through InvokeModel
}
# ingress protocol name -> server module under callm.protocols
SERVER_MODULES: Mapping[str, str] = {
    "openai_chat": "openai_chat.server",
    "openai_responses": "openai_responses.server",
    "openai_completions": "openai_chat.completions_server",
    "anthropic": "anthropic.server",
    "gemini": "gemini.server",
}


class StreamDecoder(Protocol):
    """Turns one protocol's SSE events into callm stream events, accumulating a Response."""

    endpoint: Endpoint
    request_id: str | None

    def feed(self, event: SSEEvent) -> list[StreamEvent]: ...

    @property
    def finished(self) -> bool: ...

    def response(self) -> Response: ...


class Framing(Protocol):
    """Cuts a streamed body into events: SSE for most protocols. A protocol module with
    another framing offers ``stream_framing()`` returning one (Bedrock's event stream)."""

    @property
    def pending(self) -> str | bytes: ...

    def feed(self, chunk: bytes) -> list[SSEEvent]: ...

    def close(self) -> list[SSEEvent]: ...


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


class EmbedProtocol(Protocol):
    """What a protocol's embeddings module provides (module-level, pure); errors are read by
    the protocol's own ``decode_failure`` (:class:`WireProtocol`)."""

    def embed_limits(self, endpoint: Endpoint, model: str) -> EmbedLimits:
        """How much one request may carry (longer lists are split by the engine)."""
        ...

    def encode_embed_request(self, endpoint: Endpoint, request: EmbedRequest) -> HttpRequest: ...

    def decode_embed_response(
        self,
        endpoint: Endpoint,
        request: EmbedRequest,
        response: HttpResponse,
        latency_s: float | None = None,
    ) -> Embeddings: ...


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


_embedders: dict[str, EmbedProtocol] = {}


def embed_protocol_for(name: str) -> EmbedProtocol | None:
    """The embeddings module of protocol ``name`` (imported on first use), or None when the
    protocol has no embeddings endpoint."""
    codec = _embedders.get(name)
    if codec is not None:
        return codec
    module = EMBED_MODULES.get(name)
    if module is None:
        return None
    codec = importlib.import_module(f"{__name__}.{module}")
    _embedders[name] = codec
    return codec


class ServerStreamEncoder(Protocol):
    """One streamed reply, encoded for the caller: SSE frames as bytes."""

    def start(self) -> bytes: ...

    def encode(self, event: StreamEvent) -> bytes: ...

    def finish(self, response: Response) -> bytes: ...

    def error(self, error: CallmError) -> bytes: ...


class ServerCodec(Protocol):
    """What every protocol's server module provides (module-level, pure, no I/O)."""

    def decode_request(
        self, body: Mapping[str, object], *, model: str | None = None
    ) -> Request: ...

    def encode_response(self, response: Response, *, model: str) -> dict[str, object]: ...

    def StreamEncoder(self, *, model: str, include_usage: bool = True) -> ServerStreamEncoder: ...

    def encode_error(
        self, error: CallmError, *, status: int | None = None
    ) -> tuple[int, dict[str, object]]: ...


_servers: dict[str, ServerCodec] = {}


def server_codec_for(name: str) -> ServerCodec:
    """The server codec of ingress protocol ``name``, imported on first use."""
    codec = _servers.get(name)
    if codec is not None:
        return codec
    module = SERVER_MODULES.get(name)
    if module is None:
        known = ", ".join(SERVER_MODULES)
        raise ConfigurationError(f"unknown protocol {name!r}; known: {known}")
    try:
        codec = importlib.import_module(f"{__name__}.{module}")
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}.{module}":
            raise
        raise ConfigurationError(
            f"the {name} protocol cannot be served by this version of callm"
        ) from None
    _servers[name] = codec
    return codec
