"""The OpenAI Chat Completions protocol (and its legacy text completions and models endpoints).

Pure translation, no I/O: :func:`encode` turns a :class:`Request` into an
:class:`HttpRequest`, :func:`decode` turns an :class:`HttpResponse` into a
:class:`Response`, and :class:`ChatStreamDecoder` turns SSE events into stream events.
Every OpenAI-compatible provider (Azure, Ollama, Groq, Mistral …) goes through here; their
deviations are switched by the endpoint's quirk flags.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, assert_never

from .._endpoint import Endpoint
from .._errors import APIError, APIResponseError, InvalidRequestError
from .._http import HttpRequest, HttpResponse
from .._sse import SSEEvent
from .._types import (
    Document,
    FinishEvent,
    FinishReason,
    Image,
    Message,
    ModelInfo,
    Part,
    RawPart,
    Reasoning,
    ReasoningDelta,
    Refusal,
    RefusalDelta,
    Request,
    Response,
    StreamEvent,
    Text,
    TextDelta,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolCallEvent,
    ToolResult,
    Usage,
    UsageEvent,
)
from ._errors import decode_error, request_id_of

PROTOCOL = "openai_chat"

# Quirk flags an endpoint may carry.
LEGACY_MAX_TOKENS = "legacy_max_tokens"  # send max_tokens, not max_completion_tokens
RANDOM_SEED = "random_seed"  # Mistral names the seed field random_seed
SHORT_TOOL_IDS = "short_tool_ids"  # Mistral: tool-call ids must match [A-Za-z0-9]{9}
NO_STREAM_OPTIONS = "no_stream_options"  # the server rejects stream_options

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

_JSON_HEADERS = {"content-type": "application/json", "accept": "application/json"}
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_loads = json.loads
# The C scanner json.loads itself uses, without loads' per-call checks.
_scan_once: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def _loads_chunk(text: str) -> Any:
    """``json.loads`` for stream chunks, minus its per-call overhead on compact JSON."""
    try:
        value, end = _scan_once(text, 0)
    except StopIteration:
        return _loads(text)  # raises a ValueError that says what is wrong
    return value if end == len(text) else _loads(text)


# --- encoding ---------------------------------------------------------------------------


def encode(endpoint: Endpoint, request: Request) -> HttpRequest:
    """Build the HTTP request for ``POST /chat/completions``."""
    body = encode_body(endpoint, request)
    return _post(endpoint, "/chat/completions", request.model, body, request.extra_headers)


def encode_body(endpoint: Endpoint, request: Request) -> dict[str, Any]:
    """The JSON body of a chat request, provider-specific fields of ``extra_body`` included."""
    quirks = endpoint.quirks
    body: dict[str, Any] = {
        "model": request.model,
        "messages": encode_messages(request.messages, quirks),
    }
    _encode_sampling(body, request, quirks)
    if request.tools:
        body["tools"] = [encode_tool(t) for t in request.tools]
    if request.tool_choice is not None:
        body["tool_choice"] = encode_tool_choice(request.tool_choice)
    if request.response_format is not None:
        body["response_format"] = encode_response_format(request.response_format)
    if request.stream:
        body["stream"] = True
        if NO_STREAM_OPTIONS not in quirks:
            body["stream_options"] = {"include_usage": True}
    body.update(request.extra_body)
    return body


def _encode_sampling(body: dict[str, Any], request: Request, quirks: frozenset[str]) -> None:
    if request.max_tokens is not None:
        key = "max_tokens" if LEGACY_MAX_TOKENS in quirks else "max_completion_tokens"
        body[key] = request.max_tokens
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.top_k is not None:  # not OpenAI's own, but vLLM, Together … take it
        body["top_k"] = request.top_k
    if request.stop:
        body["stop"] = list(request.stop)
    if request.seed is not None:
        body["random_seed" if RANDOM_SEED in quirks else "seed"] = request.seed
    if request.n is not None:
        body["n"] = request.n
    if request.user is not None:
        body["user"] = request.user


def _post(
    endpoint: Endpoint, path: str, model: str, body: Mapping[str, Any], extra: Mapping[str, str]
) -> HttpRequest:
    return HttpRequest(
        "POST",
        endpoint.url(path, model),
        endpoint.request_headers(extra),
        _dumps(body).encode(),
        endpoint.secret_headers,
    )


def encode_messages(messages: Sequence[Message], quirks: frozenset[str] = frozenset()) -> list[Any]:
    """Messages in the Chat Completions shape; a tool message becomes one entry per result."""
    out: list[Any] = []
    short_ids = SHORT_TOOL_IDS in quirks
    for message in messages:
        if message.role == "tool":
            out.extend(_encode_tool_results(message, short_ids))
        elif message.role == "assistant":
            out.append(_encode_assistant(message, short_ids))
        else:
            out.append(_encode_plain(message))
    return out


def _encode_plain(message: Message) -> dict[str, Any]:
    content = message.content
    entry: dict[str, Any] = {"role": message.role}
    if len(content) == 1 and isinstance(content[0], Text):
        entry["content"] = content[0].text
    else:
        entry["content"] = [_encode_input_part(p, message.role) for p in content]
    if message.name:
        entry["name"] = message.name
    return entry


def _encode_input_part(part: Part, role: str) -> dict[str, Any]:
    match part:
        case Text(text=text):
            return {"type": "text", "text": text}
        case Image(url=url, detail=detail):
            if role != "user":
                raise InvalidRequestError(f"a {role} message cannot carry an image")
            image: dict[str, Any] = {"url": url}
            if detail:
                image["detail"] = detail
            return {"type": "image_url", "image_url": image}
        case Document():
            if role != "user":
                raise InvalidRequestError(f"a {role} message cannot carry a document")
            return _encode_document(part)
        case RawPart():
            return _raw(part)
        case ToolCall() | ToolResult() | Reasoning() | Refusal():
            raise InvalidRequestError(
                f"a {role} message cannot carry a {part.kind} part: tool calls belong in "
                "assistant messages and tool results in tool messages"
            )
        case _:
            assert_never(part)


def _encode_assistant(message: Message, short_ids: bool) -> dict[str, Any]:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    entry: dict[str, Any] = {"role": "assistant"}
    for part in message.content:
        match part:
            case Text(text=text):
                texts.append(text)
            case ToolCall():
                calls.append(_encode_tool_call(part, short_ids))
            case Refusal(text=text):
                entry["refusal"] = text
            case Reasoning():
                # Chat Completions has no input slot for reasoning; providers that stream it
                # (DeepSeek, vLLM) ask clients not to send it back.
                pass
            case RawPart():
                _raw(part)  # Chat Completions keeps no provider items in assistant turns
                raise InvalidRequestError("an assistant message cannot carry a raw part")
            case Image() | Document() | ToolResult():
                raise InvalidRequestError(f"an assistant message cannot carry a {part.kind} part")
            case _:
                assert_never(part)
    entry["content"] = "".join(texts) if texts or not calls else None
    if calls:
        entry["tool_calls"] = calls
    if message.name:
        entry["name"] = message.name
    return entry


def _encode_document(document: Document) -> dict[str, Any]:
    """Documents travel inline as ``file_data``; Chat Completions takes no document URLs."""
    if not document.url.startswith("data:"):
        raise InvalidRequestError(
            "Chat Completions takes documents inline only: use Document.from_bytes(...)"
        )
    file: dict[str, Any] = {"file_data": document.url}
    file["filename"] = document.title or "document"
    return {"type": "file", "file": file}


def _raw(part: RawPart) -> dict[str, Any]:
    """A raw part goes back only to the protocol it came from."""
    if part.protocol != PROTOCOL:
        raise InvalidRequestError(
            f"a {part.type!r} part from the {part.protocol} protocol cannot be sent over "
            f"{PROTOCOL}: remove it from the history first"
        )
    return dict(part.data)


def _encode_tool_call(call: ToolCall, short_ids: bool) -> dict[str, Any]:
    arguments = call.raw_arguments if call.invalid_arguments else _dumps(call.arguments)
    return {
        "id": _tool_id(call.id, short_ids),
        "type": "function",
        "function": {"name": call.name, "arguments": arguments or "{}"},
    }


def _encode_tool_results(message: Message, short_ids: bool) -> list[dict[str, Any]]:
    out = []
    for part in message.content:
        if not isinstance(part, ToolResult):
            raise InvalidRequestError(
                f"a tool message holds only tool results, not a {part.kind} part"
            )
        out.append(
            {
                "role": "tool",
                "tool_call_id": _tool_id(part.tool_call_id, short_ids),
                "content": part.content,
            }
        )
    return out


def _tool_id(call_id: str, short_ids: bool) -> str:
    """Mistral accepts only 9-character alphanumeric ids: map others to a stable one."""
    if not short_ids or (len(call_id) == 9 and call_id.isascii() and call_id.isalnum()):
        return call_id
    import hashlib

    digest = hashlib.sha256(call_id.encode()).hexdigest()
    return digest[:9]


def encode_tool(tool: Tool) -> dict[str, Any]:
    function: dict[str, Any] = {"name": tool.name, "parameters": dict(tool.parameters)}
    if tool.description:
        function["description"] = tool.description
    if tool.strict is not None:
        function["strict"] = tool.strict
    return {"type": "function", "function": function}


def encode_tool_choice(choice: str | Mapping[str, Any]) -> Any:
    """``"auto" | "none" | "required"`` pass through; any other string names a tool."""
    if not isinstance(choice, str):
        return dict(choice)
    if choice in ("auto", "none", "required"):
        return choice
    return {"type": "function", "function": {"name": choice}}


def encode_response_format(fmt: Mapping[str, Any]) -> dict[str, Any]:
    """callm's flat ``{"type": "json_schema", "name", "schema", "strict"}`` → the nested shape."""
    if fmt.get("type") != "json_schema" or "json_schema" in fmt:
        return dict(fmt)
    inner = {k: v for k, v in fmt.items() if k != "type"}
    inner.setdefault("name", "output")
    return {"type": "json_schema", "json_schema": inner}


