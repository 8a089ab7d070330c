"""The OpenAI Responses protocol (``POST /responses``).

Pure translation, no I/O: :func:`encode` turns a :class:`Request` into an
:class:`HttpRequest`, :func:`decode` turns an :class:`HttpResponse` into a
:class:`Response`, and :func:`~.stream.stream_decoder` (in ``stream.py``) turns the typed
event stream into stream events. Both decoders read output items through
:func:`output_parts`, so streamed and whole replies cannot drift apart.

How callm's types map onto the wire, where a choice had to be made:

- **System and developer messages** at the start of the conversation become
  ``instructions`` (joined by a blank line), as the API's own examples do; one that comes
  later stays an input message with its role, in place, so its position keeps its meaning.
- **Assistant history**: text and refusals become one ``message`` item with
  ``output_text`` / ``refusal`` parts; a :class:`ToolCall` becomes a ``function_call`` item
  whose ``call_id`` is the ToolCall's id; a :class:`Reasoning` that came from this protocol
  (it has an ``id``) is echoed as a ``reasoning`` item with its ``encrypted_content``
  (``data``) and its summary. Reasoning without an id came from another provider and has no
  slot here, so it is left out (as Chat Completions does).
- **Item ids the API checks**: a reasoning item must be sent back together with the item
  that followed it, by id (the API answers 400 "provided without its required following
  item" otherwise). callm's Text and ToolCall carry no item id, so the decoder keeps the id
  of the item that followed a reasoning item in that Reasoning's ``signature``, and the
  encoder puts it back on the next message or function call.
- **Unmodelled output items** (``web_search_call``, ``file_search_call``, ``mcp_*``,
  ``code_interpreter_call``, ``image_generation_call`` …) are kept as
  ``RawPart(protocol="openai_responses", type=item["type"], data=item)`` in order, and go
  back verbatim as input items. Citations and other annotations on an ``output_text`` part
  follow its Text as ``RawPart(type="annotations", data={"annotations": [...]})`` and are
  put back on that part when the history is sent again; a message content part of another
  kind is ``RawPart(type="content_part", data=part)``. A ``message`` item that is not the
  assistant's (``/responses/compact`` output echoes user turns) is a ``RawPart`` too.
- ``Message.name`` has no slot in Responses input items and is not sent.
- ``user`` is sent as ``user``: the API still takes it and it serves both purposes that
  ``safety_identifier`` and ``prompt_cache_key`` now split. ``cache=`` sets
  ``prompt_cache_key`` as Chat Completions does (a string as given, ``True`` a key derived
  from the model, instructions and tools) on endpoints with the ``prompt_cache_key`` quirk
  (the built-in ``openai-responses`` provider); ``safety_identifier`` goes through
  ``extra_body``. ``store`` (default true on the server) is the caller's, via
  ``extra_body``.
- The protocol has no ``stop``, ``seed``, ``top_k`` or ``n > 1``: such a request raises
  :class:`~callm.InvalidRequestError` rather than being sent without them.
- A reply whose ``status`` is ``failed`` raises the error its ``error.code`` names, typed as
  the same failure answered with an HTTP status would be (``server_error`` an
  :class:`~callm.InternalServerError`, ``rate_limit_exceeded`` a :class:`~callm.RateLimitError`,
  an unknown code an :class:`~callm.APIResponseError`), with ``status_code`` None, the
  provider's message and the partial Response (``finish_reason="error"``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import assert_never

from ..._core.endpoint import Endpoint
from ..._core.errors import APIError, APIResponseError, InvalidRequestError
from ..._core.http import HttpRequest, HttpResponse
from ..._core.json import get_list, get_str
from ..._core.options import ResponseFormat, ToolChoice
from ..._core.quirks import DEFAULT as DEFAULT_QUIRKS
from ..._core.quirks import Quirks
from ..._core.types import (
    UNREPORTED,
    Document,
    FinishReason,
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
    Usage,
)
from .._shared.errors import decode_error, parse_json, request_id_of, twin_status
from .._shared.openai import prompt_cache_key
from .._shared.usage import details, tokens
from ..openai_chat import client as openai_chat
from ..openai_chat.client import parse_tool_call

PROTOCOL = "openai_responses"
# The RawPart type that carries an output_text part's annotations (citations …).
ANNOTATIONS = "annotations"
# The RawPart type of a message content part callm does not model (kept in its message).
CONTENT_PART = "content_part"

_dumps = openai_chat._dumps
_INSTRUCTION_ROLES = ("system", "developer")
_UNSUPPORTED = (
    ("stop", "stop sequences"),
    ("seed", "a seed"),
    ("top_k", "top_k"),
)

# --- encoding ---------------------------------------------------------------------------


def encode(endpoint: Endpoint, request: Request) -> HttpRequest:
    """Build the HTTP request for ``POST /responses`` (any ``endpoint.query`` kept)."""
    body = encode_body(request, endpoint.quirks)
    return HttpRequest(
        "POST",
        # Responses is never deployment-scoped, even on classic Azure endpoints.
        endpoint.url("/responses"),
        endpoint.request_headers(request.extra_headers),
        _dumps(body).encode(),
        endpoint.secret_headers,
    )


def encode_body(request: Request, quirks: Quirks = DEFAULT_QUIRKS) -> dict[str, object]:
    """The JSON body of a Responses request, ``extra_body`` merged last."""
    _refuse_unsupported(request)
    instructions, items = encode_input(request.messages)
    body: dict[str, object] = {"model": request.model, "input": items}
    if instructions is not None:
        body["instructions"] = instructions
    if request.max_tokens is not None:
        body["max_output_tokens"] = request.max_tokens
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.user is not None:
        body["user"] = request.user
    if request.tools:
        body["tools"] = [encode_tool(t) for t in request.tools]
    if request.tool_choice is not None:
        body["tool_choice"] = encode_tool_choice(request.tool_choice)
    if request.response_format is not None:
        body["text"] = {"format": encode_text_format(request.response_format)}
    cache_key = prompt_cache_key(request, quirks)
    if cache_key is not None:
        body["prompt_cache_key"] = cache_key
    if request.stream:
        body["stream"] = True
    body.update(request.extra_body)
    return body


def _refuse_unsupported(request: Request) -> None:
    for field, what in _UNSUPPORTED:
        value = getattr(request, field)
        if value is not None:
            raise InvalidRequestError(
                f"the OpenAI Responses API does not take {what} ({field}={value!r}): "
                "remove it, or use the openai provider (Chat Completions), which does"
            )
    if request.n is not None and request.n != 1:
        raise InvalidRequestError(
            f"the OpenAI Responses API returns one choice per call (n={request.n}): "
            "make several calls, or use the openai provider (Chat Completions)"
        )


def encode_input(messages: Sequence[Message]) -> tuple[str | None, list[dict[str, object]]]:
    """``(instructions, input items)``: leading system/developer texts become instructions."""
    leading: list[str] = []
    index = 0
    while index < len(messages) and messages[index].role in _INSTRUCTION_ROLES:
        leading.append(_instruction_text(messages[index]))
        index += 1
    items: list[dict[str, object]] = []
    for message in messages[index:]:
        match message.role:
            case "assistant":
                items.extend(_encode_assistant(message))
            case "tool":
                items.extend(_encode_tool_results(message))
            case "user" | "system" | "developer":
                items.append(_encode_input_message(message))
            case _:
                assert_never(message.role)
    return ("\n\n".join(leading) if leading else None), items


def _instruction_text(message: Message) -> str:
    for part in message.content:
        if not isinstance(part, Text):
            raise InvalidRequestError(
                f"a {message.role} message holds only text over the Responses API, "
                f"not a {part.kind} part"
            )
    return message.text


def _encode_input_message(message: Message) -> dict[str, object]:
    content = message.content
    if len(content) == 1 and isinstance(content[0], Text):
        return {"role": message.role, "content": content[0].text}
    return {"role": message.role, "content": [_input_part(p, message.role) for p in content]}


def _input_part(part: Part, role: str) -> dict[str, object]:
    match part:
        case Text(text=text):
            return {"type": "input_text", "text": text}
        case Image(url=url, detail=detail):
            if role != "user":
                raise InvalidRequestError(f"a {role} message cannot carry an image")
            return {"type": "input_image", "image_url": url, "detail": detail or "auto"}
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


def _encode_document(document: Document) -> dict[str, object]:
    if not document.url.startswith("data:"):
        return {"type": "input_file", "file_url": document.url}
    return {
        "type": "input_file",
        "file_data": document.url,
        "filename": document.title or _filename(document),
    }


def _filename(document: Document) -> str:
    # The API reads the file type from the name's extension as well as the data URL.
    import mimetypes

    media_type = document.media_type or document.url[5:].split(";", 1)[0].split(",", 1)[0]
    return "document" + (mimetypes.guess_extension(media_type) or "")


def _raw(part: RawPart) -> dict[str, object]:
    """A raw part goes back only to the protocol it came from."""
    if part.protocol != PROTOCOL:
        raise InvalidRequestError(
            f"a {part.type!r} part from the {part.protocol} protocol cannot be sent over "
            f"{PROTOCOL}: remove it from the history first"
        )
    return dict(part.data)


class _AssistantItems:
    """Builds the input items of one assistant message, in order."""

    def __init__(self) -> None:
        self.items: list[dict[str, object]] = []
        self._content: list[dict[str, object]] | None = None
        # The id the next message or function call must carry (see the module docstring).
        self._next_id: str | None = None

    def content(self, entry: dict[str, object]) -> None:
        if self._content is None:
            self._content = []
            self._add({"type": "message", "role": "assistant", "content": self._content})
        self._content.append(entry)

    def annotate(self, part: RawPart) -> None:
        annotations = get_list(_raw(part), "annotations")
        if self._content and self._content[-1].get("type") == "output_text":
            self._content[-1]["annotations"] = list(annotations)

    def item(self, item: dict[str, object]) -> None:
        self._content = None
        self._add(item)

    def reasoning(self, part: Reasoning) -> None:
        if part.id is None or part.protocol not in (None, PROTOCOL):
            return  # another provider's reasoning: the Responses API has no slot for it
        item: dict[str, object] = {"type": "reasoning", "id": part.id, "summary": []}
        if part.text:
            item["summary"] = [{"type": "summary_text", "text": part.text}]
        if part.data is not None:
            item["encrypted_content"] = part.data
        self.item(item)
        self._next_id = part.signature

    def _add(self, item: dict[str, object]) -> None:
        if self._next_id is not None and item.get("type") in ("message", "function_call"):
            item["id"] = self._next_id
        self._next_id = None
        self.items.append(item)


def _encode_assistant(message: Message) -> list[dict[str, object]]:
    out = _AssistantItems()
    for part in message.content:
        match part:
            case Text(text=text):
                out.content({"type": "output_text", "text": text})
            case Refusal(text=text):
                out.content({"type": "refusal", "refusal": text})
            case ToolCall():
                out.item(_encode_tool_call(part))
            case Reasoning():
                out.reasoning(part)
            case RawPart(type=kind) if kind == ANNOTATIONS:
                out.annotate(part)
            case RawPart(type=kind) if kind == CONTENT_PART:
                out.content(_raw(part))
            case RawPart():
                out.item(_raw(part))
            case Image() | Document() | ToolResult():
                raise InvalidRequestError(f"an assistant message cannot carry a {part.kind} part")
            case _:
                assert_never(part)
    return out.items


def _encode_tool_call(call: ToolCall) -> dict[str, object]:
    arguments = call.raw_arguments if call.invalid_arguments else _dumps(call.arguments)
    return {
        "type": "function_call",
        "call_id": call.id,
        "name": call.name,
        "arguments": arguments or "{}",
    }


def _encode_tool_results(message: Message) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for part in message.content:
        if not isinstance(part, ToolResult):
            raise InvalidRequestError(
                f"a tool message holds only tool results, not a {part.kind} part"
            )
        # The protocol has no error flag: the text of the result says what went wrong.
        out.append(
            {"type": "function_call_output", "call_id": part.tool_call_id, "output": part.content}
        )
    return out


def encode_tool(tool: Tool) -> dict[str, object]:
    """A function tool in the Responses (flat) shape."""
    entry: dict[str, object] = {
        "type": "function",
        "name": tool.name,
        "parameters": dict(tool.parameters),
    }
    if tool.description:
        entry["description"] = tool.description
    if tool.strict is not None:
        entry["strict"] = tool.strict
    return entry


def encode_tool_choice(choice: ToolChoice) -> str | dict[str, object]:
    """A mode as it is, a named tool as Responses' flat function object, a native one as given."""
    if choice.native is not None:
        return dict(choice.native)
    if choice.name is not None:
        return {"type": "function", "name": choice.name}
    return choice.mode


