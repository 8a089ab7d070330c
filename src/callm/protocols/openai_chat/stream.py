"""Chat Completions streaming: SSE events in, stream events out, the Response accumulated."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from ..._core.endpoint import Endpoint
from ..._core.errors import APIError, APIResponseError
from ..._core.json import as_list, dumps, get_int, get_list, get_object, get_str, loads
from ..._core.types import (
    UNREPORTED,
    FinishEvent,
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
from .._shared.errors import in_stream_error, unreadable_event
from .._shared.openai import (
    content_array_parts,
    decode_usage,
    normalise_finish,
    parse_tool_call,
)
from .._shared.sse import SSEEvent
from .reasoning import from_details, merge_fragment

# The RawPart type that carries a message's annotations (url_citation from web search …).
ANNOTATIONS = "annotations"
# Text fragments a streamed choice keeps apart before joining them into one string.
TEXT_PIECES = 1024


class _ToolSlot:
    """One streamed tool call: its id and name once sent, and its argument fragments."""

    __slots__ = ("arguments", "id", "name")

    def __init__(self) -> None:
        self.id: str | None = None
        self.name: str | None = None
        self.arguments: list[str] = []


class _ChoiceState:
    """What one streamed choice has accumulated so far."""

    __slots__ = (
        "annotations", "details", "finish", "reasoning", "refusal", "text", "text_done", "tools"
    )  # fmt: skip

    def __init__(self) -> None:
        # The latest text fragments; every TEXT_PIECES of them are joined into text_done, so
        # a long reply costs its characters, not a str object per fragment.
        self.text: list[str] = []
        self.text_done: list[str] = []
        self.reasoning: list[str] = []
        # reasoning_details entries by their index, merged from fragments as they stream
        self.details: dict[int, dict[str, object]] = {}
        self.annotations: list[object] = []
        self.refusal: list[str] = []
        self.tools: dict[int, _ToolSlot] = {}
        self.finish: str | None = None

    def parts(self) -> list[Part]:
        parts: list[Part] = []
        if self.details:  # the plain reasoning text, when sent too, repeats theirs
            parts.extend(from_details([self.details[i] for i in sorted(self.details)]))
        elif self.reasoning:
            parts.append(Reasoning("".join(self.reasoning), protocol="openai_chat"))
        if self.text or self.text_done:
            parts.append(Text("".join(self.text_done) + "".join(self.text)))
        if self.annotations:
            parts.append(RawPart("openai_chat", ANNOTATIONS, {"annotations": self.annotations}))
        if self.refusal:
            parts.append(Refusal("".join(self.refusal)))
        parts.extend(self.tool_calls())
        return parts

    def add_text(self, fragment: str) -> None:
        text = self.text
        text.append(fragment)
        if len(text) == TEXT_PIECES:
            self.text_done.append("".join(text))
            text.clear()

    def tool_calls(self) -> list[ToolCall]:
        calls = []
        for index in sorted(self.tools):
            slot = self.tools[index]
            call = parse_tool_call(slot.id or "", slot.name or "", "".join(slot.arguments))
            slot.id = call.id  # a made-up id must stay the same on every later look
            calls.append(call)
        return calls


class ChatStreamDecoder:
    """Turns Chat Completions SSE events into stream events, accumulating the Response.

    Events are emitted for the first choice; every choice is accumulated. Complete
    ``tool_call`` events follow their fragments once the choice finishes.
    """

    def __init__(self, endpoint: Endpoint, request_id: str | None = None) -> None:
        self.endpoint = endpoint
        self.request_id = request_id
        self.done = False
        self._choices: dict[int, _ChoiceState] = {}
        self._id = ""
        self._model = ""
        self._usage: Usage | None = None
        self._last: object = None
        self._tools_sent = False

    def feed(self, event: SSEEvent) -> list[StreamEvent]:
        """Decode one SSE event; an error sent in the stream raises its typed APIError.

        Nothing after ``[DONE]`` is decoded: a server that repeats a chunk past the end
        does not add to the reply.
        """
        if self.done:
            return []
        data = event.data
        if data[:6] == "[DONE]":
            self.done = True
            if not self._choices:
                raise APIResponseError(
                    "the provider ended the stream without sending any choice to read",
                    provider=self.endpoint.provider,
                    request_id=self.request_id,
                    partial=self.response(),
                )
            return self._flush_tool_calls()
        try:
            chunk = loads(data)
        except ValueError:
            raise unreadable_event(self, data) from None
        if not isinstance(chunk, dict):
            raise unreadable_event(self, data, "a JSON object")
        if event.event == "error" or chunk.get("error"):
            raise self._in_stream_error(chunk)
        return self._chunk(chunk)

    def _chunk(self, chunk: dict[str, object]) -> list[StreamEvent]:
        self._last = chunk
        if not self._id:
            self._id = get_str(chunk, "id")
        if not self._model:
            self._model = get_str(chunk, "model")
        choices = chunk.get("choices")
        if type(choices) is list and len(choices) == 1:
            choice = choices[0]
            delta = choice.get("delta") if type(choice) is dict else None
            content = delta.get("content") if type(delta) is dict and len(delta) == 1 else None
            # Fast path for the chunk that makes up most streams: one text fragment of the
            # first choice, nothing else (read here, not in _choice: one call less per chunk).
            if type(content) is str and not choice.get("index") and not choice.get("finish_reason"):
                if content:
                    state = self._choices.get(0) or self._state(0)
                    text = state.text
                    text.append(content)
                    if len(text) == TEXT_PIECES:  # add_text, inlined on the hot path
                        state.text_done.append("".join(text))
                        text.clear()
                    events: list[StreamEvent] = [TextDelta(content)]
                else:
                    events = []
            else:
                events = self._choice(choice)
        else:
            events = []
            for choice in as_list(choices):
                events += self._choice(choice)
        if chunk.get("usage") or ("x_groq" in chunk and get_object(chunk, "x_groq").get("usage")):
            self._usage = decode_usage(chunk)
            events.append(UsageEvent(self._usage))
        return events

    def _choice(self, choice: object) -> list[StreamEvent]:
        if not isinstance(choice, dict):
            return []  # not a choice at all: nothing to read
        delta = choice.get("delta")
        if not isinstance(delta, dict):
            if "text" not in choice:
                return []  # neither a chat delta nor a text completion's: nothing to read
            delta = {"content": choice.get("text")}  # a legacy text completion chunk
        index = choice.get("index") or 0
        if not isinstance(index, int):
            index = 0
        state = self._choices.get(index) or self._state(index)
        events = _delta_events(state, delta)
        native = get_str(choice, "finish_reason", None)
        first_finish = bool(native) and state.finish is None
        if native:
            state.finish = native
        if index != 0:
            return []
        if first_finish:  # some servers repeat the reason on the usage chunk: report it once
            events.extend(self._flush_tool_calls())
            events.append(FinishEvent(normalise_finish(native, state.parts())))
        return events

    def _state(self, index: int) -> _ChoiceState:
        state = self._choices[index] = _ChoiceState()
        return state

    def _flush_tool_calls(self) -> list[StreamEvent]:
        state = self._choices.get(0)
        if self._tools_sent or state is None:
            return []
        self._tools_sent = True
        return [ToolCallEvent(call) for call in state.tool_calls()]

    @property
    def finished(self) -> bool:
        """True once the provider has said the reply is complete."""
        state = self._choices.get(0)
        return self.done or (state is not None and state.finish is not None)

    def response(self) -> Response:
        """The Response accumulated so far (complete once the stream has finished)."""
        responses = [self._response_of(i) for i in sorted(self._choices)] or [self._response_of(0)]
        return replace(responses[0], choices=tuple(responses[1:]))

    def _response_of(self, index: int) -> Response:
        state = self._choices.get(index) or _ChoiceState()
        parts = state.parts()
        return Response(
            id=self._id,
            model=self._model,
            provider=self.endpoint.provider,
            content=tuple(parts),
            finish_reason=normalise_finish(state.finish, parts),
            usage=self._usage or UNREPORTED,
            raw=self._last,
            native_finish_reason=state.finish,
            request_id=self.request_id,
        )

    def _in_stream_error(self, chunk: dict[str, object]) -> APIError:
        error = chunk.get("error")
        if not isinstance(error, dict):
            error = chunk if error is None else {"message": str(error)}
        return in_stream_error(self, error, chunk)


def _delta_events(state: _ChoiceState, delta: Mapping[str, object]) -> list[StreamEvent]:
    events: list[StreamEvent] = []
    details = delta.get("reasoning_details")
    if isinstance(details, list) and details:
        for fragment in details:
            shown = merge_fragment(state.details, fragment) if isinstance(fragment, Mapping) else ""
            if shown:
                events.append(ReasoningDelta(shown))
    elif not state.details:
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if isinstance(reasoning, str) and reasoning:
            state.reasoning.append(reasoning)
            events.append(ReasoningDelta(reasoning))
    annotations = delta.get("annotations")
    if isinstance(annotations, list):
        state.annotations.extend(annotations)
    content = delta.get("content")
    if isinstance(content, str):
        if content:
            state.add_text(content)
            events.append(TextDelta(content))
    elif isinstance(content, list):
        events.extend(_content_array_deltas(state, content))
    refusal = delta.get("refusal")
    if refusal and isinstance(refusal, str):
        state.refusal.append(refusal)
        events.append(RefusalDelta(refusal))
    for position, fragment in enumerate(get_list(delta, "tool_calls")):
        if isinstance(fragment, dict):
            events.append(_tool_fragment(state, position, fragment))
    return events


def _content_array_deltas(state: _ChoiceState, content: list[object]) -> list[StreamEvent]:
    events: list[StreamEvent] = []
    for part in content_array_parts(content):
        if isinstance(part, Reasoning):
            state.reasoning.append(part.text)
            events.append(ReasoningDelta(part.text))
        elif isinstance(part, Text) and part.text:
            state.add_text(part.text)
            events.append(TextDelta(part.text))
    return events


def _tool_fragment(
    state: _ChoiceState, position: int, fragment: Mapping[str, object]
) -> ToolCallDelta:
    index = get_int(fragment, "index", position)
    function = get_object(fragment, "function")
    slot = state.tools.get(index)
    if slot is None:
        slot = state.tools[index] = _ToolSlot()
    call_id, name = get_str(fragment, "id") or None, get_str(function, "name") or None
    if call_id:
        slot.id = call_id
    if name:
        slot.name = name
    given = function.get("arguments")
    if isinstance(given, dict):  # some servers send the whole object, already parsed
        given = dumps(given)
    arguments = given if isinstance(given, str) else ""
    slot.arguments.append(arguments)
    return ToolCallDelta(index, call_id, name, arguments)