def encode_text_completion(
    endpoint: Endpoint, model: str, prompt: str, params: Mapping[str, Any], stream: bool
) -> HttpRequest:
    """Build ``POST /completions`` (the legacy text completions endpoint)."""
    body: dict[str, Any] = {"model": model, "prompt": prompt, **params}
    if stream:
        body["stream"] = True
        if NO_STREAM_OPTIONS not in endpoint.quirks:
            body["stream_options"] = {"include_usage": True}
    return _post(endpoint, "/completions", model, body, {})


def encode_models(endpoint: Endpoint) -> HttpRequest:
    """Build ``GET /models``."""
    headers = dict(endpoint.request_headers())
    headers.pop("content-type", None)
    return HttpRequest("GET", endpoint.url("/models"), headers, None, endpoint.secret_headers)


# --- decoding ---------------------------------------------------------------------------


def parse_json(endpoint: Endpoint, response: HttpResponse) -> Any:
    """The JSON body of a response, or an APIResponseError saying it could not be read."""
    try:
        return _loads_chunk(response.body.decode())
    except ValueError:
        snippet = response.body[:200].decode("utf-8", "replace")
        raise APIResponseError(
            f"the provider sent a body that is not valid JSON: {snippet!r}",
            provider=endpoint.provider,
            status_code=response.status,
            request_id=request_id_of(response.headers),
        ) from None