def encode_text_format(fmt: ResponseFormat) -> dict[str, object]:
    """The response format as ``text.format``: a JSON schema flat, named "output" unless named."""
    if fmt.native is not None:
        return dict(fmt.native)
    if fmt.type != "json_schema":
        return {"type": fmt.type}
    out: dict[str, object] = {"type": "json_schema", "name": fmt.name or "output"}
    if fmt.description is not None:
        out["description"] = fmt.description
    if fmt.schema is not None:
        out["schema"] = fmt.schema
    if fmt.strict is not None:
        out["strict"] = fmt.strict
    return out


def encode_models(endpoint: Endpoint) -> HttpRequest:
    """Build ``GET /models`` (the same endpoint as Chat Completions)."""
    return openai_chat.encode_models(endpoint)


# --- decoding ---------------------------------------------------------------------------


def decode(endpoint: Endpoint, response: HttpResponse, latency_s: float | None = None) -> Response:
    """Decode a 2xx Responses body; a ``failed`` reply raises with the partial Response."""
    data = parse_json(endpoint, response)
    if not isinstance(data, dict) or not isinstance(data.get("output"), list):
        raise _unreadable(endpoint, response, data)
    result = response_of(endpoint, data, request_id_of(response.headers), latency_s)
    if data.get("status") == "failed":
        raise failure_error(endpoint, data, result)
    return result


