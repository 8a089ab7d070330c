"""Turning what users pass (a string, OpenAI-style dicts, callm types) into callm types."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from .._core.errors import InvalidRequestError
from .._core.params import MessagesInput, ToolInput
from .._core.types import (
    Document,
    Image,
    Message,
    Part,
    RawPart,
    Reasoning,
    Refusal,
    Text,
    Tool,
    ToolCall,
    ToolResult,
    attachment,
)

_PART_TYPES = (Text, Image, Document, ToolCall, ToolResult, Reasoning, Refusal, RawPart)
_ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})


def to_messages(messages: MessagesInput, system: str | None = None) -> tuple[Message, ...]:
    """Normalise a prompt string, one message or a list of messages (dicts or Message)."""
    if isinstance(messages, str):
        items: list[Message] = [Message("user", (Text(messages),))]
    elif isinstance(messages, Message | Mapping):
        items = [to_message(messages)]
    else:
        items = [to_message(m) for m in messages]
    if system is not None:
        items.insert(0, Message("system", (Text(system),)))
    if not items:
        raise InvalidRequestError("messages is empty: give at least one message or a prompt")
    return tuple(items)


def to_message(message: Message | Mapping[str, Any]) -> Message:
    """One message from a callm Message or an OpenAI-style dict."""
    if isinstance(message, Message):
        return message
    if not isinstance(message, Mapping):
        raise InvalidRequestError(
            f"a message must be a dict or callm.Message, not {type(message).__name__}"
        )
    role = message.get("role")
    if role not in _ROLES:
        raise InvalidRequestError(
            f"message role {role!r} is not one of {', '.join(sorted(_ROLES))}"
        )
    if role == "tool":
        return _tool_message(message)
    parts = list(_content_parts(message.get("content")))
    if role == "assistant":
        parts.extend(_tool_calls(message.get("tool_calls") or ()))
    return Message(role, tuple(parts), message.get("name"))


def _tool_message(message: Mapping[str, Any]) -> Message:
    call_id = message.get("tool_call_id")
    if not call_id:
        raise InvalidRequestError("a tool message needs the tool_call_id it answers")
    content = message.get("content")
    text = (
        content
        if isinstance(content, str)
        else "".join(p.text for p in _content_parts(content) if isinstance(p, Text))
    )
    return Message("tool", (ToolResult(call_id, text, message.get("name")),))


def _content_parts(content: Any) -> list[Part]:
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


def _part(part: Any) -> Part:
    if isinstance(part, _PART_TYPES):
        return part
    if isinstance(part, str):
        return Text(part)
    if isinstance(part, os.PathLike):  # a Path: an Image or a Document by its media type
        return attachment(part)
    kind = part.get("type") if isinstance(part, Mapping) else None
    if kind in ("text", "input_text"):
        return Text(part["text"])
    if kind in ("image_url", "input_image", "image"):
        return _image_part(part)
    if kind in ("file", "input_file", "document"):
        return _file_part(part)
    raise InvalidRequestError(
        f"unsupported content part {kind!r}: use text, image or file parts, a pathlib.Path, "
        "or callm types"
    )


def _image_part(part: Mapping[str, Any]) -> Image:
    """OpenAI's ``image_url`` / ``input_image`` parts, or callm's ``{"type": "image", …}``
    with one of ``path``, ``url`` or ``data`` (bytes)."""
    image: Any = part.get("image_url")
    detail = part.get("detail")
    if isinstance(image, Mapping):
        image, detail = image.get("url"), image.get("detail", detail)
    if isinstance(image, str):
        return Image(image, detail)
    if part.get("path") is not None:
        return Image.from_path(part["path"], detail)
    if part.get("url") is not None:
        return Image.from_url(part["url"], detail)
    if isinstance(part.get("data"), bytes):
        return Image.from_bytes(part["data"], part.get("media_type"), detail=detail)
    raise InvalidRequestError(f"an image part needs a path, url or data: {_shown(part)}")


def _file_part(part: Mapping[str, Any]) -> Image | Document:
    """OpenAI's ``file`` / ``input_file`` parts (inline ``file_data`` or ``file_url``), or
    callm's ``{"type": "file", …}`` with one of ``path``, ``url`` or ``data`` (bytes)."""
    inner = part.get("file")
    spec: Mapping[str, Any] = inner if isinstance(inner, Mapping) else part
    title = spec.get("filename") or part.get("title")
    if isinstance(spec.get("file_data"), str):
        data_url = spec["file_data"]
        return Document(data_url, _data_url_type(data_url), title)
    if isinstance(spec.get("file_url"), str):
        return Document.from_url(spec["file_url"], title=title)
    if part.get("path") is not None:
        found = attachment(part["path"])
        return found if title is None or isinstance(found, Image) else replace(found, title=title)
    if part.get("url") is not None:
        return Document.from_url(part["url"], part.get("media_type"), title)
    if isinstance(part.get("data"), bytes):
        return Document.from_bytes(part["data"], part.get("media_type"), title=title)
    raise InvalidRequestError(
        f"a file part needs a path, url, data or file_data (uploaded file ids are not "
        f"supported): {_shown(part)}"
    )


def _data_url_type(url: str) -> str | None:
    if not url.startswith("data:"):
        return None
    return url[5:].split(",", 1)[0].split(";", 1)[0] or None


def _shown(part: Mapping[str, Any]) -> str:
    # Never echo a base64 payload into an error message.
    return repr({k: (v if len(repr(v)) < 80 else "…") for k, v in part.items()})


def _tool_calls(calls: Sequence[Any]) -> list[Part]:
    from ..protocols.openai_chat.client import parse_tool_call

    parts: list[Part] = []
    for call in calls:
        if isinstance(call, ToolCall):
            parts.append(call)
            continue
        function = call.get("function") or {}
        parts.append(
            parse_tool_call(
                call.get("id") or "", function.get("name") or "", function.get("arguments")
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
    spec = tool.get("function", tool) if tool.get("type") == "function" else tool
    if not spec.get("name"):
        raise InvalidRequestError(f"a tool needs a name: {tool!r}")
    return Tool(
        name=spec["name"],
        description=spec.get("description") or "",
        parameters=spec.get("parameters") or {"type": "object", "properties": {}},
        strict=spec.get("strict"),
    )