def decode(endpoint: Endpoint, response: HttpResponse, latency_s: float | None = None) -> Response:
    """Decode a 2xx chat (or text completion) response."""
    data = parse_json(endpoint, response)
    if not isinstance(data, dict) or "choices" not in data:
        # A 2xx that is not a completion (OpenRouter sends upstream errors this way).
        raise _unreadable(endpoint, response, data)
    meta = _Meta(endpoint.provider, data, request_id_of(response.headers), latency_s)
    choices = data.get("choices") or ()
    if not choices:
        return _empty_response(meta)
    extra = tuple(_decode_choice(meta, c, ()) for c in choices[1:])
    return _decode_choice(meta, choices[0], extra)


def _unreadable(endpoint: Endpoint, response: HttpResponse, data: Any) -> APIError:
    error = decode_error(endpoint, 0, response.headers, data)
    if isinstance(data, dict) and "error" in data:
        return error
    return APIResponseError(
        f"the provider answered HTTP {response.status} without a completion: {str(data)[:200]}",
        provider=endpoint.provider,
        request_id=request_id_of(response.headers),
        body=data,
        headers=response.headers,
    )


class _Meta:
    """What every choice of one response shares."""

    __slots__ = ("data", "latency_s", "provider", "request_id", "usage")

    def __init__(
        self, provider: str, data: dict[str, Any], request_id: str | None, latency: float | None
    ) -> None:
        self.provider = provider
        self.data = data
        self.request_id = request_id
        self.latency_s = latency
        self.usage = decode_usage(data)


