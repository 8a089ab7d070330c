"""Turning what users pass (a string, OpenAI-style dicts, callm types) into callm types."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import replace

from .._core.errors import InvalidRequestError
from .._core.params import MessagesInput, ToolInput
from .._core.types import (
    Document,
    Image,
    ImageDetail,
    Message,
    Part,
    RawPart,
    Reasoning,
    Refusal,
    Role,
    Text,
    Tool,
    ToolCall,
    ToolResult,
    attachment,
)

_PART_TYPES = (Text, Image, Document, ToolCall, ToolResult, Reasoning, Refusal, RawPart)
_ROLES: Mapping[str, Role] = {
    "system": "system",
    "developer": "developer",
    "user": "user",
    "assistant": "assistant",
    "tool": "tool",
}
_DETAILS: tuple[ImageDetail, ...] = ("auto", "low", "high")


def to_messages(messages: MessagesInput, system: str | None = None) -> tuple[Message, ...]:
    """Normalise a prompt string, one message or a list of messages (dicts or Message)."""
    if isinstance(messages, str):
        items: list[Message] = [Message("user", (Text(messages),))]
    elif isinstance(messages, Message | Mapping):
        items = [to_message(messages)]
    elif isinstance(messages, list | tuple):
        items = [to_message(m) for m in messages]
    else:
        raise InvalidRequestError(
            "messages must be a prompt string, a message (dict or callm.Message) or a list "
            f"of them, not {type(messages).__name__}"
        )
    if system is not None:
        items.insert(0, Message("system", (Text(system),)))
    if not items:
        raise InvalidRequestError("messages is empty: give at least one message or a prompt")
    return tuple(items)


def to_message(message: Message | Mapping[str, object]) -> Message:
    """One message from a callm Message or an OpenAI-style dict."""
    if isinstance(message, Message):
        return message
    if not isinstance(message, Mapping):
        raise InvalidRequestError(
            f"a message must be a dict or callm.Message, not {type(message).__name__}"
        )
    given = message.get("role")
    role = _ROLES.get(given) if isinstance(given, str) else None
    if role is None:
        raise InvalidRequestError(
            f"message role {given!r} is not one of {', '.join(sorted(_ROLES))}"
        )
    if role == "tool":
        return _tool_message(message)
    parts = list(_content_parts(message.get("content")))
    if role == "assistant":
        parts.extend(_tool_calls(message.get("tool_calls") or ()))
    return Message(role, tuple(parts), _optional_str(message, "name"))


def _tool_message(message: Mapping[str, object]) -> Message:
    call_id = message.get("tool_call_id")
    if not call_id:
        raise InvalidRequestError("a tool message needs the tool_call_id it answers")
    content = message.get("content")
    text = (
        content
        if isinstance(content, str)
        else "".join(p.text for p in _content_parts(content) if isinstance(p, Text))
    )
    name = _optional_str(message, "name")
    return Message("tool", (ToolResult(str(call_id), text, name),))


def _content_parts(content: object) -> list[Part]:
    if content is None:
        return []
    if isinstance(content, str):
        return [Text(content)]
    if isinstance(content, Text | Image | Document):
        return [content]
    if isinstance(content, os.PathLike):
        return [attachment(content)]
    if not isinstance(content, Sequence):
        raise InvalidRequestError(f"message content must be text or a list of parts: {content!r}")
    return [_part(p) for p in content]


def _part(part: object) -> Part:
    if isinstance(part, _PART_TYPES):
        return part
    if isinstance(part, str):
        return Text(part)
    if isinstance(part, os.PathLike):  # a Path: an Image or a Document by its media type
        return attachment(part)
    kind = part.get("type") if isinstance(part, Mapping) else None
    if isinstance(part, Mapping):
        if kind in ("text", "input_text"):
            return Text(_required_str(part, "text", "a text part"))
        if kind in ("image_url", "input_image", "image"):
            return _image_part(part)
        if kind in ("file", "input_file", "document"):
            return _file_part(part)
    raise InvalidRequestError(
        f"unsupported content part {kind!r}: use text, image or file parts, a pathlib.Path, "
        "or callm types"
    )


def _image_part(part: Mapping[str, object]) -> Image:
    """OpenAI's ``image_url`` / ``input_image`` parts, or callm's ``{"type": "image", …}``
    with one of ``path``, ``url`` or ``data`` (bytes)."""
    given = part.get("image_url")
    image, detail = given, part.get("detail")
    if isinstance(given, Mapping):
        image, detail = given.get("url"), given.get("detail", detail)
    if isinstance(image, str):
        return Image(image, _detail(detail))
    path, url, data = part.get("path"), part.get("url"), part.get("data")
    if isinstance(path, str | os.PathLike):
        return Image.from_path(path, _detail(detail))
    if isinstance(url, str):
        return Image.from_url(url, _detail(detail))
    if isinstance(data, bytes):
        return Image.from_bytes(data, _optional_str(part, "media_type"), detail=_detail(detail))
    raise InvalidRequestError(f"an image part needs a path, url or data: {_shown(part)}")


def _file_part(part: Mapping[str, object]) -> Image | Document:
    """OpenAI's ``file`` / ``input_file`` parts (inline ``file_data`` or ``file_url``), or
    callm's ``{"type": "file", …}`` with one of ``path``, ``url`` or ``data`` (bytes)."""
    inner = part.get("file")
    spec = inner if isinstance(inner, Mapping) else part
    title = _optional_str(spec, "filename") or _optional_str(part, "title")
    file_data, file_url = spec.get("file_data"), spec.get("file_url")
    if isinstance(file_data, str):
        return Document(file_data, _data_url_type(file_data), title)
    if isinstance(file_url, str):
        return Document.from_url(file_url, title=title)
    path, url, data = part.get("path"), part.get("url"), part.get("data")
    media_type = _optional_str(part, "media_type")
    if isinstance(path, str | os.PathLike):
        found = attachment(path)
        return found if title is None or isinstance(found, Image) else replace(found, title=title)
    if isinstance(url, str):
        return Document.from_url(url, media_type, title)
    if isinstance(data, bytes):
        return Document.from_bytes(data, media_type, title=title)
    raise InvalidRequestError(
        f"a file part needs a path, url, data or file_data (uploaded file ids are not "
        f"supported): {_shown(part)}"
    )


