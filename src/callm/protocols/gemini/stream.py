"""Reading Gemini replies: one accumulator for whole replies and ``alt=sse`` streams alike.

A streamed chunk is a whole ``GenerateContentResponse`` holding only the new parts, so a
non-streamed reply is simply a stream of one chunk: :func:`callm.providers.gemini.decode`
feeds it to the same :class:`GeminiStreamDecoder`, and there is one copy of the parsing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import replace

from ..._core.endpoint import Endpoint
from ..._core.json import get_str, loads
from ..._core.types import (
    UNREPORTED,
    Document,
    FinishEvent,
    FinishReason,
    Image,
    Part,
    RawPart,
    Reasoning,
    ReasoningDelta,
    Refusal,
    RefusalDelta,
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
from .._shared.sse import SSEEvent
from .._shared.usage import tokens
from .errors import in_stream_error

PROTOCOL = "gemini"
# Candidate-level metadata kept as RawParts (information only: never sent back).
METADATA_KEYS = ("groundingMetadata", "citationMetadata", "urlContextMetadata")

_FILTERED: FinishReason = "content_filter"
FINISH_REASONS: Mapping[str, FinishReason | None] = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": _FILTERED,
    "RECITATION": _FILTERED,
    "BLOCKLIST": _FILTERED,
    "PROHIBITED_CONTENT": _FILTERED,
    "SPII": _FILTERED,
    "IMAGE_SAFETY": _FILTERED,
    "IMAGE_PROHIBITED_CONTENT": _FILTERED,
    "IMAGE_RECITATION": _FILTERED,
    "MODEL_ARMOR": _FILTERED,
    "LANGUAGE": "error",
    "MALFORMED_FUNCTION_CALL": "error",
    "UNEXPECTED_TOOL_CALL": "error",
    "TOO_MANY_TOOL_CALLS": "error",
    "NO_IMAGE": "error",
    "IMAGE_OTHER": "error",
    "OTHER": "error",
    "FINISH_REASON_UNSPECIFIED": None,
}
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def normalise_finish(native: str | None, has_calls: bool) -> FinishReason | None:
    """Gemini's finish reason → callm's; a STOP with function calls is ``tool_calls``."""
    if native is None:
        return None
    reason = FINISH_REASONS.get(native)
    if reason == "stop" and has_calls:
        return "tool_calls"
    if reason is None and native not in FINISH_REASONS:
        # A reason newer than this table: the filter family is recognisable by name.
        filtered = any(w in native for w in ("SAFETY", "PROHIBITED", "RECITATION", "BLOCK"))
        return _FILTERED if filtered else None
    return reason


def decode_usage(meta: Mapping[str, object]) -> Usage:
    """``usageMetadata`` → Usage (thoughts count as output; see the gemini module notes)."""
    thoughts = tokens(meta, "thoughtsTokenCount")
    return Usage(
        input_tokens=tokens(meta, "promptTokenCount") + tokens(meta, "toolUsePromptTokenCount"),
        output_tokens=tokens(meta, "candidatesTokenCount") + thoughts,
        cached_input_tokens=tokens(meta, "cachedContentTokenCount"),
        reasoning_tokens=thoughts,
    )


def call_id(seed: str, candidate: int, number: int, name: str) -> str:
    """A stable id for a call Gemini sent without one: the same on every decode of a reply."""
    digest = hashlib.sha256(f"{seed}:{candidate}:{number}:{name}".encode()).hexdigest()
    return "call_" + digest[:24]


class _Candidate:
    """What one candidate has accumulated: finished parts, plus the text run still open."""

    __slots__ = (
        "calls",
        "finish",
        "index",
        "metadata",
        "parts",
        "refusal",
        "signature",
        "text",
        "thought",
    )

    def __init__(self, index: int) -> None:
        self.index = index
        self.parts: list[Part] = []
        self.text: list[str] = []
        self.thought: list[str] = []
        self.signature: str | None = None  # of the open thought run
        self.metadata: dict[str, Mapping[str, object]] = {}
        self.refusal: str | None = None
        self.finish: str | None = None
        self.calls = 0

    def flush(self) -> None:
        """Close the open text or thought run into a part."""
        if self.thought or self.signature:
            self.parts.append(
                Reasoning("".join(self.thought), signature=self.signature, protocol="gemini")
            )
            self.thought, self.signature = [], None
        if self.text:
            self.parts.append(Text("".join(self.text)))
            self.text = []

    def add(self, part: Mapping[str, object], seed: str) -> list[StreamEvent]:
        """Take one wire part; return the stream events it means."""
        text = part.get("text")
        signature = get_str(part, "thoughtSignature", None)
        if isinstance(text, str) and part.get("thought"):
            if self.text or (signature and self.signature):
                self.flush()
            self.thought.append(text)
            self.signature = signature or self.signature
            return [ReasoningDelta(text)] if text else []
        if self.thought or self.signature:
            self.flush()
        if isinstance(text, str):
            if signature:  # the marker goes right before the part the signature was on
                self.flush()
                self.parts.append(Reasoning("", signature=signature, protocol="gemini"))
            if not text:
                return []
            self.text.append(text)
            return [TextDelta(text)]
        self.flush()
        call = part.get("functionCall")
        if isinstance(call, Mapping):
            if signature:
                self.parts.append(Reasoning("", signature=signature, protocol="gemini"))
            return self._call(call, seed)
        other = _other_part(part)
        if signature and not isinstance(other, RawPart):  # a RawPart keeps it verbatim
            self.parts.append(Reasoning("", signature=signature, protocol="gemini"))
        self.parts.append(other)
        return []

    def _call(self, call: Mapping[str, object], seed: str) -> list[StreamEvent]:
        name = str(call.get("name") or "")
        args = call.get("args")
        if args is None:
            args = {}
        ident = get_str(call, "id") or call_id(seed, self.index, self.calls, name)
        self.calls += 1
        raw = _dumps(args)
        if isinstance(args, Mapping):
            tool_call = ToolCall(ident, name, args, raw)
        else:
            tool_call = ToolCall(ident, name, {}, raw, invalid_arguments=True)
        self.parts.append(tool_call)
        return [ToolCallDelta(self.calls - 1, ident, name, raw), ToolCallEvent(tool_call)]

    def content(self) -> tuple[Part, ...]:
        """The parts so far (the open run included), then refusal and metadata."""
        parts = list(self.parts)
        if self.thought or self.signature:
            parts.append(
                Reasoning("".join(self.thought), signature=self.signature, protocol="gemini")
            )
        if self.text:
            parts.append(Text("".join(self.text)))
        if self.refusal:
            parts.append(Refusal(self.refusal))
        parts.extend(RawPart(PROTOCOL, key, value) for key, value in self.metadata.items())
        return tuple(parts)


def _other_part(part: Mapping[str, object]) -> Part:
    """Inline or referenced media as Image/Document; anything else kept as a RawPart."""
    single = len(part) - ("thoughtSignature" in part) == 1
    blob = part.get("inlineData")
    if isinstance(blob, Mapping) and single:
        mime = str(blob.get("mimeType") or "application/octet-stream")
        url = f"data:{mime};base64,{blob.get('data') or ''}"
        return Image(url) if mime.startswith("image/") else Document(url, mime)
    file = part.get("fileData")
    if isinstance(file, Mapping) and single:
        media_type = file.get("mimeType")
        uri = str(file.get("fileUri") or "")
        if isinstance(media_type, str) and media_type.startswith("image/"):
            return Image(uri)
        return Document(uri, media_type if isinstance(media_type, str) else None)
    kind = next((k for k in part if k not in ("thoughtSignature", "thought")), "unknown")
    return RawPart(PROTOCOL, kind, dict(part))


class GeminiStreamDecoder:
    """Accumulates Gemini reply chunks into a Response, emitting events for candidate 0.

    ``usageMetadata`` is a running total on every chunk: the latest wins, and one
    UsageEvent goes out with the FinishEvent. A function call arrives whole, so its
    ToolCallDelta and ToolCallEvent are emitted together. The stream is finished once
    candidate 0 carries a ``finishReason`` (or the prompt was blocked): there is no
    ``[DONE]``.
    """

    def __init__(self, endpoint: Endpoint, request_id: str | None = None) -> None:
        self.endpoint = endpoint
        self.request_id = request_id
        self._candidates: dict[int, _Candidate] = {}
        self._id = ""
        self._model = ""
        self._usage: Mapping[str, object] | None = None
        self._blocked: str | None = None
        self._last: object = None
        self._done = False

    @staticmethod
    def is_reply(data: Mapping[str, object]) -> bool:
        """Whether a JSON object is a GenerateContentResponse (not an error or other)."""
        return "error" not in data and any(
            k in data for k in ("candidates", "promptFeedback", "usageMetadata", "responseId")
        )

    def feed(self, event: SSEEvent) -> list[StreamEvent]:
        """Decode one SSE event; an error object in the stream raises its typed APIError.

        Errors arrive as ``data:`` events or as un-framed JSON (an object, or one wrapped in
        ``[…]`` as Vertex sends it), which the SSE layer hands over whole. Nothing is
        decoded once every candidate has finished.
        """
        if self.ended:
            return []
        try:
            chunk = loads(event.data)
        except ValueError:
            raise unreadable_event(self, event.data) from None
        if isinstance(chunk, list) and len(chunk) == 1:
            chunk = chunk[0]  # Vertex wraps an error in [...]
        if not isinstance(chunk, dict):
            raise unreadable_event(self, event.data, "a JSON object")
        if "error" in chunk:
            raise in_stream_error(self, chunk)
        return self.absorb(chunk)

    def absorb(self, chunk: dict[str, object]) -> list[StreamEvent]:
        """Take one GenerateContentResponse (a stream chunk or a whole reply)."""
        self._last = chunk
        if not self._id:
            self._id = get_str(chunk, "responseId")
            self._model = get_str(chunk, "modelVersion")
        usage = chunk.get("usageMetadata")
        if usage and isinstance(usage, dict):
            self._usage = usage
        candidates = chunk.get("candidates")
        if not isinstance(candidates, list):
            candidates = None
        if candidates and len(candidates) == 1:
            events = self._candidate(candidates[0])
        else:
            events = []
            for candidate in candidates or ():
                events += self._candidate(candidate)
        if not candidates:
            events += self._prompt_feedback(chunk.get("promptFeedback"))
        return events

    def _candidate(self, data: Mapping[str, object]) -> list[StreamEvent]:
        index = data.get("index") or 0
        if type(index) is not int:
            index = 0
        state = self._candidates.get(index)
        if state is None:
            state = self._candidates[index] = _Candidate(index)
        content = data.get("content")
        parts = content.get("parts") if isinstance(content, dict) else None
        if not isinstance(parts, list):
            parts = []
        # Fast path for the chunk that makes up most streams: one plain text fragment.
        size = len(data)  # only "content" (and "index"): nothing else to look at
        if len(parts) == 1 and (size == 1 or (size == 2 and "index" in data)):
            part = parts[0]
            text = part.get("text")
            if len(part) == 1 and type(text) is str and not (state.thought or state.signature):
                if not text:
                    return []
                state.text.append(text)
                return [TextDelta(text)] if index == 0 else []
        events: list[StreamEvent] = []
        for part in parts:
            if isinstance(part, dict):
                events += state.add(part, self._id)
        for key in METADATA_KEYS:
            value = data.get(key)
            if value and isinstance(value, dict):  # the latest non-empty one is the whole of it
                state.metadata[key] = value
        native = data.get("finishReason")
        if native and isinstance(native, str) and state.finish is None:
            state.finish = native
            events += self._finish(state, data)
        return events if index == 0 else []

    def _finish(self, state: _Candidate, data: Mapping[str, object]) -> list[StreamEvent]:
        state.flush()
        reason = normalise_finish(state.finish, state.calls > 0)
        events: list[StreamEvent] = []
        message = data.get("finishMessage")
        if reason == "content_filter" and message:
            state.refusal = str(message)
            events.append(RefusalDelta(state.refusal))
        if state.index != 0:
            return events
        self._done = True
        return [*events, UsageEvent(self._usage_value()), FinishEvent(reason)]

    def _prompt_feedback(self, feedback: object) -> list[StreamEvent]:
        """A blocked prompt: no candidates, only ``promptFeedback.blockReason``."""
        if not isinstance(feedback, Mapping) or not feedback.get("blockReason"):
            return []
        if self._blocked is not None:
            return []
        reason = str(feedback["blockReason"])
        self._blocked = reason
        self._done = True
        text = f"the prompt was blocked ({reason})"
        if feedback.get("blockReasonMessage"):
            text += f": {feedback['blockReasonMessage']}"
        state = self._candidates.setdefault(0, _Candidate(0))
        state.refusal = text
        return [RefusalDelta(text), UsageEvent(self._usage_value()), FinishEvent(_FILTERED)]

    @property
    def finished(self) -> bool:
        """True once candidate 0 carried a finishReason, or the prompt was blocked."""
        return self._done

    @property
    def ended(self) -> bool:
        """True once every candidate has finished (or the prompt was blocked)."""
        return self._done and all(c.finish is not None for c in self._candidates.values())

    def _usage_value(self) -> Usage:
        return decode_usage(self._usage) if self._usage else UNREPORTED

    def response(self) -> Response:
        """The Response accumulated so far (complete once the stream has finished)."""
        indexes = sorted(self._candidates) or [0]
        responses = [self._response_of(i) for i in indexes]
        return replace(responses[0], choices=tuple(responses[1:]))

    def _response_of(self, index: int) -> Response:
        state = self._candidates.get(index) or _Candidate(index)
        native = state.finish
        reason = normalise_finish(native, state.calls > 0)
        if self._blocked is not None and native is None:
            native, reason = self._blocked, _FILTERED
        return Response(
            id=self._id,
            model=self._model,
            provider=self.endpoint.provider,
            content=state.content(),
            finish_reason=reason,
            usage=self._usage_value(),
            raw=self._last,
            native_finish_reason=native,
            request_id=self.request_id,
        )
