"""Writing Anthropic Messages replies and errors for a caller: shared by whole replies and
the event stream (see :mod:`callm.protocols.anthropic.server`)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TypeGuard, assert_never

from ..._core.errors import CallmError, InvalidRequestError, OverloadedError
from ..._core.json import get_list
from ..._core.types import (
    Document,
    Image,
    Part,
    RawPart,
    Reasoning,
    Refusal,
    Response,
    Text,
    ToolCall,
    ToolResult,
    Usage,
)
from .._shared.ingress import code_of, message_of, status_for
from .._shared.reasoning import is_foreign, seal
from . import client

PROTOCOL = "anthropic"


# --- encoding a reply ---------------------------------------------------------------------


def encode_response(response: Response, *, model: str) -> dict[str, object]:
    """The Message body an Anthropic SDK reads for ``response``."""
    return {
        "id": message_id(response.id),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content_blocks(response.content),
        "stop_reason": stop_reason(response),
        "stop_sequence": stop_sequence(response),
        "usage": encode_usage(response.usage),
    }


def message_id(upstream_id: str) -> str:
    """A ``msg_`` id: the upstream's when it is one, else made from it (or fresh)."""
    if upstream_id.startswith("msg_"):
        return upstream_id
    return "msg_" + (upstream_id or os.urandom(12).hex())


def content_blocks(parts: Sequence[Part]) -> list[dict[str, object]]:
    """The content blocks of a reply's parts, in order."""
    blocks: list[dict[str, object]] = []
    for part in parts:
        block = content_block(part)
        if block is not None:
            blocks.append(block)
        elif _citations(part) and blocks and blocks[-1].get("type") == "text":
            blocks[-1]["citations"] = list(get_list(part.data, "citations"))
    return blocks


def _citations(part: Part) -> TypeGuard[RawPart]:
    return isinstance(part, RawPart) and part.protocol == PROTOCOL and part.type == "citations"


def content_block(part: Part) -> dict[str, object] | None:
    """One part as a content block; None for what this format has no block for."""
    match part:
        case Text(text=text) | Refusal(text=text):
            return {"type": "text", "text": text}
        case Reasoning():
            return thinking_block(part)
        case ToolCall(id=call_id, name=name, arguments=arguments):
            return {"type": "tool_use", "id": call_id, "name": name, "input": dict(arguments)}
        case RawPart(protocol=protocol, type=kind, data=data):
            if protocol != PROTOCOL or kind == "citations":
                return None
            return dict(data)
        case Image():
            return _media_block(part)
        case Document():
            return _media_block(part)
        case ToolResult():
            return None  # a reply holds no tool results
        case _:
            assert_never(part)


def thinking_block(part: Reasoning) -> dict[str, object]:
    """A thinking block (redacted thinking when only its data is known)."""
    if is_foreign(part, PROTOCOL):
        return {"type": "thinking", "thinking": part.text, "signature": seal(part)}
    if part.data and not part.text and not part.signature:
        return {"type": "redacted_thinking", "data": part.data}
    return {"type": "thinking", "thinking": part.text, "signature": part.signature or ""}


def _media_block(part: Image | Document) -> dict[str, object]:
    """An image or document a model produced, in the block shape requests use."""
    try:
        if isinstance(part, Image):
            return client.encode_image(part)
        return client.encode_document(part)
    except InvalidRequestError:  # a gs:// or Files API URI: Anthropic has no source for it
        return {"type": part.kind, "source": {"type": "url", "url": part.url}}


_STOP_REASONS: Mapping[str | None, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
    "refusal": "refusal",
    "error": "end_turn",
    None: "end_turn",
}


def stop_reason(response: Response) -> str:
    """Anthropic's ``stop_reason``: the upstream's own when it was Anthropic's."""
    native = response.native_finish_reason
    if native is not None and client.FINISH_REASONS.get(native) == response.finish_reason:
        return native
    if response.finish_reason == "stop" and response.tool_calls:
        return "tool_use"  # some servers say "stop" with calls: the caller must run them
    return _STOP_REASONS[response.finish_reason]


def stop_sequence(response: Response) -> str | None:
    """The stop sequence that ended the reply, when the upstream said which."""
    raw = response.raw
    if response.native_finish_reason != "stop_sequence" or not isinstance(raw, Mapping):
        return None
    matched = raw.get("stop_sequence")
    return matched if isinstance(matched, str) else None


def encode_usage(usage: Usage) -> dict[str, object]:
    """Usage as Anthropic counts it: ``input_tokens`` excludes cache reads and writes."""
    fresh = usage.input_tokens - usage.cached_input_tokens - usage.cache_write_tokens
    out: dict[str, object] = {
        "input_tokens": max(fresh, 0),
        "output_tokens": usage.output_tokens,
        "cache_creation_input_tokens": usage.cache_write_tokens,
        "cache_read_input_tokens": usage.cached_input_tokens,
    }
    if usage.reasoning_tokens:
        out["output_tokens_details"] = {"thinking_tokens": usage.reasoning_tokens}
    return out


def encode_count_tokens(input_tokens: int) -> dict[str, object]:
    """The body of a ``/v1/messages/count_tokens`` answer."""
    return {"input_tokens": input_tokens}


# --- errors -------------------------------------------------------------------------------

_ERROR_TYPES: Mapping[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_OVERLOADED = 529  # Anthropic's own status for an overloaded service


def encode_error(error: CallmError, *, status: int | None = None) -> tuple[int, dict[str, object]]:
    """The status and ``{"type": "error", "error": {…}}`` body an Anthropic SDK reads."""
    if status is None:
        status = _OVERLOADED if isinstance(error, OverloadedError) else status_for(error)
    return status, error_body(error, status)


def error_body(error: CallmError, status: int) -> dict[str, object]:
    """The error object, also sent as an ``error`` event inside a stream."""
    kind = _ERROR_TYPES.get(status)
    if kind is None:
        kind = "api_error" if status >= 500 else "invalid_request_error"
    inner: dict[str, object] = {"type": kind, "message": message_of(error)}
    code = code_of(error)
    if code is not None and code != kind:
        inner["code"] = code  # e.g. budget_exceeded: a 429 that waiting will not cure
    return {"type": "error", "error": inner}
