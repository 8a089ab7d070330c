"""Writing a callm event stream as Anthropic Messages SSE events, for a caller's SDK.

The wire has one content block open at a time: text, thinking and each tool call get a
block of their own, opened by ``content_block_start`` when their first event arrives and
closed by ``content_block_stop`` when another kind begins (or a tool call completes).
Tool arguments stream as ``input_json_delta`` fragments exactly as they arrived upstream.
Usage and the stop reason are known only at the end: ``message_start`` carries zero
counts and ``message_delta`` the real, cumulative ones (input tokens included), which the
SDKs read over the start's. Parts that arrive whole and never as deltas (server tool
blocks, redacted thinking, reasoning signatures from another protocol) are sent as
complete blocks before the stream closes, so the caller's accumulated message holds
everything the reply held.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from ..._core.errors import CallmError
from ..._core.types import (
    FinishEvent,
    PartialOutput,
    RawPart,
    Reasoning,
    ReasoningDelta,
    RefusalDelta,
    Response,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    ToolCallEvent,
    ToolResultEvent,
    UsageEvent,
)
from .._shared.ingress import dumps, sse
from ._server_reply import (
    content_block,
    encode_error,
    encode_usage,
    stop_reason,
    stop_sequence,
)

_STOP = sse({"type": "message_stop"}, "message_stop")


class StreamEncoder:
    """One streamed reply as Anthropic SSE frames: ``start``, ``encode`` per event,
    ``finish`` with the final Response (or ``error``)."""

    def __init__(self, *, model: str, include_usage: bool = True) -> None:
        # Anthropic streams always carry usage: include_usage is accepted for the interface.
        self.model = model
        self.id = "msg_" + os.urandom(12).hex()
        self._started = False
        self._next_index = 0
        self._open: tuple[str, int] | None = None  # (kind, block index) of the open block
        self._tool_blocks: dict[int, int] = {}  # callm tool index -> block index
        self._tool_ids: dict[str, int] = {}  # call id -> callm tool index
        self._tools_done: set[int] = set()

    def start(self) -> bytes:
        """``message_start``: the message with no content yet."""
        if self._started:
            return b""
        self._started = True
        message: dict[str, object] = {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return sse({"type": "message_start", "message": message}, "message_start")

    def encode(self, event: StreamEvent) -> bytes:
        """The frames for one callm stream event (often none: usage waits for the end)."""
        head = self.start()
        match event:
            case TextDelta(text=text) | RefusalDelta(text=text):
                if not text:
                    return head
                return head + self._delta("text", {"type": "text_delta", "text": text})
            case ReasoningDelta(text=text):
                if not text:
                    return head
                return head + self._delta("thinking", {"type": "thinking_delta", "thinking": text})
            case ToolCallDelta():
                return head + self._tool_delta(event)
            case ToolCallEvent(tool_call=call):
                return head + self._tool_done(call)
            case UsageEvent() | FinishEvent() | ToolResultEvent() | PartialOutput():
                return head  # the final Response says them in message_delta
        return head

    def finish(self, response: Response) -> bytes:
        """Close the open block, send what never streamed, then the stop reason and usage."""
        frames = [self.start(), self._close()]
        frames += [self._whole(part) for part in self._unstreamed(response)]
        delta = {"stop_reason": stop_reason(response), "stop_sequence": stop_sequence(response)}
        usage = encode_usage(response.usage)
        message_delta = {"type": "message_delta", "delta": delta, "usage": usage}
        frames.append(sse(message_delta, "message_delta"))
        frames.append(_STOP)
        return b"".join(frames)

    def error(self, error: CallmError) -> bytes:
        """An ``error`` event: how Anthropic reports a failure after the stream began."""
        return self.start() + sse(encode_error(error)[1], "error")

    # --- blocks -------------------------------------------------------------------------

    def _delta(self, kind: str, delta: Mapping[str, object]) -> bytes:
        frames = b""
        if self._open is None or self._open[0] != kind:
            empty = {"type": "text", "text": ""}
            if kind == "thinking":
                empty = {"type": "thinking", "thinking": "", "signature": ""}
            frames = self._close() + self._begin(kind, empty)
        assert self._open is not None
        return frames + _block_delta(self._open[1], delta)

    def _tool_delta(self, event: ToolCallDelta) -> bytes:
        frames = b""
        index = self._tool_blocks.get(event.index)
        if index is None:
            block = {
                "type": "tool_use",
                "id": event.id or "",
                "name": event.name or "",
                "input": {},
            }
            frames = self._close() + self._begin("tool", block)
            index = self._tool_blocks[event.index] = self._next_index - 1
            if event.id:
                self._tool_ids[event.id] = event.index
        if event.arguments:
            delta = {"type": "input_json_delta", "partial_json": event.arguments}
            frames += _block_delta(index, delta)
        return frames

    def _tool_done(self, call: ToolCall) -> bytes:
        index = self._tool_for(call)
        if index is None:  # a call that arrived whole: its block carries all of it
            frames = self._close() + self._begin("tool", content_block(call) or {})
            return frames + self._close()
        if self._open is not None and self._open[1] == index:
            return self._close()
        return b""

    def _tool_for(self, call: ToolCall) -> int | None:
        """The block a completed call streamed into: by its id, else the oldest still open."""
        tool_index = self._tool_ids.get(call.id)
        if tool_index is None or tool_index in self._tools_done:
            waiting = (i for i in self._tool_blocks if i not in self._tools_done)
            tool_index = next(waiting, None)
        if tool_index is None:
            return None
        self._tools_done.add(tool_index)
        return self._tool_blocks[tool_index]

    def _begin(self, kind: str, block: Mapping[str, object]) -> bytes:
        index, self._next_index = self._next_index, self._next_index + 1
        self._open = (kind, index)
        start = {"type": "content_block_start", "index": index, "content_block": block}
        return sse(start, "content_block_start")

    def _close(self) -> bytes:
        if self._open is None:
            return b""
        index = self._open[1]
        self._open = None
        return sse({"type": "content_block_stop", "index": index}, "content_block_stop")

    def _whole(self, block: dict[str, object]) -> bytes:
        return self._begin("whole", block) + self._close()

    def _unstreamed(self, response: Response) -> list[dict[str, object]]:
        """Blocks of the final reply that no event carried (server tool blocks, redacted
        thinking, signatures without text): sent whole at the end."""
        blocks = []
        for part in response.content:
            whole = isinstance(part, RawPart) or (
                isinstance(part, Reasoning) and not part.text and bool(part.data or part.signature)
            )
            block = content_block(part) if whole else None
            if block is not None:
                blocks.append(block)
        return blocks


def _block_delta(index: int, delta: Mapping[str, object]) -> bytes:
    # The hot path of a stream: one frame per text fragment, built without a dict walk.
    payload = dumps(delta)
    return (
        b"event: content_block_delta\ndata: "
        + f'{{"type":"content_block_delta","index":{index},"delta":{payload}}}'.encode()
        + b"\n\n"
    )
