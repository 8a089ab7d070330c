"""The OpenAI Responses protocol, server side: what a gateway needs to speak it to callers.

Pure translation, no I/O, the reverse of the client codec: :func:`decode_request` reads a
caller's ``POST /v1/responses`` body into a callm :class:`Request`; :func:`encode_response`,
:class:`StreamEncoder` and :func:`encode_error` write a reply, its typed event stream and
errors as the ``openai`` SDK reads them (``client.responses.create``, ``.stream``).

How the wire maps onto callm's types, where a choice had to be made:

- ``instructions`` becomes a leading system message; ``input`` a string (one user message)
  or items. Input messages keep their role; assistant output — ``message`` items,
  ``function_call`` items, ``reasoning`` items and other output items (server tool calls,
  kept as ``RawPart``) — that follow one another make one assistant message, as the client
  codec splits one into items. Each ``function_call_output`` is a tool message.
- A ``reasoning`` item keeps its id and ``encrypted_content``, and the id of the item that
  follows it in its ``signature``, as the client codec reads replies, so it goes back to a
  Responses upstream as it came. ``encrypted_content`` holding a sealed token is another
  protocol's reasoning restored (see :mod:`callm.protocols._shared.reasoning`).
- Function tools become Tools, ``text.format`` the response format, ``max_output_tokens``
  the token cap, ``prompt_cache_key`` the cache key. Fields callm's Request has no slot for
  (``reasoning``, ``include``, ``store``, ``previous_response_id``, ``metadata`` …) go to
  ``extra_body`` as given; built-in tools (``web_search`` …) and ``text`` settings beyond
  the format are decoded where callm can and kept whole there too, so a Responses upstream
  receives what the caller sent (a gateway drops ``extra_body`` when the protocols differ).
  ``stream_options`` concern this hop only and are not passed on.
- Files by id (``file_id``) are refused: the gateway holds no caller's uploads.
- Replies: ``status`` is ``incomplete`` with its reason when the reply stopped at the token
  cap or a content filter, else ``completed``; reasoning from another protocol goes out as
  a reasoning item whose ``encrypted_content`` seals its companions; parts of another
  protocol with no item here (an Anthropic server tool block) are left out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..._core.errors import InvalidRequestError
from ..._core.options import ResponseFormat, ToolChoice, response_format_of, tool_choice_of
from ..._core.types import (
    Document,
    Image,
    Message,
    Part,
    RawPart,
    Reasoning,
    Refusal,
    Request,
    Role,
    Text,
    Tool,
    ToolCall,
    ToolResult,
)
from .._shared.openai import parse_tool_call
from .._shared.reasoning import unseal
from .._shared.request import (
    optional_float,
    optional_int,
    optional_str,
    require_list,
    require_mapping,
    require_str,
)
from ._server_reply import encode_error, encode_response, encode_usage
from ._server_stream import StreamEncoder
from .client import ANNOTATIONS, CONTENT_PART, PROTOCOL

__all__ = [
    "PROTOCOL",
    "StreamEncoder",
    "decode_request",
    "encode_error",
    "encode_response",
    "encode_usage",
]

# Body fields read into the Request (or about this hop only); any other field goes to
# extra_body as given.
_MODELLED = frozenset(
    {
        "model",
        "input",
        "instructions",
        "max_output_tokens",
        "temperature",
        "top_p",
        "user",
        "tools",
        "tool_choice",
        "text",
        "stream",
        "stream_options",
        "prompt_cache_key",
    }
)
_ROLES: Mapping[str, Role] = {
    "user": "user",
    "system": "system",
    "developer": "developer",
    "assistant": "assistant",
}
# Output items that belong to the assistant's turn.
_ASSISTANT_ITEMS = frozenset({"function_call", "reasoning"})

# --- the request --------------------------------------------------------------------------


def decode_request(body: Mapping[str, object], *, model: str | None = None) -> Request:
    """A Responses request body as a callm Request (bad input: InvalidRequestError)."""
    body = require_mapping(body, "the request body")
    name = model if model is not None else require_str(body.get("model"), "model")
    messages = _instructions(body.get("instructions")) + _input(body.get("input"))
    if not messages:
        raise InvalidRequestError("input is required: a string or an array of input items")
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise InvalidRequestError("stream must be true or false")
    extra = {k: v for k, v in body.items() if k not in _MODELLED and v is not None}
    tools = _tools(body.get("tools"), extra)
    return Request(
        model=name,
        messages=messages,
        max_tokens=optional_int(body.get("max_output_tokens"), "max_output_tokens", minimum=1),
        temperature=optional_float(body.get("temperature"), "temperature"),
        top_p=optional_float(body.get("top_p"), "top_p"),
        user=optional_str(body.get("user"), "user"),
        tools=tools,
        tool_choice=_tool_choice(body.get("tool_choice")),
        response_format=_text_format(body.get("text"), extra),
        stream=bool(stream),
        cache=optional_str(body.get("prompt_cache_key"), "prompt_cache_key"),
        extra_body=extra,
    )


def _instructions(value: Any) -> tuple[Message, ...]:
    text = optional_str(value, "instructions")
    return (Message.system(text),) if text else ()


def _input(value: Any) -> tuple[Message, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (Message.user(value),)
    items = require_list(value, "input", "a string or an array of input items")
    reader = _InputReader()
    for index, item in enumerate(items):
        following = items[index + 1] if index + 1 < len(items) else None
        reader.read(require_mapping(item, f"input[{index}]"), f"input[{index}]", following)
    return reader.done()


class _InputReader:
    """Input items into messages: neighbouring assistant items share one message."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self._assistant: list[Part] = []

    def read(self, item: Mapping[str, object], where: str, following: Any) -> None:
        kind = item.get("type", "message")
        if kind == "message":
            self._message(item, where)
        elif kind == "function_call":
            self._assistant.append(_function_call(item, where))
        elif kind == "function_call_output":
            self._flush()
            self.messages.append(Message("tool", (_function_output(item, where),)))
        elif kind == "reasoning":
            self._assistant.append(_reasoning(item, where, following))
        elif kind == "item_reference" or not isinstance(kind, str):
            raise InvalidRequestError(
                f"{where}.type {kind!r} is not supported: this gateway stores no responses, "
                "so send the items themselves"
            )
        else:  # server tool calls and other output items: kept for a Responses upstream
            self._assistant.append(RawPart(PROTOCOL, kind, dict(item)))

    def _message(self, item: Mapping[str, object], where: str) -> None:
        given = item.get("role")
        role = _ROLES.get(given) if isinstance(given, str) else None
        if role is None:
            raise InvalidRequestError(
                f"{where}.role must be user, system, developer or assistant, "
                f"not {item.get('role')!r}"
            )
        if role == "assistant":
            self._assistant.extend(_assistant_content(item.get("content"), where))
            return
        self._flush()
        self.messages.append(Message(role, _input_content(item.get("content"), where)))

    def _flush(self) -> None:
        if self._assistant:
            self.messages.append(Message("assistant", tuple(self._assistant)))
            self._assistant = []

    def done(self) -> tuple[Message, ...]:
        self._flush()
        return tuple(self.messages)