def _empty_response(meta: _Meta) -> Response:
    return _decode_choice(meta, {"message": {}}, ())


def _decode_choice(meta: _Meta, choice: Any, extra: tuple[Response, ...]) -> Response:
    message = choice.get("message")
    if message is None:  # a legacy text completion
        parts: list[Part] = [Text(choice.get("text") or "")]
    else:
        parts = message_parts(message)
    native = choice.get("finish_reason")
    data = meta.data
    return Response(
        id=data.get("id") or "",
        model=data.get("model") or "",
        provider=meta.provider,
        content=tuple(parts),
        finish_reason=normalise_finish(native, parts),
        usage=meta.usage,
        raw=data,
        native_finish_reason=native,
        request_id=meta.request_id,
        latency_s=meta.latency_s,
        choices=extra,
    )


def message_parts(message: Mapping[str, Any]) -> list[Part]:
    """The parts of a non-streamed assistant message, in reading order."""
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    parts: list[Part] = []
    if isinstance(reasoning, str) and reasoning:
        parts.append(Reasoning(reasoning))
    content = message.get("content")
    if isinstance(content, str):
        if content:
            parts.append(Text(content))
    elif isinstance(content, list):
        parts.extend(_content_array_parts(content))
    if message.get("refusal"):
        parts.append(Refusal(message["refusal"]))
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        parts.append(
            parse_tool_call(
                call.get("id") or "", function.get("name") or "", function.get("arguments")
            )
        )
    return parts


def _content_array_parts(content: list[Any]) -> list[Part]:
    """Mistral's reasoning models send content as an array of text and thinking blocks."""
    parts: list[Part] = []
    for block in content:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            parts.append(Text(block.get("text") or ""))
        elif kind == "thinking":
            inner = block.get("thinking") or []
            text = "".join(b.get("text", "") for b in inner if isinstance(b, dict))
            parts.append(Reasoning(text))
    return parts


def parse_tool_call(call_id: str, name: str, arguments: Any) -> ToolCall:
    """A tool call with its JSON arguments parsed; malformed ones are kept raw and flagged."""
    if not call_id:  # Gemini's compat layer sends "": make one up so results can refer to it
        call_id = "call_" + os.urandom(12).hex()
    if isinstance(arguments, dict):
        return ToolCall(call_id, name, arguments, _dumps(arguments))
    raw = arguments if isinstance(arguments, str) else ""
    if not raw.strip():
        return ToolCall(call_id, name, {}, raw)
    try:
        parsed = _loads(raw)
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


