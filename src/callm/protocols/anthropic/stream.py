"""Reading Anthropic Messages replies: content blocks, usage, stop reasons, the event stream.

A streamed content block is accumulated as the dict the non-streaming API would have sent,
then turned into parts by :func:`block_parts`, the same function
:func:`callm.providers.anthropic.decode` uses: one parser for both paths.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..._core.endpoint import Endpoint
from ..._core.errors import APIError
from ..._core.json import get_list, get_str, loads
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
from .._shared.errors import in_stream_error, unreadable_event
from .._shared.sse import SSEEvent
from .._shared.usage import details, tokens
from ..openai_chat.client import parse_tool_call

PROTOCOL = "anthropic"
FINISH_REASONS: Mapping[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "pause_turn": "length",
    "tool_use": "tool_calls",
    "refusal": "refusal",
}

_NO_EVENTS: list[StreamEvent] = []


# --- content blocks, usage and stop reasons (shared with non-streaming decoding) -----------


def block_parts(block: Mapping[str, object], raw_input: str | None = None) -> list[Part]:
    """The callm parts of one content block (streamed tool input comes as ``raw_input``)."""
    kind = block.get("type")
    if kind == "text":
        text = block.get("text")
        parts: list[Part] = [Text(text if isinstance(text, str) else "")]
        citations = block.get("citations")
        if citations:
            parts.append(RawPart(PROTOCOL, "citations", {"citations": citations}))
        return parts
    if kind == "thinking":
        return [
            Reasoning(
                get_str(block, "thinking"),
                signature=get_str(block, "signature") or None,
                protocol="anthropic",
            )
        ]
    if kind == "redacted_thinking":
        return [Reasoning("", data=get_str(block, "data"), protocol="anthropic")]
    if kind == "tool_use":
        arguments = block.get("input") if raw_input is None else raw_input
        return [parse_tool_call(get_str(block, "id"), get_str(block, "name"), arguments)]
    if raw_input is not None:  # a server tool's streamed input: parse it into the block
        block = {**block, "input": _parsed_input(raw_input)}
    return [RawPart(PROTOCOL, str(kind), block)]


def _parsed_input(raw: str) -> object:
    if not raw.strip():
        return {}
    try:
        return loads(raw)
    except ValueError:
        return raw  # kept as received: never dropped


def normalise_finish(native: str | None) -> FinishReason | None:
    """callm's finish reason for an Anthropic ``stop_reason``."""
    if native is None:
        return None
    return FINISH_REASONS.get(native)


def decode_usage(usage: object) -> Usage:
    """Usage with ``input_tokens`` as the whole prompt, cache reads and writes included."""
    if not isinstance(usage, Mapping):
        return UNREPORTED
    fresh = tokens(usage, "input_tokens")
    written = tokens(usage, "cache_creation_input_tokens")
    read = tokens(usage, "cache_read_input_tokens")
    return Usage(
        input_tokens=fresh + written + read,
        output_tokens=tokens(usage, "output_tokens"),
        cached_input_tokens=read,
        cache_write_tokens=written,
        reasoning_tokens=tokens(details(usage, "output_tokens_details"), "thinking_tokens"),
    )


# --- the event stream -------------------------------------------------------------------


class _Block:
    """One content block as it streams in."""

    __slots__ = ("json", "parts", "pieces", "raw", "tool_index")

    def __init__(self, raw: dict[str, object], tool_index: int | None) -> None:
        self.raw = raw
        self.tool_index = tool_index  # the n-th tool_use of the reply, for ToolCallDelta.index
        # Streamed string fields ("text", "thinking", "signature" …), joined when needed.
        self.pieces: dict[str, list[str]] = {}
        self.json: list[str] | None = None  # input_json_delta fragments
        self.parts: list[Part] | None = None  # set once the block has stopped

    def snapshot(self) -> dict[str, object]:
        """The block as a non-streaming answer would hold it (so far)."""
        block = dict(self.raw)
        for key, pieces in self.pieces.items():
            block[key] = get_str(block, key) + "".join(pieces)
        return block

    def current_parts(self) -> list[Part]:
        if self.parts is not None:
            return self.parts
        raw_input = "".join(self.json) if self.json is not None else None
        return block_parts(self.snapshot(), raw_input)


