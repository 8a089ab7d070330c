"""The server side of Chat Completions: a caller's request in, replies and errors out.

Pure, like the client side: :func:`decode_request` turns a caller's JSON body into a
:class:`Request`, :func:`encode_response` and :class:`StreamEncoder` turn callm's replies
back into what the ``openai`` SDK expects, and :func:`encode_error` gives any error the
``{"error": {...}}`` shape with its status. The gateway (``callm serve``) drives these; any
model, whatever its protocol, can answer a Chat Completions caller through them.

Fields callm models go into the Request; other Chat Completions fields (``logprobs``,
``reasoning_effort``, penalties …) travel in ``extra_body``, so they reach an OpenAI-family
upstream unchanged.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping

from ..._core.errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    BudgetExceededError,
    CallmError,
    ConfigurationError,
    InvalidRequestError,
    OverloadedError,
    RateLimitError,
)
from ..._core.json import dumps
from ..._core.options import ResponseFormat, ToolChoice, response_format_of, tool_choice_of
from ..._core.types import (
    Document,
    FinishEvent,
    FinishReason,
    Image,
    Message,
    Part,
    Reasoning,
    ReasoningDelta,
    Refusal,
    RefusalDelta,
    Request,
    Response,
    Role,
    StreamEvent,
    Text,
    TextDelta,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolCallEvent,
    ToolResult,
    Usage,
)
from .._shared.ingress import code_of
from .._shared.openai import content_array_parts, parse_tool_call
from .._shared.request import (
    optional_float,
    optional_int,
    optional_str,
    require_list,
    require_mapping,
    require_str,
    stop_sequences,
)

__all__ = ["StreamEncoder", "decode_request", "encode_error", "encode_response"]

_ROLES: Mapping[str, Role] = {
    "system": "system",
    "developer": "developer",
    "user": "user",
    "assistant": "assistant",
    "tool": "tool",
}
# Body fields read into the Request (or by the gateway); any other field is passed on in
# extra_body for an OpenAI-family upstream.
_MODELLED = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "top_k",
        "stop",
        "seed",
        "n",
        "user",
        "tools",
        "tool_choice",
        "response_format",
        "stream",
        "stream_options",
        "prompt_cache_key",
    }
)
_UNSUPPORTED = {
    "functions": "the legacy 'functions' field is not supported: send 'tools' instead",
    "function_call": "the legacy 'function_call' field is not supported: send 'tool_choice'",
    "audio": "audio output is not supported by this server",
}

# --- decoding a caller's request ---------------------------------------------------------


def decode_request(body: Mapping[str, object], *, model: str | None = None) -> Request:
    """A Chat Completions request body as a callm Request (bad input: InvalidRequestError)."""
    body = require_mapping(body, "the request body")
    for field, message in _UNSUPPORTED.items():
        if body.get(field) is not None:
            raise InvalidRequestError(message)
    name = model if model is not None else require_str(body.get("model"), "model")
    messages = require_list(body.get("messages"), "messages")
    if not messages:
        raise InvalidRequestError("'messages' is empty: send at least one message")
    max_tokens = optional_int(body.get("max_completion_tokens"), "max_completion_tokens")
    if max_tokens is None:
        max_tokens = optional_int(body.get("max_tokens"), "max_tokens")
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise InvalidRequestError("'stream' must be true or false")
    cache_key = optional_str(body.get("prompt_cache_key"), "prompt_cache_key")
    return Request(
        model=name,
        messages=tuple(_message(m, f"messages[{i}]") for i, m in enumerate(messages)),
        max_tokens=max_tokens,
        temperature=optional_float(body.get("temperature"), "temperature"),
        top_p=optional_float(body.get("top_p"), "top_p"),
        top_k=optional_int(body.get("top_k"), "top_k"),
        stop=stop_sequences(body.get("stop"), "stop"),
        seed=optional_int(body.get("seed"), "seed"),
        n=optional_int(body.get("n"), "n"),
        user=optional_str(body.get("user"), "user"),
        tools=_tools(body.get("tools")),
        tool_choice=_tool_choice(body.get("tool_choice")),
        response_format=_response_format(body.get("response_format")),
        stream=bool(stream),
        cache=cache_key,
        extra_body={k: v for k, v in body.items() if k not in _MODELLED and v is not None},
    )


def _message(entry: object, where: str) -> Message:
    entry = require_mapping(entry, where)
    given = entry.get("role")
    role = _ROLES.get(given) if isinstance(given, str) else None
    if role is None:
        raise InvalidRequestError(f"{where}.role must be one of {', '.join(_ROLES)}, not {given!r}")
    name = optional_str(entry.get("name"), f"{where}.name")
    if role == "tool":
        call_id = require_str(entry.get("tool_call_id"), f"{where}.tool_call_id")
        result = ToolResult(call_id, _tool_result_text(entry.get("content"), where))
        return Message("tool", (result,))
    if role == "assistant":
        return Message("assistant", _assistant_parts(entry, where), name)
    return Message(role, _content_parts(entry.get("content"), where), name)


def _content_parts(content: object, where: str) -> tuple[Part, ...]:
    if isinstance(content, str):
        return (Text(content),)
    items = require_list(content, f"{where}.content", "a string or an array of content parts")
    return tuple(_input_part(item, f"{where}.content[{i}]") for i, item in enumerate(items))


def _input_part(item: object, where: str) -> Part:
    item = require_mapping(item, where)
    kind = item.get("type")
    if kind == "text":
        return Text(require_str(item.get("text"), f"{where}.text", allow_empty=True))
    if kind == "image_url":
        image = item.get("image_url")
        if isinstance(image, str):
            return Image(image)
        image = require_mapping(image, f"{where}.image_url")
        detail = image.get("detail")
        if detail not in (None, "auto", "low", "high"):
            raise InvalidRequestError(f"{where}.image_url.detail must be auto, low or high")
        return Image(require_str(image.get("url"), f"{where}.image_url.url"), detail)
    if kind == "file":
        return _file_part(require_mapping(item.get("file"), f"{where}.file"), where)
    if kind == "refusal":
        return Refusal(require_str(item.get("refusal"), f"{where}.refusal", allow_empty=True))
    if kind == "thinking":  # Mistral's reasoning blocks, sent back in assistant turns
        return content_array_parts([item])[0]
    raise InvalidRequestError(
        f"{where}.type {kind!r} is not supported: use text, image_url or file parts"
    )


def _file_part(file: Mapping[str, object], where: str) -> Document:
    data = file.get("file_data")
    if not isinstance(data, str) or not data.startswith("data:"):
        raise InvalidRequestError(
            f"{where}.file.file_data must be a base64 data: URL (uploaded file ids are not "
            "supported by this server)"
        )
    media_type = data[5:].split(";", 1)[0].split(",", 1)[0] or None
    title = optional_str(file.get("filename"), f"{where}.file.filename")
    return Document(data, media_type, title)


def _assistant_parts(entry: Mapping[str, object], where: str) -> tuple[Part, ...]:
    parts: list[Part] = []
    reasoning = entry.get("reasoning_content")
    if isinstance(reasoning, str) and reasoning:
        parts.append(Reasoning(reasoning, protocol="openai_chat"))
    content = entry.get("content")
    if content is not None:
        parts.extend(p for p in _content_parts(content, where) if not _empty_text(p))
    refusal = entry.get("refusal")
    if isinstance(refusal, str) and refusal:
        parts.append(Refusal(refusal))
    calls = entry.get("tool_calls")
    if calls is not None:
        items = require_list(calls, f"{where}.tool_calls")
        parts.extend(_tool_call(c, f"{where}.tool_calls[{i}]") for i, c in enumerate(items))
    return tuple(parts)


def _empty_text(part: Part) -> bool:
    return isinstance(part, Text) and not part.text


def _tool_call(call: object, where: str) -> ToolCall:
    call = require_mapping(call, where)
    function = require_mapping(call.get("function"), f"{where}.function")
    name = require_str(function.get("name"), f"{where}.function.name")
    arguments = function.get("arguments")
    if arguments is not None and not isinstance(arguments, str | dict):
        raise InvalidRequestError(f"{where}.function.arguments must be a JSON string")
    return parse_tool_call(require_str(call.get("id"), f"{where}.id"), name, arguments)


def _tool_result_text(content: object, where: str) -> str:
    if isinstance(content, str):
        return content
    items = require_list(content, f"{where}.content", "a string or an array of text parts")
    texts = []
    for i, entry in enumerate(items):
        item = require_mapping(entry, f"{where}.content[{i}]")
        if item.get("type") != "text":
            raise InvalidRequestError(f"{where}.content[{i}] must be a text part")
        texts.append(require_str(item.get("text"), f"{where}.content[{i}].text", allow_empty=True))
    return "".join(texts)


def _tools(tools: object) -> tuple[Tool, ...]:
    if tools is None:
        return ()
    out = []
    for i, entry in enumerate(require_list(tools, "tools")):
        where = f"tools[{i}]"
        tool = require_mapping(entry, where)
        if tool.get("type", "function") != "function":
            raise InvalidRequestError(f"{where}.type must be 'function'")
        function = require_mapping(tool.get("function"), f"{where}.function")
        parameters = function.get("parameters")
        if parameters is None:
            parameters = {"type": "object", "properties": {}}
        strict = function.get("strict")
        out.append(
            Tool(
                require_str(function.get("name"), f"{where}.function.name"),
                optional_str(function.get("description"), f"{where}.function.description") or "",
                require_mapping(parameters, f"{where}.function.parameters"),
                strict if isinstance(strict, bool) else None,
            )
        )
    return tuple(out)


def _tool_choice(choice: object) -> ToolChoice | None:
    """callm's tool choice: auto | none | required, or the name of the one tool to call."""
    if choice is None:
        return None
    if choice in ("auto", "none", "required"):
        return tool_choice_of(str(choice))
    if isinstance(choice, Mapping) and choice.get("type") == "function":
        function = require_mapping(choice.get("function"), "tool_choice.function")
        return ToolChoice(
            "required", require_str(function.get("name"), "tool_choice.function.name")
        )
    raise InvalidRequestError(
        "tool_choice must be auto, none, required or {'type': 'function', 'function': {'name': …}}"
    )


