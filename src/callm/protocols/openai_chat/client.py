"""The OpenAI Chat Completions protocol (and its legacy text completions and models endpoints).

Pure translation, no I/O: :func:`encode` turns a :class:`Request` into an
:class:`HttpRequest`, :func:`decode` turns an :class:`HttpResponse` into a
:class:`Response`, and :class:`ChatStreamDecoder` turns SSE events into stream events.
Every OpenAI-compatible provider (Azure, Ollama, Groq, Mistral …) goes through here; how
each departs from OpenAI's API is read from the endpoint's typed :class:`~callm.Quirks`
(``max_tokens`` or ``max_completion_tokens``, Mistral's ``random_seed`` …).

Prompt caching is automatic on OpenAI; ``cache=`` adds ``prompt_cache_key`` (a string as
given, ``True`` a key derived from the model, leading system prompt and tools) for endpoints
whose quirks say ``prompt_cache_key`` (the built-in ``openai`` and ``azure`` providers).
For those whose quirks say ``cache_control`` (OpenRouter, in front of Anthropic and Gemini
models), ``Message(cache=True)`` puts ``cache_control: {"type": "ephemeral"}`` on that
message's last text part, and ``cache=`` (True, or a ``"5m"`` / ``"1h"`` TTL) marks the
conversation before the newest user turn and the last system message, within Anthropic's
four marks. Cached prompt tokens come back as ``usage.cached_input_tokens``.

Reasoning is read from ``reasoning_details``, ``reasoning_content`` or ``reasoning`` and
sent back as the entry's ``Quirks.reasoning_back`` says (see
:mod:`callm.protocols.openai_chat.reasoning`). ``message.annotations`` (``url_citation``
from web search) follow the text as ``RawPart(type="annotations")``; information only, they
are not sent back (assistant turns have no slot for them). A document given by URL goes as a
``file`` part where the quirks say ``document_urls``; elsewhere only inline documents can
be sent, and a URL is refused with a clear error.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import assert_never

from ..._core.endpoint import Endpoint
from ..._core.errors import APIError, APIResponseError, InvalidRequestError
from ..._core.http import HttpRequest, HttpResponse
from ..._core.json import dumps, get_object, get_str
from ..._core.options import ResponseFormat, ToolChoice
from ..._core.quirks import DEFAULT as DEFAULT_QUIRKS
from ..._core.quirks import FLAGS, Quirks
from ..._core.types import (
    Document,
    Image,
    Message,
    ModelInfo,
    Part,
    RawPart,
    Reasoning,
    Refusal,
    Request,
    Response,
    Text,
    Tool,
    ToolCall,
    ToolResult,
)
from .._shared.errors import decode_error, parse_json, request_id_of
from .._shared.openai import (
    CACHE_TTLS,
    FINISH_REASONS,
    PROMPT_CACHE_KEY,
    content_array_parts,
    decode_usage,
    normalise_finish,
    parse_tool_call,
    prompt_cache_key,
)
from . import reasoning as _reasoning
from .stream import ANNOTATIONS, ChatStreamDecoder

__all__ = [
    "FINISH_REASONS",
    "LEGACY_MAX_TOKENS",
    "NO_STREAM_OPTIONS",
    "PROMPT_CACHE_KEY",
    "PROTOCOL",
    "RANDOM_SEED",
    "SHORT_TOOL_IDS",
    "ChatStreamDecoder",
    "decode",
    "decode_failure",
    "decode_models",
    "decode_usage",
    "encode",
    "encode_body",
    "encode_messages",
    "encode_models",
    "encode_response_format",
    "encode_text_completion",
    "encode_tool",
    "encode_tool_choice",
    "message_parts",
    "normalise_finish",
    "parse_json",
    "parse_tool_call",
    "stream_decoder",
]
_dumps = dumps  # older spellings, kept for callers that used them

PROTOCOL = "openai_chat"

# The older quirk flag names (a config's ``quirks = [...]`` list): see callm.Quirks.
LEGACY_MAX_TOKENS = "legacy_max_tokens"  # max_tokens_field = "max_tokens"
RANDOM_SEED = "random_seed"  # seed_field = "random_seed"
SHORT_TOOL_IDS = "short_tool_ids"  # short_tool_ids = True
NO_STREAM_OPTIONS = "no_stream_options"  # stream_options = False
assert {LEGACY_MAX_TOKENS, RANDOM_SEED, SHORT_TOOL_IDS, NO_STREAM_OPTIONS} <= set(FLAGS)
_MAX_CACHE_MARKS = 4  # Anthropic's limit, which OpenRouter passes on

# --- encoding ---------------------------------------------------------------------------


def encode(endpoint: Endpoint, request: Request) -> HttpRequest:
    """Build the HTTP request for ``POST /chat/completions``."""
    body = encode_body(endpoint, request)
    return _post(endpoint, "/chat/completions", request.model, body, request.extra_headers)


def encode_body(endpoint: Endpoint, request: Request) -> dict[str, object]:
    """The JSON body of a chat request, provider-specific fields of ``extra_body`` included."""
    quirks = endpoint.quirks
    messages = encode_messages(request.messages, quirks)
    if quirks.cache_control and request.cache:
        _mark_cache(messages, request.cache)
    body: dict[str, object] = {"model": request.model, "messages": messages}
    _encode_sampling(body, request, quirks)
    if request.tools:
        body["tools"] = [encode_tool(t) for t in request.tools]
    if request.tool_choice is not None:
        body["tool_choice"] = encode_tool_choice(request.tool_choice)
    if request.response_format is not None:
        body["response_format"] = encode_response_format(request.response_format)
    cache_key = prompt_cache_key(request, quirks)
    if cache_key is not None:
        body["prompt_cache_key"] = cache_key
    if request.stream:
        body["stream"] = True
        if quirks.stream_options:
            body["stream_options"] = {"include_usage": True}
    body.update(request.extra_body)
    return body


def _encode_sampling(body: dict[str, object], request: Request, quirks: Quirks) -> None:
    if request.max_tokens is not None:
        body[quirks.max_tokens_field] = request.max_tokens
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.top_k is not None:  # not OpenAI's own, but vLLM, Together … take it
        body["top_k"] = request.top_k
    if request.stop:
        body["stop"] = list(request.stop)
    if request.seed is not None:
        body[quirks.seed_field] = request.seed
    if request.n is not None:
        body["n"] = request.n
    if request.user is not None:
        body["user"] = request.user


def _post(
    endpoint: Endpoint, path: str, model: str, body: Mapping[str, object], extra: Mapping[str, str]
) -> HttpRequest:
    return HttpRequest(
        "POST",
        endpoint.url(path, model),
        endpoint.request_headers(extra),
        dumps(body).encode(),
        endpoint.secret_headers,
    )


def encode_messages(
    messages: Sequence[Message], quirks: Quirks = DEFAULT_QUIRKS
) -> list[dict[str, object]]:
    """Messages in the Chat Completions shape; a tool message becomes one entry per result."""
    out: list[dict[str, object]] = []
    for message in messages:
        if message.role == "tool":
            entries = _encode_tool_results(message, quirks.short_tool_ids)
        elif message.role == "assistant":
            entries = [_encode_assistant(message, quirks)]
        else:
            entries = [_encode_plain(message, quirks)]
        if message.cache and quirks.cache_control:
            _mark(entries[-1], _EPHEMERAL)
        out.extend(entries)
    return out


def _encode_plain(message: Message, quirks: Quirks) -> dict[str, object]:
    content = message.content
    entry: dict[str, object] = {"role": message.role}
    if len(content) == 1 and isinstance(content[0], Text):
        entry["content"] = content[0].text
    else:
        entry["content"] = [_encode_input_part(p, message.role, quirks) for p in content]
    if message.name:
        entry["name"] = message.name
    return entry


def _encode_input_part(part: Part, role: str, quirks: Quirks) -> dict[str, object]:
    match part:
        case Text(text=text):
            return {"type": "text", "text": text}
        case Image(url=url, detail=detail):
            if role != "user":
                raise InvalidRequestError(f"a {role} message cannot carry an image")
            image: dict[str, object] = {"url": url}
            if detail:
                image["detail"] = detail
            return {"type": "image_url", "image_url": image}
        case Document():
            if role != "user":
                raise InvalidRequestError(f"a {role} message cannot carry a document")
            return _encode_document(part, quirks.document_urls)
        case RawPart():
            return _raw(part)
        case ToolCall() | ToolResult() | Reasoning() | Refusal():
            raise InvalidRequestError(
                f"a {role} message cannot carry a {part.kind} part: tool calls belong in "
                "assistant messages and tool results in tool messages"
            )
        case _:
            assert_never(part)


def _encode_assistant(message: Message, quirks: Quirks) -> dict[str, object]:
    texts: list[str] = []
    calls: list[dict[str, object]] = []
    entry: dict[str, object] = {"role": "assistant"}
    for part in message.content:
        match part:
            case Text(text=text):
                texts.append(text)
            case ToolCall():
                calls.append(_encode_tool_call(part, quirks.short_tool_ids))
            case Refusal(text=text):
                entry["refusal"] = text
            case Reasoning():
                pass  # goes back, if at all, as the provider's quirks say (below)
            case RawPart(protocol=protocol, type=kind) if (protocol, kind) == (
                PROTOCOL,
                ANNOTATIONS,
            ):
                pass  # information only: assistant turns have no slot for annotations
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
    entry.update(_reasoning.back_fields(message, quirks.reasoning_back))
    if message.name:
        entry["name"] = message.name
    return entry


def _encode_document(document: Document, by_url: bool) -> dict[str, object]:
    """A PDF travels inline as a ``file`` part, a text document as a text part; a document
    given by URL goes as a ``file`` part only to servers that fetch it (OpenRouter)."""
    from ..._core.media import PDF, is_text

    if not document.url.startswith("data:"):
        if by_url:
            return {
                "type": "file",
                "file": {"filename": _url_name(document), "file_data": document.url},
            }
        raise InvalidRequestError(
            "this provider takes documents inline only, not by URL: use Document.from_path / "
            "from_bytes, or a provider that fetches URLs (openrouter, openai-responses)"
        )
    header, _, data = document.url.partition(",")
    media_type = document.media_type or header[5:].split(";", 1)[0]
    if media_type == PDF:
        return {
            "type": "file",
            "file": {"file_data": document.url, "filename": _filename(document)},
        }
    if is_text(media_type):
        return {"type": "text", "text": _data_text(header, data)}
    raise InvalidRequestError(
        f"Chat Completions takes PDF and text documents only, not {media_type}: use the "
        "openai-responses provider for other files"
    )


def _url_name(document: Document) -> str:
    """The file name of a document by URL: its title, else the URL's last path segment."""
    if document.title:
        return document.title
    path = document.url.split("?", 1)[0].split("#", 1)[0].rstrip("/")
    return path.rsplit("/", 1)[-1] or "document.pdf"


