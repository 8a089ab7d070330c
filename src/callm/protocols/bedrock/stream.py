"""Reading Bedrock Converse replies: content blocks, usage, stop reasons, the event stream.

A streamed content block is accumulated as the block a ``Converse`` answer would hold, then
turned into parts by :func:`block_parts`, the function :func:`~.client.decode` uses too: one
parser for both paths. Events arrive in AWS's binary framing, cut into
:class:`SSEEvent` values by :mod:`.eventstream`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..._core.endpoint import Endpoint
from ..._core.json import loads
from ..._core.types import (
    UNREPORTED,
    FinishEvent,
    FinishReason,
    Part,
    RawPart,
    Reasoning,
    ReasoningDelta,
    Response,
    StreamEvent,
    Text,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    ToolCallEvent,
    Usage,
    UsageEvent,
)
from .._shared.errors import unreadable_event
from .._shared.openai import parse_tool_call
from .._shared.sse import SSEEvent
from .errors import in_stream_error
from .eventstream import EXCEPTION

PROTOCOL = "bedrock"
FINISH_REASONS: Mapping[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
    "malformed_model_output": "error",
    "malformed_tool_use": "error",
}
_NO_EVENTS: list[StreamEvent] = []


def block_parts(block: Mapping[str, Any], raw_input: str | None = None) -> list[Part]:
    """The callm parts of one Converse content block (streamed tool input as ``raw_input``)."""
    if "text" in block:
        return [Text(str(block.get("text") or ""))]
    tool = block.get("toolUse")
    if isinstance(tool, Mapping):
        arguments = tool.get("input") if raw_input is None else raw_input
        return [parse_tool_call(str(tool.get("toolUseId") or ""), str(tool.get("name")), arguments)]
    reasoning = block.get("reasoningContent")
    if isinstance(reasoning, Mapping):
        return [_reasoning(reasoning)]
    key = next(iter(block), "unknown")
    return [RawPart(PROTOCOL, str(key), dict(block))]


def _reasoning(content: Mapping[str, Any]) -> Reasoning:
    text = content.get("reasoningText")
    if isinstance(text, Mapping):
        signature = text.get("signature") or None
        return Reasoning(str(text.get("text") or ""), signature=signature, protocol=PROTOCOL)
    # Redacted reasoning: the encrypted bytes (base64 in JSON) go back as they came.
    return Reasoning("", data=str(content.get("redactedContent") or ""), protocol=PROTOCOL)


def normalise_finish(native: str | None) -> FinishReason | None:
    """callm's finish reason for a Converse ``stopReason``."""
    return None if native is None else FINISH_REASONS.get(native)


def decode_usage(usage: Any) -> Usage:
    """Usage with ``input_tokens`` as the whole prompt, cache reads and writes included."""
    if not isinstance(usage, Mapping):
        return UNREPORTED
    fresh = usage.get("inputTokens") or 0
    read = usage.get("cacheReadInputTokens") or 0
    written = usage.get("cacheWriteInputTokens") or 0
    return Usage(
        input_tokens=fresh + read + written,
        output_tokens=usage.get("outputTokens") or 0,
        cached_input_tokens=read,
        cache_write_tokens=written,
    )


class _Block:
    """One content block as it streams in."""

    __slots__ = ("json", "parts", "raw", "reasoning", "text", "tool_index")

    def __init__(self, raw: dict[str, Any], tool_index: int | None) -> None:
        self.raw = raw
        self.tool_index = tool_index
        self.text: list[str] | None = None
        self.json: list[str] | None = None
        self.reasoning: dict[str, list[str]] | None = None
        self.parts: list[Part] | None = None  # set once the block has stopped

    def snapshot(self) -> dict[str, Any]:
        """The block as a ``Converse`` answer would hold it (so far)."""
        if self.text is not None:
            return {"text": "".join(self.text)}
        if self.reasoning is not None:
            pieces = {k: "".join(v) for k, v in self.reasoning.items()}
            if "redactedContent" in pieces:
                return {"reasoningContent": {"redactedContent": pieces["redactedContent"]}}
            return {"reasoningContent": {"reasoningText": pieces}}
        return dict(self.raw)

    def current_parts(self) -> list[Part]:
        if self.parts is not None:
            return self.parts
        raw_input = "".join(self.json) if self.json is not None else None
        return block_parts(self.snapshot(), raw_input)