def _response_format(fmt: object) -> ResponseFormat | None:
    """callm's response format (a JSON schema with its name, strictness, description)."""
    if fmt is None:
        return None
    fmt = require_mapping(fmt, "response_format")
    kind = fmt.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return ResponseFormat("json_object")
    if kind == "json_schema":
        inner = require_mapping(fmt.get("json_schema"), "response_format.json_schema")
        require_mapping(inner.get("schema"), "response_format.json_schema.schema")
        return response_format_of({"type": "json_schema", **inner})
    raise InvalidRequestError("response_format.type must be text, json_object or json_schema")


# --- encoding replies ---------------------------------------------------------------------

_FINISH: Mapping[FinishReason, str] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "content_filter": "content_filter",
    "refusal": "stop",  # the refusal text itself travels in "refusal"
    "error": "stop",
}


def finish_reason(reason: FinishReason | None) -> str:
    """callm's finish reason as Chat Completions names it."""
    return _FINISH.get(reason, "stop") if reason is not None else "stop"


def encode_usage(usage: Usage) -> dict[str, object]:
    """Usage in the Chat Completions shape, cache and reasoning details included."""
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_input_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


def encode_response(response: Response, *, model: str) -> dict[str, object]:
    """The ``chat.completion`` body of a reply (every choice when n > 1)."""
    choices = [_choice(response, 0)]
    choices += [_choice(extra, i) for i, extra in enumerate(response.choices, 1)]
    return {
        "id": _completion_id(response.id),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        "usage": encode_usage(response.usage),
        "system_fingerprint": None,
    }


