"""Writing a callm event stream as Gemini ``alt=sse`` chunks, for a caller's SDK.

Every chunk is a whole GenerateContentResponse holding only the new parts, framed as
``data: …`` and a blank line with CRLF endings, as Google sends them. Text and thoughts
go out as they arrive; a function call goes out whole once complete (Gemini never splits
one). The last chunk carries the finish reason, the usage, candidate metadata and any parts
that never streamed as deltas (built-in tool parts, signatures without text).
"""

from __future__ import annotations

import os

from ..._core.errors import CallmError
from ..._core.types import (
    RawPart,
    Reasoning,
    ReasoningDelta,
    RefusalDelta,
    Response,
    StreamEvent,
    TextDelta,
    ToolCallEvent,
)
from .._shared.ingress import dumps
from ._server_reply import encode_error, encode_usage, finish_reason, metadata, model_parts


class StreamEncoder:
    """One streamed reply as Gemini SSE chunks: ``start``, ``encode`` per event, ``finish``
    with the final Response (or ``error``)."""

    def __init__(self, *, model: str, include_usage: bool = True) -> None:
        # Gemini streams always end with usageMetadata: include_usage is accepted for the
        # interface.
        self.model = model
        self.id = os.urandom(12).hex()
        # The envelope every chunk shares, closed around the candidate's JSON.
        self._tail = f',"modelVersion":{dumps(model)},"responseId":"{self.id}"}}\r\n\r\n'.encode()

    def start(self) -> bytes:
        """Nothing: a Gemini stream opens with its first chunk."""
        return b""

    def encode(self, event: StreamEvent) -> bytes:
        """The chunk for one callm stream event (none for tool fragments, usage, finish)."""
        if isinstance(event, TextDelta | RefusalDelta):
            return self._chunk({"text": event.text}) if event.text else b""
        if isinstance(event, ReasoningDelta):
            return self._chunk({"text": event.text, "thought": True}) if event.text else b""
        if isinstance(event, ToolCallEvent):
            return b"".join(self._chunk(p) for p in model_parts([event.tool_call]))
        return b""

    def finish(self, response: Response) -> bytes:
        """The last chunk: unstreamed parts, finish reason, usage and metadata."""
        candidate: dict[str, object] = {}
        parts = model_parts([p for p in response.content if _whole(p)])
        if parts:
            candidate["content"] = {"role": "model", "parts": parts}
        candidate["finishReason"] = finish_reason(response)
        candidate["index"] = 0
        candidate.update(metadata(response.content))
        usage = encode_usage(response.usage)
        head = f'data: {{"candidates":[{dumps(candidate)}],"usageMetadata":{dumps(usage)}'
        return head.encode() + self._tail

    def error(self, error: CallmError) -> bytes:
        """An error chunk, as Google sends a failure after the stream began."""
        return f"data: {dumps(encode_error(error)[1])}\r\n\r\n".encode()

    def _chunk(self, part: dict[str, object]) -> bytes:
        content = f'{{"role":"model","parts":[{dumps(part)}]}}'
        return f'data: {{"candidates":[{{"content":{content},"index":0}}]'.encode() + self._tail


def _whole(part: object) -> bool:
    """Parts that never stream as deltas: built-in tool parts, signatures without text."""
    if isinstance(part, Reasoning):
        return not part.text and bool(part.signature or part.data or part.id)
    return isinstance(part, RawPart)