class AnthropicStreamDecoder:
    """Turns Messages SSE events into stream events, accumulating the Response.

    ``finished`` becomes true at ``message_stop``; an ``error`` event raises
    :class:`~callm.APIResponseError` carrying what arrived in ``.partial``.
    """

    def __init__(self, endpoint: Endpoint, request_id: str | None = None) -> None:
        self.endpoint = endpoint
        self.request_id = request_id
        self.done = False
        self._message: dict[str, object] = {}
        self._usage: dict[str, object] = {}
        self._blocks: dict[int, _Block] = {}
        self._tools = 0
        self._stop_reason: str | None = None
        self._stop_sequence: str | None = None
        self._finish_sent = False

    @property
    def finished(self) -> bool:
        """True once ``message_stop`` has arrived."""
        return self.done

    def feed(self, event: SSEEvent) -> list[StreamEvent]:
        """Decode one SSE event; an error sent in the stream raises its typed APIError.

        Nothing after ``message_stop`` is decoded.
        """
        if self.done:
            return _NO_EVENTS
        try:
            chunk = loads(event.data)
        except ValueError:
            raise unreadable_event(self, event.data) from None
        if not isinstance(chunk, dict):
            raise unreadable_event(self, event.data, "a JSON object")
        kind = chunk.get("type")
        if kind == "content_block_delta":
            delta = chunk.get("delta")
            # Fast path: the event that makes up most streams, one text fragment.
            if isinstance(delta, dict) and delta.get("type") == "text_delta":
                block = self._blocks.get(chunk.get("index"))  # type: ignore[arg-type]
                text = delta.get("text")
                if block is not None and type(text) is str:
                    block.pieces.setdefault("text", []).append(text)
                    return [TextDelta(text)] if text else _NO_EVENTS
            return self._delta(chunk)
        if event.event == "error" or kind == "error" or isinstance(chunk.get("error"), dict):
            raise self._in_stream_error(chunk)
        handler = _HANDLERS.get(kind)  # type: ignore[arg-type]
        return handler(self, chunk) if handler is not None else _NO_EVENTS

    # --- event handlers -----------------------------------------------------------------

    def _message_start(self, chunk: dict[str, object]) -> list[StreamEvent]:
        message = chunk.get("message")
        if isinstance(message, dict):
            self._message = message
            self._merge_usage(message.get("usage"))
        return _NO_EVENTS

    def _block_start(self, chunk: dict[str, object]) -> list[StreamEvent]:
        given = chunk.get("content_block")
        raw: dict[str, object] = (
            dict(given) if isinstance(given, dict) else {"type": "text", "text": ""}
        )
        index = chunk.get("index")
        index = index if isinstance(index, int) else len(self._blocks)
        kind = raw.get("type")
        tool_index = None
        if kind == "tool_use":
            tool_index, self._tools = self._tools, self._tools + 1
        self._blocks[index] = _Block(raw, tool_index)
        if kind == "text" and (text := get_str(raw, "text")):
            return [TextDelta(text)]
        if kind == "thinking" and (thinking := get_str(raw, "thinking")):
            return [ReasoningDelta(thinking)]
        if tool_index is not None:
            name = get_str(raw, "name", None)
            return [ToolCallDelta(tool_index, get_str(raw, "id", None), name, "")]
        return _NO_EVENTS

    def _delta(self, chunk: dict[str, object]) -> list[StreamEvent]:
        delta = chunk.get("delta")
        if not isinstance(delta, dict):
            return _NO_EVENTS
        block = self._block(chunk.get("index"), delta)
        events: list[StreamEvent] = []
        for key, value in delta.items():
            if key == "type":
                continue
            if key == "partial_json" and isinstance(value, str):
                if block.json is None:
                    block.json = []
                block.json.append(value)
                if block.tool_index is not None:
                    events.append(ToolCallDelta(block.tool_index, None, None, value))
            elif key == "citation":
                block.raw["citations"] = [*get_list(block.raw, "citations"), value]
            elif isinstance(value, str):
                block.pieces.setdefault(key, []).append(value)
                if key == "text" and value:
                    events.append(TextDelta(value))
                elif key == "thinking" and value:
                    events.append(ReasoningDelta(value))
            else:  # a delta kind callm does not know: keep its latest value on the block
                block.raw[key] = value
        return events

    def _block_stop(self, chunk: dict[str, object]) -> list[StreamEvent]:
        index = chunk.get("index")
        block = self._blocks.get(index) if isinstance(index, int) else None
        if block is None or block.parts is not None:
            return _NO_EVENTS
        block.parts = block.current_parts()
        if block.tool_index is None:
            return _NO_EVENTS
        return [ToolCallEvent(p) for p in block.parts if isinstance(p, ToolCall)]

    def _message_delta(self, chunk: dict[str, object]) -> list[StreamEvent]:
        delta = chunk.get("delta")
        if isinstance(delta, dict):
            if delta.get("stop_reason"):
                self._stop_reason = delta["stop_reason"]
            if "stop_sequence" in delta:
                self._stop_sequence = delta["stop_sequence"]
        events: list[StreamEvent] = []
        if isinstance(chunk.get("usage"), dict):
            self._merge_usage(chunk["usage"])
            events.append(UsageEvent(decode_usage(self._usage)))
        if self._stop_reason is not None and not self._finish_sent:
            self._finish_sent = True
            events.append(FinishEvent(normalise_finish(self._stop_reason)))
        return events

    def _message_stop(self, chunk: dict[str, object]) -> list[StreamEvent]:
        self.done = True
        if self._finish_sent:
            return _NO_EVENTS
        self._finish_sent = True  # a stream without message_delta still finishes once
        return [FinishEvent(normalise_finish(self._stop_reason))]

    # --- state --------------------------------------------------------------------------

    def _block(self, index: object, delta: dict[str, object]) -> _Block:
        block = self._blocks.get(index) if isinstance(index, int) else None
        if block is None:  # a delta without its content_block_start: start one implicitly
            kind = (
                "thinking" if delta.get("type") in ("thinking_delta", "signature_delta") else "text"
            )
            index = index if isinstance(index, int) else len(self._blocks)
            block = self._blocks[index] = _Block({"type": kind}, None)
        return block

    def _merge_usage(self, usage: object) -> None:
        # message_delta counts are cumulative, and may repeat the input side: latest wins.
        if isinstance(usage, dict):
            self._usage.update({k: v for k, v in usage.items() if v is not None})

    def response(self) -> Response:
        """The Response accumulated so far (complete once the stream has finished)."""
        parts: list[Part] = []
        for index in sorted(self._blocks):
            parts.extend(self._blocks[index].current_parts())
        message = self._message
        return Response(
            id=get_str(message, "id"),
            model=get_str(message, "model"),
            provider=self.endpoint.provider,
            content=tuple(parts),
            finish_reason=normalise_finish(self._stop_reason),
            usage=decode_usage(self._usage),
            raw=self._raw(),
            native_finish_reason=self._stop_reason,
            request_id=self.request_id,
        )

    def _raw(self) -> dict[str, object]:
        """The message as a non-streaming call would have returned it."""
        raw = dict(self._message)
        raw["content"] = [self._blocks[i].snapshot() for i in sorted(self._blocks)]
        raw["stop_reason"] = self._stop_reason
        raw["stop_sequence"] = self._stop_sequence
        raw["usage"] = dict(self._usage)
        return raw

    # --- errors -------------------------------------------------------------------------

    def _in_stream_error(self, chunk: dict[str, object]) -> APIError:
        error = chunk.get("error")
        error = error if isinstance(error, dict) else {"message": str(error or "")}
        request_id = get_str(chunk, "request_id", None)
        return in_stream_error(self, error, chunk, request_id=request_id)


# ``ping`` and event types callm does not know decode to nothing, as in Anthropic's SDK.
_HANDLERS = {
    "message_start": AnthropicStreamDecoder._message_start,
    "content_block_start": AnthropicStreamDecoder._block_start,
    "content_block_stop": AnthropicStreamDecoder._block_stop,
    "message_delta": AnthropicStreamDecoder._message_delta,
    "message_stop": AnthropicStreamDecoder._message_stop,
}