def decode_usage(data: Mapping[str, Any]) -> Usage:
    """Usage from a body or chunk: OpenAI's fields, DeepSeek's cache counts, Groq's x_groq."""
    usage = data.get("usage")
    if not usage:
        usage = (data.get("x_groq") or {}).get("usage")
        if not usage:
            return Usage()
    prompt_details = usage.get("prompt_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or {}
    cached = prompt_details.get("cached_tokens") or usage.get("prompt_cache_hit_tokens") or 0
    return Usage(
        input_tokens=usage.get("prompt_tokens") or 0,
        output_tokens=usage.get("completion_tokens") or 0,
        cached_input_tokens=cached,
        cache_write_tokens=prompt_details.get("cache_write_tokens") or 0,
        reasoning_tokens=completion_details.get("reasoning_tokens") or 0,
    )


def decode_failure(endpoint: Endpoint, response: HttpResponse) -> APIError:
    """The typed error of a non-2xx answer, whatever its body holds."""
    body: Any
    try:
        body = parse_json(endpoint, response)
    except APIError:
        body = response.body.decode("utf-8", "replace")
    return decode_error(endpoint, response.status, response.headers, body)


def decode_models(endpoint: Endpoint, response: HttpResponse) -> list[ModelInfo]:
    """Decode ``GET /models``."""
    data = parse_json(endpoint, response)
    items = data.get("data") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise APIResponseError(
            "the models endpoint sent no model list", provider=endpoint.provider, body=data
        )
    return [
        ModelInfo(
            id=item.get("id") or item.get("name") or "",
            provider=endpoint.provider,
            created=item.get("created"),
            owned_by=item.get("owned_by"),
            raw=item,
        )
        for item in items
        if isinstance(item, dict)
    ]


# --- streaming --------------------------------------------------------------------------


class _ChoiceState:
    """What one streamed choice has accumulated so far."""

    __slots__ = ("finish", "reasoning", "refusal", "text", "tools")

    def __init__(self) -> None:
        self.text: list[str] = []
        self.reasoning: list[str] = []
        self.refusal: list[str] = []
        # index -> [id, name, argument fragments]
        self.tools: dict[int, list[Any]] = {}
        self.finish: str | None = None

    def parts(self) -> list[Part]:
        parts: list[Part] = []
        if self.reasoning:
            parts.append(Reasoning("".join(self.reasoning)))
        if self.text:
            parts.append(Text("".join(self.text)))
        if self.refusal:
            parts.append(Refusal("".join(self.refusal)))
        parts.extend(self.tool_calls())
        return parts

    def tool_calls(self) -> list[ToolCall]:
        calls = []
        for index in sorted(self.tools):
            slot = self.tools[index]
            call = parse_tool_call(slot[0] or "", slot[1] or "", "".join(slot[2]))
            slot[0] = call.id  # a made-up id must stay the same on every later look
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
        self._last: Any = None
        self._tools_sent = False

    def feed(self, event: SSEEvent) -> list[StreamEvent]:
        """Decode one SSE event; raises APIResponseError for an error sent in the stream."""
        data = event.data
        if data[:6] == "[DONE]":
            self.done = True
            return self._flush_tool_calls()
        try:
            chunk = _loads_chunk(data)
        except ValueError:
            raise self._stream_error(
                f"the provider sent a stream chunk that is not JSON: {data[:200]!r}"
            ) from None
        if not isinstance(chunk, dict):
            raise self._stream_error(
                f"the provider sent a stream chunk that is not a JSON object: {data[:200]!r}"
            )
        if event.event == "error" or chunk.get("error"):
            raise self._in_stream_error(chunk)
        return self._chunk(chunk)

    def _chunk(self, chunk: dict[str, Any]) -> list[StreamEvent]:
        self._last = chunk
        if not self._id and chunk.get("id"):
            self._id = chunk["id"]
        if not self._model and chunk.get("model"):
            self._model = chunk["model"]
        choices = chunk.get("choices")
        if choices and len(choices) == 1:
            events = self._choice(choices[0])
        else:
            events = []
            for choice in choices or ():
                events += self._choice(choice)
        if chunk.get("usage") or ("x_groq" in chunk and (chunk["x_groq"] or {}).get("usage")):
            self._usage = decode_usage(chunk)
            events.append(UsageEvent(self._usage))
        return events

    def _choice(self, choice: Mapping[str, Any]) -> list[StreamEvent]:
        index = choice.get("index") or 0
        state = self._choices.get(index)
        if state is None:
            state = self._choices[index] = _ChoiceState()
        delta = choice.get("delta")
        # Fast path for the chunk that makes up most streams: one text fragment, nothing else.
        if index == 0 and delta is not None and len(delta) == 1 and not choice.get("finish_reason"):
            content = delta.get("content")
            if type(content) is str:
                if not content:
                    return []
                state.text.append(content)
                return [TextDelta(content)]
        if delta is None:  # a legacy text completion chunk
            delta = {"content": choice.get("text")}
        events = _delta_events(state, delta)
        native = choice.get("finish_reason")
        first_finish = bool(native) and state.finish is None
        if native:
            state.finish = native
        if index != 0:
            return []
        if first_finish:  # some servers repeat the reason on the usage chunk: report it once
            events.extend(self._flush_tool_calls())
            events.append(FinishEvent(normalise_finish(native, state.parts())))
        return events

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
        from dataclasses import replace

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
            usage=self._usage or Usage(),
            raw=self._last,
            native_finish_reason=state.finish,
            request_id=self.request_id,
        )

    def _in_stream_error(self, chunk: Any) -> APIResponseError:
        error = chunk.get("error") if isinstance(chunk, dict) else None
        if not isinstance(error, dict):
            error = chunk if isinstance(chunk, dict) else {"message": str(chunk)}
        message = error.get("message") or "the provider reported an error mid-stream"
        code = error.get("code")
        return APIResponseError(
            f"error inside the stream: {message}",
            provider=self.endpoint.provider,
            request_id=self.request_id,
            body=chunk,
            code=str(code) if code is not None else None,
            partial=self.response(),
        )

    def _stream_error(self, message: str) -> APIResponseError:
        return APIResponseError(
            message,
            provider=self.endpoint.provider,
            request_id=self.request_id,
            partial=self.response(),
        )


