"""Writing Gemini replies and errors for a caller: shared by whole replies and the ``alt=sse``
stream (see :mod:`callm.protocols.gemini.server`)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from ..._core.errors import CallmError, InvalidRequestError, RateLimitError
from ..._core.types import (
    Document,
    Image,
    Message,
    Part,
    RawPart,
    Reasoning,
    Response,
    ToolCall,
    ToolResult,
    Usage,
)
from .._shared.ingress import code_of, message_of, status_for
from .._shared.reasoning import is_foreign, seal_as_bytes
from . import client
from .stream import FINISH_REASONS, METADATA_KEYS, PROTOCOL, normalise_finish

__all__ = [
    "PROTOCOL",
    "candidate",
    "encode_count_tokens",
    "encode_error",
    "encode_response",
    "encode_usage",
    "error_body",
    "finish_reason",
    "model_parts",
    "response_id",
]


def encode_response(response: Response, *, model: str) -> dict[str, object]:
    """The GenerateContentResponse a Gemini SDK reads for ``response`` (and its choices)."""
    body: dict[str, object] = {}
    feedback = prompt_feedback(response)
    if feedback is None:
        replies = (response, *response.choices)
        body["candidates"] = [candidate(reply, index) for index, reply in enumerate(replies)]
    else:
        body["promptFeedback"] = feedback
    body["usageMetadata"] = encode_usage(response.usage)
    body["modelVersion"] = model
    body["responseId"] = response_id(response.id)
    return body


def prompt_feedback(response: Response) -> dict[str, object] | None:
    """A Gemini upstream's ``promptFeedback`` when it blocked the prompt (no candidates)."""
    raw = response.raw
    if not isinstance(raw, Mapping) or raw.get("candidates"):
        return None
    feedback = raw.get("promptFeedback")
    if isinstance(feedback, Mapping) and feedback.get("blockReason"):
        return dict(feedback)
    return None


def response_id(upstream_id: str) -> str:
    return upstream_id or os.urandom(12).hex()


def candidate(response: Response, index: int = 0) -> dict[str, object]:
    """One candidate: its content, finish reason and any metadata Gemini attached."""
    out: dict[str, object] = {}
    filtered = response.finish_reason == "content_filter"
    parts = model_parts([p for p in response.content if not (filtered and p.kind == "refusal")])
    if parts:
        out["content"] = {"role": "model", "parts": parts}
    out["finishReason"] = finish_reason(response)
    refusal = response.refusal
    if filtered and refusal:
        out["finishMessage"] = refusal  # how Gemini says why it stopped a reply
    out["index"] = index
    out.update(metadata(response.content))
    return out


def metadata(parts: Sequence[Part]) -> dict[str, object]:
    """Candidate metadata (grounding, citations) a Gemini upstream sent, as it sent it."""
    return {
        p.type: p.data
        for p in parts
        if isinstance(p, RawPart) and p.protocol == PROTOCOL and p.type in METADATA_KEYS
    }


def model_parts(parts: Sequence[Part]) -> list[dict[str, object]]:
    """A model turn's wire parts; signatures go onto the part that follows them."""
    prepared = [p for p in (_prepared(part) for part in parts) if p is not None]
    return client._model_parts(Message("assistant", tuple(prepared)))


def _prepared(part: Part) -> Part | None:
    """The part as the client codec can write it for Gemini, or None for what has no part."""
    if isinstance(part, Reasoning):
        if is_foreign(part, PROTOCOL):
            return Reasoning(part.text, signature=seal_as_bytes(part), protocol=PROTOCOL)
        return Reasoning(part.text, signature=part.signature, protocol=PROTOCOL)
    if isinstance(part, RawPart):
        return part if part.protocol == PROTOCOL else None
    if isinstance(part, ToolCall) and part.invalid_arguments:
        return ToolCall(part.id, part.name, {})  # Gemini's args are an object
    if isinstance(part, ToolResult):
        return None
    if isinstance(part, Image | Document):
        try:
            client._media(part.url, getattr(part, "media_type", None))
        except InvalidRequestError:  # a web URL with no known type: refer to it as it is
            return RawPart(PROTOCOL, "fileData", {"fileData": {"fileUri": part.url}})
    return part


_FINISH: Mapping[str | None, str] = {
    "stop": "STOP",
    "tool_calls": "STOP",  # Gemini ends a turn of function calls with STOP
    "length": "MAX_TOKENS",
    "content_filter": "SAFETY",
    "refusal": "STOP",
    "error": "OTHER",
    None: "STOP",
}


def finish_reason(response: Response) -> str:
    """Gemini's ``finishReason``: the upstream's own when it was Gemini's."""
    native = response.native_finish_reason
    calls = bool(response.tool_calls)
    if native in FINISH_REASONS and normalise_finish(native, calls) == response.finish_reason:
        return native  # type: ignore[return-value]
    return _FINISH[response.finish_reason]


def encode_usage(usage: Usage) -> dict[str, object]:
    """``usageMetadata``: thoughts apart from the candidates, the cached part of the prompt."""
    out: dict[str, object] = {
        "promptTokenCount": usage.input_tokens,
        "candidatesTokenCount": max(usage.output_tokens - usage.reasoning_tokens, 0),
        "totalTokenCount": usage.input_tokens + usage.output_tokens,
    }
    if usage.reasoning_tokens:
        out["thoughtsTokenCount"] = usage.reasoning_tokens
    if usage.cached_input_tokens:
        out["cachedContentTokenCount"] = usage.cached_input_tokens
    return out


def encode_count_tokens(total_tokens: int) -> dict[str, object]:
    """The body of a ``:countTokens`` answer."""
    return {"totalTokens": total_tokens}


# --- errors -------------------------------------------------------------------------------

_STATUS: Mapping[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_OVERLOADED = 529  # Anthropic's status: Google callers know it as 503 UNAVAILABLE
_RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"
_ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"


def encode_error(error: CallmError, *, status: int | None = None) -> tuple[int, dict[str, object]]:
    """The status and ``{"error": {code, message, status}}`` body a Gemini SDK reads."""
    if status is None:
        status = status_for(error)
        if status == _OVERLOADED:
            status = 503
    return status, error_body(error, status)


def error_body(error: CallmError, status: int) -> dict[str, object]:
    """Google's error object, also sent as a chunk inside a stream."""
    canonical = _STATUS.get(status) or ("INTERNAL" if status >= 500 else "FAILED_PRECONDITION")
    inner: dict[str, object] = {"code": status, "message": message_of(error), "status": canonical}
    details = []
    code = code_of(error)
    if code is not None and code != canonical:
        details.append({"@type": _ERROR_INFO, "reason": code.upper(), "domain": "callm"})
    if isinstance(error, RateLimitError) and error.retry_after is not None:
        details.append({"@type": _RETRY_INFO, "retryDelay": f"{max(error.retry_after, 0):g}s"})
    if details:
        inner["details"] = details
    return {"error": inner}