def _filename(document: Document) -> str:
    # OpenAI reads the file type from the name's extension as well as the data URL.
    title = document.title or "document"
    return title if title.lower().endswith(".pdf") else title + ".pdf"


def _data_text(header: str, data: str) -> str:
    import base64
    import binascii
    import urllib.parse

    if ";base64" not in header:
        return urllib.parse.unquote(data)
    try:
        return base64.b64decode(data, validate=True).decode("utf-8", "replace")
    except binascii.Error:
        raise InvalidRequestError("the document's data: URL is not valid base64") from None


def _raw(part: RawPart) -> dict[str, object]:
    """A raw part goes back only to the protocol it came from."""
    if part.protocol != PROTOCOL:
        raise InvalidRequestError(
            f"a {part.type!r} part from the {part.protocol} protocol cannot be sent over "
            f"{PROTOCOL}: remove it from the history first"
        )
    return dict(part.data)


_EPHEMERAL: Mapping[str, object] = {"type": "ephemeral"}


def _mark_cache(messages: list[dict[str, object]], cache: bool | str) -> None:
    """``cache=``: mark the conversation before the newest user turn and the last system
    message, keeping the caller's own marks, within four in all. A ``"5m"`` / ``"1h"`` TTL
    goes on every mark, the caller's too (a longer-lived mark may not follow a shorter)."""
    control = {**_EPHEMERAL, "ttl": cache} if cache in CACHE_TTLS else dict(_EPHEMERAL)
    marked = sum(1 for m in messages if _marked(m))
    if "ttl" in control:
        for entry in messages:
            if _marked(entry):
                _mark(entry, control)
    newest = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=0)
    before = [m for m in messages[:newest] if m.get("content")]
    systems = [m for m in messages if m["role"] in ("system", "developer")]
    for entry in (before[-1:] + systems[-1:])[: max(0, _MAX_CACHE_MARKS - marked)]:
        if not _marked(entry):
            _mark(entry, control)