def _input_content(content: Any, where: str) -> tuple[Part, ...]:
    if isinstance(content, str):
        return (Text(content),)
    items = require_list(content, f"{where}.content", "a string or an array of content parts")
    return tuple(_input_part(p, f"{where}.content[{i}]") for i, p in enumerate(items))


def _input_part(value: Any, where: str) -> Part:
    part = require_mapping(value, where)
    kind = part.get("type")
    if kind in ("input_text", "output_text", "text"):
        return Text(require_str(part.get("text"), f"{where}.text", allow_empty=True))
    if kind == "input_image":
        _no_file_id(part, where)
        detail = part.get("detail")
        if detail not in (None, "auto", "low", "high"):
            raise InvalidRequestError(f"{where}.detail must be auto, low or high")
        url = require_str(part.get("image_url"), f"{where}.image_url")
        return Image(url, None if detail == "auto" else detail)
    if kind == "input_file":
        _no_file_id(part, where)
        title = optional_str(part.get("filename"), f"{where}.filename")
        data = part.get("file_data")
        if data is not None:
            url = require_str(data, f"{where}.file_data")
            if not url.startswith("data:"):
                raise InvalidRequestError(f"{where}.file_data must be a base64 data: URL")
            media_type = url[5:].split(";", 1)[0].split(",", 1)[0] or None
            return Document(url, media_type, title)
        return Document(require_str(part.get("file_url"), f"{where}.file_url"), None, title)
    raise InvalidRequestError(
        f"{where}.type {kind!r} is not supported: use input_text, input_image or input_file"
    )


def _no_file_id(part: Mapping[str, object], where: str) -> None:
    if part.get("file_id") is not None:
        raise InvalidRequestError(
            f"{where}.file_id is not supported by this gateway (it holds no uploaded files): "
            "send the file's data or URL"
        )