def _unreadable(endpoint: Endpoint, response: HttpResponse, data: object) -> APIError:
    if isinstance(data, dict) and "error" in data:
        return decode_error(endpoint, 0, response.headers, data)
    return APIResponseError(
        f"the provider answered HTTP {response.status} without a response object: "
        f"{str(data)[:200]}",
        provider=endpoint.provider,
        request_id=request_id_of(response.headers),
        body=data,
        headers=response.headers,
    )


def response_of(
    endpoint: Endpoint,
    data: Mapping[str, object],
    request_id: str | None,
    latency_s: float | None = None,
    output: Sequence[object] | None = None,
) -> Response:
    """A Response from a response object (``output`` overrides its ``output`` list)."""
    parts = output_parts(get_list(data, "output") if output is None else output)
    native = native_finish_reason(data)
    return Response(
        id=get_str(data, "id"),
        model=get_str(data, "model"),
        provider=endpoint.provider,
        content=tuple(parts),
        finish_reason=finish_reason_of(native, parts),
        usage=decode_usage(data.get("usage")),
        raw=data,
        native_finish_reason=native,
        request_id=request_id,
        latency_s=latency_s,
    )


def failure_error(
    endpoint: Endpoint, data: Mapping[str, object], partial: Response, request_id: str | None = None
) -> APIError:
    """The error of a ``failed`` response, typed by ``response.error.code``."""
    error = data.get("error")
    error = error if isinstance(error, Mapping) else {}
    message = error.get("message") or "the provider did not say why"
    headers = {"x-request-id": request_id or partial.request_id or ""}
    body = {"error": {**error, "message": f"the response failed: {message}"}}
    exc = decode_error(endpoint, twin_status(error), headers, body)
    exc.status_code = None
    exc.body = dict(data)
    exc.partial = partial
    return exc