def _marked(entry: Mapping[str, object]) -> bool:
    content = entry.get("content")
    return isinstance(content, list) and any(
        isinstance(p, dict) and "cache_control" in p for p in content
    )


def _mark(entry: dict[str, object], control: Mapping[str, object]) -> None:
    """Put ``cache_control`` on the last text part of an entry (a string content becomes
    one text part); an entry with no text (only tool calls) takes no mark."""
    content = entry.get("content")
    if isinstance(content, str):
        entry["content"] = [{"type": "text", "text": content, "cache_control": dict(control)}]
        return
    parts: list[object] = content if isinstance(content, list) else []
    for part in reversed(parts):
        if isinstance(part, dict) and part.get("type") == "text":
            part["cache_control"] = dict(control)
            return


def _encode_tool_call(call: ToolCall, short_ids: bool) -> dict[str, object]:
    arguments = call.raw_arguments if call.invalid_arguments else dumps(call.arguments)
    return {
        "id": _tool_id(call.id, short_ids),
        "type": "function",
        "function": {"name": call.name, "arguments": arguments or "{}"},
    }


def _encode_tool_results(message: Message, short_ids: bool) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
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


def encode_tool(tool: Tool) -> dict[str, object]:
    function: dict[str, object] = {"name": tool.name, "parameters": dict(tool.parameters)}
    if tool.description:
        function["description"] = tool.description
    if tool.strict is not None:
        function["strict"] = tool.strict
    return {"type": "function", "function": function}