def _assistant_content(content: Any, where: str) -> list[Part]:
    if isinstance(content, str):
        return [Text(content)] if content else []
    parts: list[Part] = []
    items = require_list(content, f"{where}.content", "a string or an array of content parts")
    for i, value in enumerate(items):
        at = f"{where}.content[{i}]"
        part = require_mapping(value, at)
        kind = part.get("type")
        if kind in ("output_text", "input_text", "text"):
            parts.append(Text(require_str(part.get("text"), f"{at}.text", allow_empty=True)))
            annotations = part.get("annotations")
            if annotations:
                parts.append(RawPart(PROTOCOL, ANNOTATIONS, {"annotations": annotations}))
        elif kind == "refusal":
            parts.append(
                Refusal(require_str(part.get("refusal"), f"{at}.refusal", allow_empty=True))
            )
        else:
            parts.append(RawPart(PROTOCOL, CONTENT_PART, dict(part)))
    return parts


def _function_call(item: Mapping[str, object], where: str) -> ToolCall:
    call_id = require_str(item.get("call_id"), f"{where}.call_id")
    name = require_str(item.get("name"), f"{where}.name")
    arguments = item.get("arguments")
    if arguments is not None and not isinstance(arguments, str):
        raise InvalidRequestError(f"{where}.arguments must be a JSON string")
    return parse_tool_call(call_id, name, arguments)


def _function_output(item: Mapping[str, object], where: str) -> ToolResult:
    call_id = require_str(item.get("call_id"), f"{where}.call_id")
    output = item.get("output")
    if isinstance(output, str):
        return ToolResult(call_id, output)
    texts = []
    for i, value in enumerate(require_list(output, f"{where}.output", "a string or an array")):
        part = require_mapping(value, f"{where}.output[{i}]")
        if part.get("type") not in ("input_text", "output_text", "text"):
            raise InvalidRequestError(
                f"{where}.output[{i}] must be a text part (callm's tool results are text)"
            )
        texts.append(require_str(part.get("text"), f"{where}.output[{i}].text", allow_empty=True))
    return ToolResult(call_id, "".join(texts))


def _reasoning(item: Mapping[str, object], where: str, following: Any) -> Reasoning:
    texts = []
    for key in ("summary", "content"):
        entries = item.get(key)
        if entries is None:
            continue
        for i, value in enumerate(require_list(entries, f"{where}.{key}")):
            entry = require_mapping(value, f"{where}.{key}[{i}]")
            texts.append(
                require_str(entry.get("text"), f"{where}.{key}[{i}].text", allow_empty=True)
            )
        if texts:
            break  # a summary, else the raw reasoning text (as the client codec reads them)
    text = "\n\n".join(texts)
    data = optional_str(item.get("encrypted_content"), f"{where}.encrypted_content")
    sealed = unseal(data, text)
    if sealed is not None:
        return sealed
    after = following if isinstance(following, Mapping) else {}
    next_id = (
        after.get("id") if after.get("type", "message") in ("message", "function_call") else None
    )
    return Reasoning(
        text,
        signature=next_id if isinstance(next_id, str) else None,
        id=optional_str(item.get("id"), f"{where}.id"),
        data=data,
        protocol=PROTOCOL,
    )


def _tools(value: Any, extra: dict[str, object]) -> tuple[Tool, ...]:
    if value is None:
        return ()
    out = []
    for i, entry in enumerate(require_list(value, "tools")):
        where = f"tools[{i}]"
        tool = require_mapping(entry, where)
        if tool.get("type") != "function":
            extra["tools"] = value  # a built-in tool: the whole list for a Responses upstream
            continue
        parameters = tool.get("parameters")
        if parameters is None:
            parameters = {"type": "object", "properties": {}}
        strict = tool.get("strict")
        out.append(
            Tool(
                require_str(tool.get("name"), f"{where}.name"),
                optional_str(tool.get("description"), f"{where}.description") or "",
                require_mapping(parameters, f"{where}.parameters"),
                strict if isinstance(strict, bool) else None,
            )
        )
    return tuple(out)


def _tool_choice(value: Any) -> ToolChoice | None:
    if value is None:
        return None
    if isinstance(value, str):
        if value not in ("auto", "none", "required"):
            raise InvalidRequestError("tool_choice must be auto, none, required or an object")
        return tool_choice_of(value)
    return tool_choice_of(require_mapping(value, "tool_choice"))


def _text_format(value: Any, extra: dict[str, object]) -> ResponseFormat | None:
    if value is None:
        return None
    text = require_mapping(value, "text")
    if set(text) - {"format"}:
        extra["text"] = value  # verbosity and such: the whole object for a Responses upstream
    fmt = text.get("format")
    if fmt is None:
        return None
    fmt = require_mapping(fmt, "text.format")
    kind = fmt.get("type")
    if kind == "text":
        return None
    if kind == "json_schema":
        require_mapping(fmt.get("schema"), "text.format.schema")
    elif kind != "json_object":
        raise InvalidRequestError("text.format.type must be text, json_object or json_schema")
    return response_format_of(fmt)