def output_parts(output: Sequence[object]) -> list[Part]:
    """The parts of a response's ``output`` items, in order (shared by both decoders)."""
    parts: list[Part] = []
    for index, item in enumerate(output):
        if not isinstance(item, Mapping):
            continue
        kind = item.get("type")
        if kind == "message" and item.get("role", "assistant") == "assistant":
            parts.extend(_message_parts(item))
        elif kind == "function_call":
            parts.append(tool_call_of(item))
        elif kind == "reasoning":
            parts.append(_reasoning(item, output[index + 1 : index + 2]))
        else:
            parts.append(RawPart(PROTOCOL, str(kind), dict(item)))
    return parts


def _message_parts(item: Mapping[str, object]) -> list[Part]:
    parts: list[Part] = []
    for entry in get_list(item, "content"):
        if not isinstance(entry, Mapping):
            continue
        kind = entry.get("type")
        if kind == "output_text":
            parts.append(Text(get_str(entry, "text")))
            if annotations := get_list(entry, "annotations"):
                parts.append(RawPart(PROTOCOL, ANNOTATIONS, {"annotations": list(annotations)}))
        elif kind == "refusal":
            parts.append(Refusal(get_str(entry, "refusal")))
        else:
            parts.append(RawPart(PROTOCOL, CONTENT_PART, dict(entry)))
    return parts