def _data_url_type(url: str) -> str | None:
    if not url.startswith("data:"):
        return None
    return url[5:].split(",", 1)[0].split(";", 1)[0] or None


def _optional_str(data: Mapping[str, object], key: str) -> str | None:
    value = data.get(key)
    if value is None or isinstance(value, str):
        return value
    raise InvalidRequestError(f"{key} must be a string, not {type(value).__name__}")


def _required_str(data: Mapping[str, object], key: str, what: str) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise InvalidRequestError(f"{what} needs a {key!r} string: {_shown(data)}")
    return value


def _detail(value: object) -> ImageDetail | None:
    if value is None:
        return None
    for detail in _DETAILS:
        if value == detail:
            return detail
    raise InvalidRequestError(f"an image's detail must be auto, low or high, not {value!r}")


def _shown(part: Mapping[str, object]) -> str:
    # Never echo a base64 payload into an error message.
    return repr({k: (v if len(repr(v)) < 80 else "…") for k, v in part.items()})


def _tool_calls(calls: object) -> list[Part]:
    from ..protocols.openai_chat.client import parse_tool_call

    if not isinstance(calls, Sequence) or isinstance(calls, str):
        raise InvalidRequestError(f"tool_calls must be a list, not {type(calls).__name__}")
    parts: list[Part] = []
    for call in calls:
        if isinstance(call, ToolCall):
            parts.append(call)
            continue
        if not isinstance(call, Mapping):
            raise InvalidRequestError(f"a tool call must be a dict or callm.ToolCall: {call!r}")
        function = call.get("function") or {}
        if not isinstance(function, Mapping):
            raise InvalidRequestError(f"a tool call's function must be a dict: {call!r}")
        parts.append(
            parse_tool_call(
                str(call.get("id") or ""),
                str(function.get("name") or ""),
                function.get("arguments"),
            )
        )
    return parts


def to_tools(tools: Sequence[ToolInput] | None) -> tuple[Tool, ...]:
    """Tools from callm Tools, OpenAI-style ``{"type": "function", …}``, flat dicts or functions.

    A plain function becomes a tool through :func:`callm.tool` (schema from its signature).
    """
    if not tools:
        return ()
    return tuple(_tool(t) for t in tools)


def _tool(tool: ToolInput) -> Tool:
    if isinstance(tool, Tool):
        return tool
    if not isinstance(tool, Mapping):
        if not callable(tool):
            raise InvalidRequestError(
                f"a tool must be a callm.Tool, a dict or a function, not {type(tool).__name__}"
            )
        from .functions import tool as tool_from_function

        return tool_from_function(tool)
    function = tool.get("function")
    spec = function if tool.get("type") == "function" and isinstance(function, Mapping) else tool
    name = spec.get("name")
    if not name or not isinstance(name, str):
        raise InvalidRequestError(f"a tool needs a name: {tool!r}")
    parameters = spec.get("parameters") or {"type": "object", "properties": {}}
    if not isinstance(parameters, Mapping):
        raise InvalidRequestError(f"the tool {name!r}'s parameters must be a JSON schema object")
    strict = spec.get("strict")
    return Tool(
        name=name,
        description=str(spec.get("description") or ""),
        parameters=parameters,
        strict=strict if isinstance(strict, bool) else None,
    )
