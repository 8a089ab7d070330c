"""callm: one small, fast, typed interface to every hosted LLM API.

>>> import callm
>>> r = callm.complete("openai/gpt-4o-mini", "Explain an API call in one sentence.")
>>> r.text, r.usage.total_tokens

Only what a plain call needs is imported here; HTTP libraries load on first use.

The package is layered — _core, then protocols / transports, config, store, policies, the
send engine, the features, and the Client on top — and ``make check`` holds every import
to that order: see docs/architecture.md for the map and for where to add a protocol, a
policy or a provider.
"""

from __future__ import annotations

from collections.abc import Iterable as _Iterable
from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any, Unpack

from ._client import AsyncClient, CallParams, Client
from ._config.providers import ProviderSpec
from ._core.errors import (
    APIConnectionError,
    APIError,
    APIResponseError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    BudgetExceededError,
    CallmError,
    ConfigurationError,
    ConflictError,
    ContextWindowExceededError,
    InternalServerError,
    InvalidRequestError,
    MaxStepsExceededError,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    RateLimitError,
    RequestVetoed,
    StreamInterruptedError,
    StructuredOutputError,
)
from ._core.params import MessagesInput
from ._core.quirks import Quirks
from ._policies.base import CallInfo
from ._policies.routing import Group

if _TYPE_CHECKING:
    from ._core.embeddings import Embeddings
    from ._engine.embed import EmbedParams
    from ._features.conversation import AsyncConversation, Conversation
    from ._features.functions import tool
    from ._features.run import AsyncRunStream, RunStream
    from ._policies.budget import Budget
    from ._policies.cache import ResponseCache
    from ._policies.ratelimit import RateLimit
    from ._policies.tokens import TokenCount
from ._core.timeouts import Timeout
from ._core.types import (
    Document,
    FinishEvent,
    Image,
    Message,
    ModelInfo,
    Part,
    PartialOutput,
    RawPart,
    Reasoning,
    ReasoningDelta,
    Refusal,
    RefusalDelta,
    Request,
    Response,
    StreamEvent,
    Text,
    TextDelta,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolCallEvent,
    ToolResult,
    ToolResultEvent,
    Usage,
    UsageEvent,
)
from ._engine.stream import AsyncStream, Stream

__version__ = "0.1.0"

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIResponseError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncClient",
    "AsyncConversation",
    "AsyncRunStream",
    "AsyncStream",
    "AuthenticationError",
    "BadRequestError",
    "Budget",
    "BudgetExceededError",
    "CallInfo",
    "CallParams",
    "CallmError",
    "Client",
    "ConfigurationError",
    "ConflictError",
    "ContextWindowExceededError",
    "Conversation",
    "Document",
    "EmbedParams",
    "Embeddings",
    "FinishEvent",
    "Group",
    "Image",
    "InternalServerError",
    "InvalidRequestError",
    "MaxStepsExceededError",
    "Message",
    "ModelInfo",
    "NotFoundError",
    "OverloadedError",
    "Part",
    "PartialOutput",
    "PermissionDeniedError",
    "ProviderSpec",
    "Quirks",
    "RateLimit",
    "RateLimitError",
    "RawPart",
    "Reasoning",
    "ReasoningDelta",
    "Refusal",
    "RefusalDelta",
    "Request",
    "RequestVetoed",
    "Response",
    "ResponseCache",
    "RunStream",
    "Stream",
    "StreamEvent",
    "StreamInterruptedError",
    "StructuredOutputError",
    "Text",
    "TextDelta",
    "Timeout",
    "TokenCount",
    "Tool",
    "ToolCall",
    "ToolCallDelta",
    "ToolCallEvent",
    "ToolResult",
    "ToolResultEvent",
    "Usage",
    "UsageEvent",
    "complete",
    "count_tokens",
    "embed",
    "stream",
    "tool",
    "__version__",
]

_default_client: Client | None = None


def _shared_client() -> Client:
    global _default_client  # noqa: PLW0603 — the module-level functions share one client
    if _default_client is None:
        _default_client = Client()
    return _default_client


def complete(
    model: str | None = None, messages: MessagesInput = "", **params: Unpack[CallParams]
) -> Response:
    """Send one chat request with a shared default Client and return the reply."""
    return _shared_client().complete(model, messages, **params)


def stream(
    model: str | None = None, messages: MessagesInput = "", **params: Unpack[CallParams]
) -> Stream:
    """Stream one chat reply with a shared default Client."""
    return _shared_client().stream(model, messages, **params)


def count_tokens(
    model: str | None, messages: MessagesInput, **params: Unpack[CallParams]
) -> TokenCount:
    """Count a request's input tokens with a shared default Client (see TokenCount.method)."""
    return _shared_client().count_tokens(model, messages, **params)


def embed(
    model: str,
    inputs: str | _Iterable[str],
    dimensions: int | None = None,
    **params: Unpack[EmbedParams],
) -> Embeddings:
    """Embed ``inputs`` with a shared default Client (see :meth:`Client.embed`)."""
    return _shared_client().embed(model, inputs, dimensions, **params)


# Names whose modules load on first use: `import callm` stays as light as a plain call needs.
_LAZY = {
    "Budget": "._policies.budget",
    "RateLimit": "._policies.ratelimit",
    "ResponseCache": "._policies.cache",
    "TokenCount": "._policies.tokens",
    "Conversation": "._features.conversation",
    "AsyncConversation": "._features.conversation",
    "RunStream": "._features.run",
    "AsyncRunStream": "._features.run",
    "tool": "._features.functions",
    "EmbedParams": "._engine.embed",
    "Embeddings": "._core.embeddings",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'callm' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value