def tool_call_of(item: Mapping[str, object]) -> ToolCall:
    """A ``function_call`` item as a ToolCall; its ``call_id`` is the id results refer to."""
    call_id = get_str(item, "call_id") or get_str(item, "id")
    return parse_tool_call(call_id, get_str(item, "name"), item.get("arguments"))


def _reasoning(item: Mapping[str, object], following: Sequence[object]) -> Reasoning:
    texts = [get_str(s, "text") for s in get_list(item, "summary") if isinstance(s, Mapping)]
    if not texts:  # raw chain of thought (open-weight models, OpenRouter) instead of a summary
        texts = [get_str(c, "text") for c in get_list(item, "content") if isinstance(c, Mapping)]
    after = following[0] if following and isinstance(following[0], Mapping) else {}
    next_id = after.get("id") if after.get("type") in ("message", "function_call") else None
    return Reasoning(
        "\n\n".join(texts),
        signature=next_id,
        id=get_str(item, "id", None),
        data=get_str(item, "encrypted_content", None),
        protocol=PROTOCOL,
    )


def native_finish_reason(data: Mapping[str, object]) -> str | None:
    """The status, or for an ``incomplete`` reply the reason it stopped."""
    status = data.get("status")
    if status == "incomplete":
        details = data.get("incomplete_details")
        reason = details.get("reason") if isinstance(details, Mapping) else None
        return str(reason) if reason else "incomplete"
    return str(status) if status else None


_FINISH: Mapping[str, FinishReason] = {
    "completed": "stop",
    "complete": "stop",  # seen in some recorded replies
    "max_output_tokens": "length",
    "incomplete": "length",
    "content_filter": "content_filter",
    "failed": "error",
    "cancelled": "error",
}


def finish_reason_of(native: str | None, parts: Sequence[Part]) -> FinishReason | None:
    """callm's finish reason: function calls make "tool_calls", a lone refusal "refusal"."""
    if native is None:
        return None
    reason = _FINISH.get(native)
    if reason == "stop":
        if any(isinstance(p, ToolCall) for p in parts):
            return "tool_calls"
        if any(isinstance(p, Refusal) for p in parts):
            return "refusal"
    return reason


def decode_usage(usage: object) -> Usage:
    """Usage of a response object (``input_tokens``, ``output_tokens`` and their details)."""
    if not isinstance(usage, Mapping):
        return UNREPORTED
    input_details = details(usage, "input_tokens_details")
    output_details = details(usage, "output_tokens_details")
    return Usage(
        input_tokens=tokens(usage, "input_tokens"),
        output_tokens=tokens(usage, "output_tokens"),
        cached_input_tokens=tokens(input_details, "cached_tokens"),
        cache_write_tokens=tokens(input_details, "cache_write_tokens"),
        reasoning_tokens=tokens(output_details, "reasoning_tokens"),
    )


def decode_failure(endpoint: Endpoint, response: HttpResponse) -> APIError:
    """The typed error of a non-2xx answer (the same error envelope as Chat Completions)."""
    return openai_chat.decode_failure(endpoint, response)


def decode_models(endpoint: Endpoint, response: HttpResponse) -> list[ModelInfo]:
    """Decode ``GET /models``."""
    return openai_chat.decode_models(endpoint, response)