class BedrockStreamDecoder:
    """Turns ConverseStream events into stream events, accumulating the Response.

    ``finished`` becomes true at ``messageStop``; the ``metadata`` event with the usage
    comes after it and is still read. An exception message raises its typed error.
    """

    def __init__(self, endpoint: Endpoint, request_id: str | None = None) -> None:
        self.endpoint = endpoint
        self.request_id = request_id
        self.done = False
        self._blocks: dict[int, _Block] = {}
        self._tools = 0
        self._stop_reason: str | None = None
        self._usage: dict[str, Any] = {}
        self._extra: dict[str, Any] = {}

    @property
    def finished(self) -> bool:
        return self.done

    def feed(self, event: SSEEvent) -> list[StreamEvent]:
        """Decode one event-stream message; an exception message raises its APIError."""
        if event.event.startswith(EXCEPTION):
            raise in_stream_error(self, event.event[len(EXCEPTION) :], event.data)
        try:
            data = loads(event.data)
        except ValueError:
            raise unreadable_event(self, event.data) from None
        if not isinstance(data, dict):
            raise unreadable_event(self, event.data, "a JSON object")
        handler = _HANDLERS.get(event.event)
        return handler(self, data) if handler is not None else _NO_EVENTS

    def _block_start(self, data: dict[str, Any]) -> list[StreamEvent]:
        start = data.get("start")
        start = start if isinstance(start, dict) else {}
        index = _index(data, len(self._blocks))
        tool = start.get("toolUse")
        if isinstance(tool, dict):
            tool_index, self._tools = self._tools, self._tools + 1
            self._blocks[index] = _Block({"toolUse": {**tool, "input": {}}}, tool_index)
            return [ToolCallDelta(tool_index, tool.get("toolUseId"), tool.get("name"), "")]
        self._blocks[index] = _Block(dict(start), None)
        return _NO_EVENTS

    def _block_delta(self, data: dict[str, Any]) -> list[StreamEvent]:
        delta = data.get("delta")
        if not isinstance(delta, dict):
            return _NO_EVENTS
        index = _index(data, len(self._blocks))
        block = self._blocks.get(index)
        if block is None:  # text and reasoning blocks start with their first delta
            block = self._blocks[index] = _Block({}, None)
        text = delta.get("text")
        if isinstance(text, str):
            block.text = block.text or []
            block.text.append(text)
            return [TextDelta(text)] if text else _NO_EVENTS
        tool = delta.get("toolUse")
        if isinstance(tool, dict):
            piece = str(tool.get("input") or "")
            block.json = block.json or []
            block.json.append(piece)
            if block.tool_index is None:
                return _NO_EVENTS
            return [ToolCallDelta(block.tool_index, None, None, piece)]
        reasoning = delta.get("reasoningContent")
        if isinstance(reasoning, dict):
            return self._reasoning_delta(block, reasoning)
        for key, value in delta.items():  # citations and what callm does not model: kept
            block.raw[key] = value
        return _NO_EVENTS

    def _reasoning_delta(self, block: _Block, delta: dict[str, Any]) -> list[StreamEvent]:
        pieces = block.reasoning = block.reasoning or {}
        for key, value in delta.items():
            pieces.setdefault(key, []).append(str(value))
        text = delta.get("text")
        return [ReasoningDelta(text)] if isinstance(text, str) and text else _NO_EVENTS

    def _block_stop(self, data: dict[str, Any]) -> list[StreamEvent]:
        block = self._blocks.get(_index(data, -1))
        if block is None or block.parts is not None:
            return _NO_EVENTS
        block.parts = block.current_parts()
        if block.tool_index is None:
            return _NO_EVENTS
        return [ToolCallEvent(p) for p in block.parts if isinstance(p, ToolCall)]

    def _message_stop(self, data: dict[str, Any]) -> list[StreamEvent]:
        self.done = True
        self._stop_reason = data.get("stopReason")
        extra = data.get("additionalModelResponseFields")
        if isinstance(extra, dict):
            self._extra = extra
        return [FinishEvent(normalise_finish(self._stop_reason))]

    def _metadata(self, data: dict[str, Any]) -> list[StreamEvent]:
        usage = data.get("usage")
        if not isinstance(usage, dict):
            return _NO_EVENTS
        self._usage = usage
        return [UsageEvent(decode_usage(usage))]

    def response(self) -> Response:
        """The Response accumulated so far (complete once the stream has finished)."""
        parts: list[Part] = []
        for index in sorted(self._blocks):
            parts.extend(self._blocks[index].current_parts())
        return Response(
            id=self.request_id or "",
            model="",  # Converse does not name the model: the request did
            provider=self.endpoint.provider,
            content=tuple(parts),
            finish_reason=normalise_finish(self._stop_reason),
            usage=decode_usage(self._usage),
            raw=self._raw(),
            native_finish_reason=self._stop_reason,
            request_id=self.request_id,
        )

    def _raw(self) -> dict[str, Any]:
        """The reply as a ``Converse`` call would have answered it."""
        content = [self._blocks[i].snapshot() for i in sorted(self._blocks)]
        raw: dict[str, Any] = {
            "output": {"message": {"role": "assistant", "content": content}},
            "stopReason": self._stop_reason,
            "usage": dict(self._usage),
        }
        if self._extra:
            raw["additionalModelResponseFields"] = self._extra
        return raw


def _index(data: Mapping[str, Any], default: int) -> int:
    index = data.get("contentBlockIndex")
    return index if isinstance(index, int) else default


def _no_events(decoder: BedrockStreamDecoder, data: dict[str, Any]) -> list[StreamEvent]:
    return _NO_EVENTS


# Event types callm does not know decode to nothing, as AWS's SDKs skip them.
_HANDLERS = {
    "messageStart": _no_events,
    "contentBlockStart": BedrockStreamDecoder._block_start,
    "contentBlockDelta": BedrockStreamDecoder._block_delta,
    "contentBlockStop": BedrockStreamDecoder._block_stop,
    "messageStop": BedrockStreamDecoder._message_stop,
    "metadata": BedrockStreamDecoder._metadata,
}