def encode_tool_choice(choice: ToolChoice) -> str | dict[str, object]:
    """A mode as it is, a named tool as Chat's function object, a native object as given."""
    if choice.native is not None:
        return dict(choice.native)
    if choice.name is not None:
        return {"type": "function", "function": {"name": choice.name}}
    return choice.mode


def encode_response_format(fmt: ResponseFormat) -> dict[str, object]:
    """A JSON schema in Chat's nested shape (named "output" unless named); others as given."""
    if fmt.native is not None:
        return dict(fmt.native)
    if fmt.type != "json_schema":
        return {"type": fmt.type}
    inner: dict[str, object] = {"name": fmt.name or "output"}
    if fmt.description is not None:
        inner["description"] = fmt.description
    if fmt.schema is not None:
        inner["schema"] = fmt.schema
    if fmt.strict is not None:
        inner["strict"] = fmt.strict
    return {"type": "json_schema", "json_schema": inner}


def encode_text_completion(
    endpoint: Endpoint, model: str, prompt: str, params: Mapping[str, object], stream: bool
) -> HttpRequest:
    """Build ``POST /completions`` (the legacy text completions endpoint)."""
    body: dict[str, object] = {"model": model, "prompt": prompt, **params}
    if stream:
        body["stream"] = True
        if endpoint.quirks.stream_options:
            body["stream_options"] = {"include_usage": True}
    return _post(endpoint, "/completions", model, body, {})


