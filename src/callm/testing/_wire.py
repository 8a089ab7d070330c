"""Turning a :class:`Reply` into OpenAI wire bytes: JSON bodies and SSE frames.

Pure functions, no I/O. Chunks are assembled from a pre-serialised head and tail around
each ``choices`` entry, so a content fragment costs one C string escape, not a ``json.dumps``
of the whole chunk: the fake server must never be what a benchmark measures.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from json.encoder import encode_basestring
from typing import Literal

from ._script import FakeToolCall, Reply, split_fragments

SYSTEM_FINGERPRINT = "fp_callm_fake"
DONE = "data: [DONE]\n\n"
_ARGUMENT_PIECE = 8


@dataclass(frozen=True, slots=True)
class WireContext:
    """What every body or chunk of one response shares."""

    kind: Literal["chat", "text"]
    id: str
    created: int
    model: str
    n: int = 1
    include_usage: bool = False
    prompt_tokens: int = 1


# One reusable encoder: ``json.dumps`` with options builds a new one on every call.
_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
# The C string escaper (raw UTF-8 kept), for fragments: the hot path of a long stream.
_string: Callable[[str], str] = encode_basestring


def dumps(value: object) -> str:
    """Compact JSON with raw UTF-8, as OpenAI sends it."""
    return _ENCODE(value)


def error_body(
    message: str,
    type: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
) -> bytes:
    """An OpenAI-shaped ``{"error": {...}}`` body."""
    error = {"message": message, "type": type, "param": param, "code": code}
    return dumps({"error": error}).encode()


def usage(reply: Reply, ctx: WireContext) -> Mapping[str, object]:
    """The reply's usage, or one computed from the request words and reply fragments."""
    if reply.usage is not None:
        return dict(reply.usage)
    reasoning = len(_reasoning_fragments(reply))
    per_choice = (
        reply.fragment_count()
        + reasoning
        + sum(1 + len(_argument_pieces(c)) for c in reply.tool_calls)
    )
    completion = per_choice * ctx.n
    return {
        "prompt_tokens": ctx.prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": ctx.prompt_tokens + completion,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": reasoning * ctx.n},
    }


def finish_reason(reply: Reply) -> str:
    """The explicit finish reason, else ``tool_calls`` or ``stop``."""
    if reply.finish_reason is not None:
        return reply.finish_reason
    return "tool_calls" if reply.tool_calls else "stop"


# --- non-streaming -----------------------------------------------------------------------


def json_body(reply: Reply, ctx: WireContext) -> bytes:
    """The whole non-streaming response body."""
    if ctx.kind == "chat":
        choices = [_chat_choice(reply, i) for i in range(ctx.n)]
        obj = "chat.completion"
    else:
        text = reply.full_text()
        choices = [_text_choice(text, i, finish_reason(reply)) for i in range(ctx.n)]
        obj = "text_completion"
    body = {
        "id": ctx.id,
        "object": obj,
        "created": ctx.created,
        "model": ctx.model,
        "system_fingerprint": SYSTEM_FINGERPRINT,
        "choices": choices,
        "usage": usage(reply, ctx),
    }
    return dumps(body).encode()


def _chat_choice(reply: Reply, index: int) -> dict[str, object]:
    message: dict[str, object] = {"role": "assistant", "content": _content(reply)}
    message["refusal"] = reply.refusal
    if reply.reasoning is not None:
        message["reasoning_content"] = reply.reasoning
    if reply.tool_calls:
        message["tool_calls"] = [_tool_call(c, i) for i, c in enumerate(reply.tool_calls)]
    return {
        "index": index,
        "message": message,
        "finish_reason": finish_reason(reply),
        "logprobs": None,
    }


def _content(reply: Reply) -> str | None:
    # Like OpenAI: null content when the answer is only tool calls or a refusal.
    text = reply.full_text()
    if text or not (reply.tool_calls or reply.refusal is not None):
        return text
    return None


def _tool_call(call: FakeToolCall, index: int) -> dict[str, object]:
    function = {"name": call.name, "arguments": call.arguments_json()}
    return {"id": _call_id(call, index), "type": "function", "function": function}


def _call_id(call: FakeToolCall, index: int) -> str:
    return call.id if call.id is not None else f"call_fake{index}"


def _text_choice(text: str, index: int, finish: str | None) -> dict[str, object]:
    return {"index": index, "text": text, "logprobs": None, "finish_reason": finish}


# --- streaming ---------------------------------------------------------------------------


