"""Pieces the OpenAI protocols share: compact JSON, tool-call parsing, usage, finish reasons.

Chat Completions (JSON and stream) and Responses read the same shapes; each helper lives
here once.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence

from ..._core.json import dumps, loads
from ..._core.quirks import Quirks
from ..._core.types import (
    UNREPORTED,
    FinishReason,
    Part,
    Reasoning,
    Refusal,
    Request,
    Text,
    ToolCall,
    Usage,
)
from .usage import details, tokens

FINISH_REASONS: Mapping[str, FinishReason] = {
    "stop": "stop",
    "eos": "stop",
    "end_turn": "stop",
    "stop_sequence": "stop",
    "length": "length",
    "max_tokens": "length",
    "model_length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "tool_use": "tool_calls",
    "content_filter": "content_filter",
    "refusal": "refusal",
    "error": "error",
}

# The older flag name of Quirks.prompt_cache_key: the server takes ``prompt_cache_key``
# (OpenAI and Azure do; other OpenAI-compatible servers may refuse an unknown field).
PROMPT_CACHE_KEY = "prompt_cache_key"
CACHE_TTLS = ("5m", "1h")  # Anthropic's TTL spellings of cache=: no key of their own


def content_array_parts(content: list[object]) -> list[Part]:
    """Mistral's reasoning models send content as an array of text and thinking blocks."""
    parts: list[Part] = []
    for block in content:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text":
            parts.append(Text(block.get("text") or ""))
        elif kind == "thinking":
            inner = block.get("thinking") or []
            text = "".join(b.get("text", "") for b in inner if isinstance(b, dict))
            parts.append(Reasoning(text, protocol="openai_chat"))
    return parts


def parse_tool_call(call_id: str, name: str, arguments: object) -> ToolCall:
    """A tool call with its JSON arguments parsed; malformed ones are kept raw and flagged."""
    if not call_id:  # Gemini's compat layer sends "": make one up so results can refer to it
        call_id = "call_" + os.urandom(12).hex()
    if isinstance(arguments, dict):
        return ToolCall(call_id, name, arguments, dumps(arguments))
    raw = arguments if isinstance(arguments, str) else ""
    if not raw.strip():
        return ToolCall(call_id, name, {}, raw)
    try:
        parsed = loads(raw)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        return ToolCall(call_id, name, parsed, raw)
    return ToolCall(call_id, name, {}, raw, invalid_arguments=True)


def normalise_finish(native: str | None, parts: Sequence[Part] = ()) -> FinishReason | None:
    """Map a provider's finish reason onto callm's; a refusal wins over "stop"."""
    if native is None:
        return None
    reason = FINISH_REASONS.get(native)
    if reason == "stop" and any(isinstance(p, Refusal) for p in parts):
        return "refusal"
    return reason


def decode_usage(data: Mapping[str, object]) -> Usage:
    """Usage from a body or chunk: OpenAI's fields, DeepSeek's cache counts, Groq's x_groq."""
    usage = data.get("usage")
    if not usage:
        usage = details(data, "x_groq").get("usage")
    if not isinstance(usage, Mapping) or not usage:
        return UNREPORTED
    prompt_details = details(usage, "prompt_tokens_details")
    completion_details = details(usage, "completion_tokens_details")
    cached = tokens(prompt_details, "cached_tokens") or tokens(usage, "prompt_cache_hit_tokens")
    return Usage(
        input_tokens=tokens(usage, "prompt_tokens"),
        output_tokens=tokens(usage, "completion_tokens"),
        cached_input_tokens=cached,
        cache_write_tokens=tokens(prompt_details, "cache_write_tokens"),
        reasoning_tokens=tokens(completion_details, "reasoning_tokens"),
    )


def prompt_cache_key(request: Request, quirks: Quirks) -> str | None:
    """The ``prompt_cache_key`` for ``request.cache``: a string as given, ``True`` a key
    derived from the stable prefix (model, leading system prompt, tools), so requests that
    share that prefix are routed to the same cache; None where the server takes no key."""
    cache = request.cache
    if not cache or not quirks.prompt_cache_key:
        return None
    if isinstance(cache, str) and cache not in CACHE_TTLS:
        return cache
    import hashlib

    material = _sorted_dumps([request.model, _leading_system(request), _tool_specs(request)])
    return "callm-" + hashlib.sha256(material.encode()).hexdigest()[:24]


_sorted_dumps = json.JSONEncoder(ensure_ascii=False, sort_keys=True).encode


def _leading_system(request: Request) -> list[str]:
    texts = []
    for message in request.messages:
        if message.role not in ("system", "developer"):
            break
        texts.append(message.text)
    return texts


def _tool_specs(request: Request) -> list[object]:
    return [[t.name, t.description, t.parameters] for t in request.tools]