def encode_models(endpoint: Endpoint) -> HttpRequest:
    """Build ``GET /models``."""
    headers = dict(endpoint.request_headers())
    headers.pop("content-type", None)
    return HttpRequest("GET", endpoint.url("/models"), headers, None, endpoint.secret_headers)


# --- decoding ---------------------------------------------------------------------------


def decode(endpoint: Endpoint, response: HttpResponse, latency_s: float | None = None) -> Response:
    """Decode a 2xx chat (or text completion) response."""
    data = parse_json(endpoint, response)
    if not isinstance(data, dict) or "choices" not in data:
        # A 2xx that is not a completion (OpenRouter sends upstream errors this way).
        raise _unreadable(endpoint, response, data)
    choices = data.get("choices")
    if not isinstance(choices, list) or not all(_is_choice(c) for c in choices) or not choices:
        raise APIResponseError(
            f"the provider answered HTTP {response.status} with no choice to read "
            f"(choices: {str(choices)[:100]})",
            provider=endpoint.provider,
            request_id=request_id_of(response.headers),
            body=data,
            headers=response.headers,
        )
    meta = _Meta(endpoint.provider, data, request_id_of(response.headers), latency_s)
    extra = tuple(_decode_choice(meta, c, ()) for c in choices[1:])
    return _decode_choice(meta, choices[0], extra)


def _is_choice(choice: object) -> bool:
    """A chat choice with its message (even empty), or a text completion's choice."""
    return isinstance(choice, dict) and (
        isinstance(choice.get("message"), dict) or "text" in choice
    )


def _unreadable(endpoint: Endpoint, response: HttpResponse, data: object) -> APIError:
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

    __slots__ = ("data", "id", "latency_s", "model", "provider", "request_id", "usage")

    def __init__(
        self, provider: str, data: dict[str, object], request_id: str | None, latency: float | None
    ) -> None:
        self.provider = provider
        self.data = data
        self.request_id = request_id
        self.latency_s = latency
        self.usage = decode_usage(data)
        self.id = get_str(data, "id")
        self.model = get_str(data, "model")


def _decode_choice(meta: _Meta, given: object, extra: tuple[Response, ...]) -> Response:
    choice = given if isinstance(given, dict) else {}
    message = choice.get("message")
    if message is None:  # a legacy text completion
        parts: list[Part] = [Text(choice.get("text") or "")]
    else:
        parts = message_parts(message) if isinstance(message, dict) else []
    native = choice.get("finish_reason")
    data = meta.data
    return Response(
        id=meta.id,
        model=meta.model,
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


def message_parts(message: Mapping[str, object]) -> list[Part]:
    """The parts of a non-streamed assistant message, in reading order."""
    parts: list[Part] = list(_reasoning.message_reasoning(message))
    content = message.get("content")
    if isinstance(content, str):
        if content:
            parts.append(Text(content))
    elif isinstance(content, list):
        parts.extend(content_array_parts(content))
    annotations = message.get("annotations")
    if isinstance(annotations, list) and annotations:
        parts.append(RawPart(PROTOCOL, ANNOTATIONS, {"annotations": annotations}))
    refusal = message.get("refusal")
    if refusal and isinstance(refusal, str):
        parts.append(Refusal(refusal))
    calls = message.get("tool_calls")
    for call in calls if calls and isinstance(calls, list) else ():
        if isinstance(call, dict):
            function = get_object(call, "function")
            call_id, name = get_str(call, "id"), get_str(function, "name")
            parts.append(parse_tool_call(call_id, name, function.get("arguments")))
    return parts


def decode_failure(endpoint: Endpoint, response: HttpResponse) -> APIError:
    """The typed error of a non-2xx answer, whatever its body holds."""
    body: object
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


def stream_decoder(endpoint: Endpoint, request_id: str | None) -> ChatStreamDecoder:
    """A decoder for one Chat Completions (or text completions) stream."""
    return ChatStreamDecoder(endpoint, request_id)