def sse_events(reply: Reply, ctx: WireContext) -> Iterator[str]:
    """Every ``data:`` frame of the stream, in order, without the final ``[DONE]``.

    Made one at a time as they are sent: a stream holds one frame, not all of them.
    """
    head = _chunk_head(ctx)
    tail = '],"usage":null}' if ctx.include_usage else "]}"
    steps = _chat_steps(reply) if ctx.kind == "chat" else _text_steps(reply)
    # With n > 1 the choices take turns, one chunk each, like OpenAI's.
    for step in steps:
        for i in range(ctx.n):
            yield f'data: {head}{{"index":{i}{step}{tail}\n\n'
    finish = _finish_step(ctx.kind, finish_reason(reply))
    for i in range(ctx.n - 1):
        yield f'data: {head}{{"index":{i}{finish}{tail}\n\n'
    last = f'{{"index":{ctx.n - 1}{finish}'
    if reply.usage_on_finish_chunk:
        yield f'data: {head}{last}],"usage":{dumps(usage(reply, ctx))}}}\n\n'
        return
    yield f"data: {head}{last}{tail}\n\n"
    if ctx.include_usage:
        yield f'data: {head}],"usage":{dumps(usage(reply, ctx))}}}\n\n'


def _chunk_head(ctx: WireContext) -> str:
    obj = "chat.completion.chunk" if ctx.kind == "chat" else "text_completion"
    head = dumps(
        {
            "id": ctx.id,
            "object": obj,
            "created": ctx.created,
            "model": ctx.model,
            "system_fingerprint": SYSTEM_FINGERPRINT,
        }
    )
    return head[:-1] + ',"choices":['


# A step is one ``choices`` entry minus its opening ``{"index":N``.


def _finish_step(kind: str, reason: str) -> str:
    if kind == "chat":
        return f',"delta":{{}},"logprobs":null,"finish_reason":{dumps(reason)}}}'
    return f',"text":"","logprobs":null,"finish_reason":{dumps(reason)}}}'


def _chat_steps(reply: Reply) -> Iterator[str]:
    return (f',"delta":{d},"logprobs":null,"finish_reason":null}}' for d in _chat_deltas(reply))


def _text_steps(reply: Reply) -> Iterator[str]:
    return (
        f',"text":{_string(f)},"logprobs":null,"finish_reason":null}}'
        for f in reply.iter_fragments()
    )


def _chat_deltas(reply: Reply) -> Iterator[str]:
    """Each chunk's ``delta`` object, as JSON text."""
    tool_deltas = _tool_call_deltas(reply.tool_calls)
    opens_with_tools = bool(tool_deltas) and not (
        reply.fragment_count() or reply.reasoning or reply.refusal is not None
    )
    role: dict[str, object] = {"role": "assistant", "content": None if opens_with_tools else ""}
    if opens_with_tools:
        # As OpenAI does: the role chunk already carries the first tool call's header.
        role["tool_calls"] = tool_deltas.pop(0)["tool_calls"]
    role["refusal"] = None
    yield dumps(role)
    for f in _reasoning_fragments(reply):
        yield f'{{"reasoning_content":{_string(f)}}}'
    for f in reply.iter_fragments():
        yield f'{{"content":{_string(f)}}}'
    if reply.refusal is not None:
        for f in _refusal_fragments(reply.refusal):
            yield f'{{"refusal":{_string(f)}}}'
    for d in tool_deltas:
        yield dumps(d)


def _tool_call_deltas(calls: Sequence[FakeToolCall]) -> list[dict[str, object]]:
    deltas: list[dict[str, object]] = []
    for index, call in enumerate(calls):
        header = {"name": call.name, "arguments": ""}
        first = {
            "index": index,
            "id": _call_id(call, index),
            "type": "function",
            "function": header,
        }
        deltas.append({"tool_calls": [first]})
        deltas += [
            {"tool_calls": [{"index": index, "function": {"arguments": piece}}]}
            for piece in _argument_pieces(call)
        ]
    return deltas


def _argument_pieces(call: FakeToolCall) -> list[str]:
    # Fixed-width pieces: clients must concatenate before parsing, even mid-escape.
    text = call.arguments_json()
    return [text[i : i + _ARGUMENT_PIECE] for i in range(0, len(text), _ARGUMENT_PIECE)]


def _reasoning_fragments(reply: Reply) -> list[str]:
    return split_fragments(reply.reasoning) if reply.reasoning else []


def _refusal_fragments(refusal: str) -> list[str]:
    return split_fragments(refusal) or [refusal]