def _completion_id(upstream: str) -> str:
    return upstream if upstream.startswith("chatcmpl") else "chatcmpl-" + os.urandom(12).hex()


def _choice(response: Response, index: int) -> dict[str, object]:
    message: dict[str, object] = {"role": "assistant", "content": None, "refusal": response.refusal}
    texts = [p.text for p in response.content if isinstance(p, Text)]
    if texts or not response.tool_calls:
        message["content"] = "".join(texts)
    if response.tool_calls:
        message["tool_calls"] = [_encode_tool_call(call) for call in response.tool_calls]
    if response.reasoning is not None:
        message["reasoning_content"] = response.reasoning
    return {
        "index": index,
        "message": message,
        "finish_reason": finish_reason(response.finish_reason),
        "logprobs": None,
    }


def _encode_tool_call(call: ToolCall) -> dict[str, object]:
    return {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": _arguments(call)},
    }


def _arguments(call: ToolCall) -> str:
    if call.raw_arguments is not None and (call.invalid_arguments or call.raw_arguments):
        return call.raw_arguments
    return dumps(dict(call.arguments))


class StreamEncoder:
    """One streamed reply as ``chat.completion.chunk`` SSE frames, ending with ``[DONE]``.

    Tool calls go out as fragments keyed by a 0-based index in order of appearance (what
    the SDKs join by), whatever index the upstream protocol used; a call that arrived whole
    goes out as one fragment.
    """

    def __init__(self, *, model: str, include_usage: bool = True) -> None:
        self.model = model
        self.include_usage = include_usage
        self._head = (
            '{"id":'
            + dumps("chatcmpl-" + os.urandom(12).hex())
            + ',"object":"chat.completion.chunk","created":'
            + str(int(time.time()))
            + ',"model":'
            + dumps(model)
            + ',"system_fingerprint":null,"choices":'
        )
        self._indexes: dict[int, int] = {}  # upstream tool index -> our index
        self._streamed_calls = 0  # complete tool calls whose fragments already went out
        self._finished = False

    def _frame(self, choices: str, tail: str = "") -> bytes:
        return f"data: {self._head}{choices}{tail}}}\n\n".encode()

    def _delta(self, delta: Mapping[str, object]) -> bytes:
        return self._frame(
            '[{"index":0,"delta":' + dumps(delta) + ',"logprobs":null,"finish_reason":null}]'
        )

    def start(self) -> bytes:
        """The first chunk: the assistant role, as OpenAI sends it."""
        return self._delta({"role": "assistant", "content": "", "refusal": None})

    def encode(self, event: StreamEvent) -> bytes:
        """The frames of one callm stream event (b"" for events with no wire form)."""
        match event:
            case TextDelta(text=text):
                return self._delta({"content": text})
            case ReasoningDelta(text=text):
                return self._delta({"reasoning_content": text})
            case RefusalDelta(text=text):
                return self._delta({"refusal": text})
            case ToolCallDelta():
                return self._tool_fragment(event)
            case ToolCallEvent(tool_call=call):
                return self._whole_tool_call(call)
            case FinishEvent(finish_reason=reason):
                return self._finish(reason)
        return b""  # usage goes out at the end; run and output events are not streamed here

    def _tool_fragment(self, event: ToolCallDelta) -> bytes:
        index = self._indexes.get(event.index)
        fragment: dict[str, object] = {"index": 0}
        if index is None:
            index = self._indexes[event.index] = len(self._indexes)
            # The first fragment names the call; an id is required by the SDKs.
            fragment["id"] = event.id or "call_" + os.urandom(12).hex()
            fragment["type"] = "function"
            fragment["function"] = {"name": event.name or "", "arguments": event.arguments}
        else:
            fragment["function"] = {"arguments": event.arguments}
        fragment["index"] = index
        return self._delta({"tool_calls": [fragment]})

    def _whole_tool_call(self, call: ToolCall) -> bytes:
        if self._streamed_calls < len(self._indexes):
            self._streamed_calls += 1  # its fragments already went out
            return b""
        index = len(self._indexes)
        self._indexes[-1 - index] = index  # a slot no upstream index can take
        self._streamed_calls += 1
        fragment = {"index": index, **_encode_tool_call(call)}
        return self._delta({"tool_calls": [fragment]})

    def _finish(self, reason: FinishReason | None) -> bytes:
        if self._finished:
            return b""
        self._finished = True
        return self._frame(
            '[{"index":0,"delta":{},"logprobs":null,"finish_reason":'
            + dumps(finish_reason(reason))
            + "}]"
        )

    def finish(self, response: Response) -> bytes:
        """The closing frames: the finish chunk if not sent yet, usage if asked, [DONE]."""
        out = self._finish(response.finish_reason)
        if self.include_usage:
            out += self._frame("[]", ',"usage":' + dumps(encode_usage(response.usage)))
        return out + b"data: [DONE]\n\n"

    def error(self, error: CallmError) -> bytes:
        """An error after the stream began: an ``error`` chunk (the SDKs raise on it)."""
        _, body = encode_error(error)
        return f"data: {dumps(body)}\n\n".encode()


# --- errors -------------------------------------------------------------------------------

_TYPES: Mapping[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}


def error_status(error: CallmError) -> int:
    """The HTTP status a caller should see for ``error`` when the gateway names none."""
    if isinstance(error, InvalidRequestError):
        return 400
    if isinstance(error, BudgetExceededError | RateLimitError):
        return 429
    if isinstance(error, APITimeoutError):
        return 504
    if isinstance(error, OverloadedError):
        return 503
    if isinstance(error, APIConnectionError):
        return 502
    if isinstance(error, APIStatusError) and error.status_code is not None:
        return error.status_code if error.status_code < 500 else 502
    if isinstance(error, ConfigurationError):
        return 500
    return 502 if isinstance(error, APIError) else 500


def encode_error(error: CallmError, *, status: int | None = None) -> tuple[int, dict[str, object]]:
    """The status and ``{"error": {"message", "type", "param", "code"}}`` body of an error."""
    status = status if status is not None else error_status(error)
    message = error.message if isinstance(error, APIError) else str(error)
    code = code_of(error)
    kind = _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return status, {
        "error": {
            "message": message,
            "type": kind,
            "param": None,
            "code": code,
        }
    }