def _delta_events(state: _ChoiceState, delta: Mapping[str, Any]) -> list[StreamEvent]:
    events: list[StreamEvent] = []
    reasoning = delta.get("reasoning_content") or delta.get("reasoning")
    if isinstance(reasoning, str) and reasoning:
        state.reasoning.append(reasoning)
        events.append(ReasoningDelta(reasoning))
    content = delta.get("content")
    if isinstance(content, str):
        if content:
            state.text.append(content)
            events.append(TextDelta(content))
    elif isinstance(content, list):
        events.extend(_content_array_deltas(state, content))
    refusal = delta.get("refusal")
    if refusal:
        state.refusal.append(refusal)
        events.append(RefusalDelta(refusal))
    for position, fragment in enumerate(delta.get("tool_calls") or ()):
        events.append(_tool_fragment(state, position, fragment))
    return events


def _content_array_deltas(state: _ChoiceState, content: list[Any]) -> list[StreamEvent]:
    events: list[StreamEvent] = []
    for part in _content_array_parts(content):
        if isinstance(part, Reasoning):
            state.reasoning.append(part.text)
            events.append(ReasoningDelta(part.text))
        elif isinstance(part, Text) and part.text:
            state.text.append(part.text)
            events.append(TextDelta(part.text))
    return events


def _tool_fragment(
    state: _ChoiceState, position: int, fragment: Mapping[str, Any]
) -> ToolCallDelta:
    index = fragment.get("index", position)
    function = fragment.get("function") or {}
    slot = state.tools.get(index)
    if slot is None:
        slot = state.tools[index] = [None, None, []]
    call_id, name = fragment.get("id") or None, function.get("name") or None
    if call_id:
        slot[0] = call_id
    if name:
        slot[1] = name
    arguments = function.get("arguments")
    if isinstance(arguments, dict):  # some servers send the whole object, already parsed
        arguments = _dumps(arguments)
    arguments = arguments or ""
    slot[2].append(arguments)
    return ToolCallDelta(index, call_id, name, arguments)


def stream_decoder(endpoint: Endpoint, request_id: str | None) -> ChatStreamDecoder:
    """A decoder for one Chat Completions (or text completions) stream."""
    return ChatStreamDecoder(endpoint, request_id)
