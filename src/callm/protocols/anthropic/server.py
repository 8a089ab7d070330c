"""The Anthropic Messages protocol, server side: what a gateway needs to speak it to callers.

Pure translation, no I/O, the reverse of the client codec: :func:`decode_request` reads a
caller's ``POST /v1/messages`` (or ``/v1/messages/count_tokens``) body into a callm
:class:`Request`; :func:`encode_response`, :class:`StreamEncoder` and :func:`encode_error`
write a callm reply, its event stream and errors as Anthropic's SDKs expect them.

How the wire maps onto callm's types, where a choice had to be made:

- ``system`` (a string or text blocks) becomes leading system messages, one per block.
  A user turn becomes ``user`` messages and one ``tool`` message per ``tool_result`` block,
  in order; an assistant turn one ``assistant`` message. A block with ``cache_control``
  ends a message with ``cache=True`` (so the mark lands on that very block when the request
  is encoded again); a ``ttl`` on the mark is not carried, the cache default applies.
- A tool result's text blocks are joined into ``ToolResult.content``; images and documents
  it holds follow it in a user message of their own (callm's tool results are text). A tool
  result holding other blocks (tool references …) is kept whole as a ``RawPart``.
- Blocks callm does not model (server tool blocks, search results, containers …) are kept
  as ``RawPart(protocol="anthropic")`` in place and sent back verbatim to Anthropic.
- Fields callm's Request has no slot for (``thinking``, ``service_tier``, ``container``,
  ``mcp_servers``, a top-level ``cache_control`` …) go to ``extra_body`` as given. A field
  callm models only in part (server tools beside function tools, ``tool_choice`` with
  ``disable_parallel_tool_use``, ``metadata`` beyond ``user_id``, ``output_config`` beyond
  its format) is decoded into the Request *and* kept whole in ``extra_body``: an upstream of
  this protocol then receives exactly what the caller sent, and another protocol gets what
  callm could read (a gateway drops ``extra_body`` when the protocols differ).
- Reasoning that came from another protocol (a Gemini thought signature, an OpenAI
  reasoning item) travels in the thinking block's ``signature`` as a sealed token (see
  :mod:`callm.protocols._shared.reasoning`) and is restored when the caller sends it back.
- Replies: ``stop_reason`` is the upstream's own when it was Anthropic's, else mapped from
  the finish reason; ``usage.input_tokens`` is the prompt minus its cache reads and writes,
  as Anthropic counts it; reasoning tokens go in ``output_tokens_details.thinking_tokens``.
  Parts of another protocol that have no Anthropic block (a Gemini grounding record, an
  OpenAI web search item) are left out of the reply: they mean nothing in this format.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping

from ..._core.errors import InvalidRequestError
from ..._core.media import guess_from_name
from ..._core.options import ResponseFormat, ToolChoice, tool_choice_of
from ..._core.types import (
    Document,
    Image,
    Message,
    Part,
    RawPart,
    Reasoning,
    Request,
    Role,
    Text,
    Tool,
    ToolCall,
    ToolResult,
)
from .._shared.ingress import (
    a_string,
    an_array,
    an_object,
    body_object,
    model_of,
    objects,
    optional_bool,
    optional_int,
    optional_number,
    optional_string,
    required,
    string_list,
)
from .._shared.reasoning import unseal
from . import client
from ._server_reply import (
    PROTOCOL,
    encode_count_tokens,
    encode_error,
    encode_response,
    encode_usage,
    message_id,
    stop_reason,
)
from ._server_stream import StreamEncoder

__all__ = [
    "PROTOCOL",
    "StreamEncoder",
    "decode_request",
    "encode_count_tokens",
    "encode_error",
    "encode_response",
    "encode_usage",
    "message_id",
    "stop_reason",
]

# Body fields decoded into the Request; any other field goes to extra_body as given.
_MODELLED = frozenset(
    {
        "model",
        "messages",
        "system",
        "max_tokens",
        "temperature",
        "top_p",
        "top_k",
        "stop_sequences",
        "stream",
        "metadata",
        "tools",
        "tool_choice",
        "output_config",
    }
)
_TOOL_CHOICES = {"auto": "auto", "any": "required", "none": "none"}
_TOOL_RESULT_MEDIA = frozenset({"image", "document"})


# --- decoding a caller's request ---------------------------------------------------------


def decode_request(body: Mapping[str, object], *, model: str | None = None) -> Request:
    """A caller's Messages (or count_tokens) body as a callm Request."""
    body = body_object(body)
    extra = {key: value for key, value in body.items() if key not in _MODELLED}
    messages = _system_messages(body.get("system"))
    messages += _conversation(required(body, "messages"))
    stop = body.get("stop_sequences")
    stops = string_list(stop, "stop_sequences") if stop is not None else ()
    return Request(
        model=model_of(body, model),
        messages=tuple(messages),
        max_tokens=optional_int(body, "max_tokens"),
        temperature=optional_number(body, "temperature"),
        top_p=optional_number(body, "top_p"),
        top_k=optional_int(body, "top_k"),
        stop=stops or None,
        user=_user(body.get("metadata"), extra),
        tools=_tools(body.get("tools"), extra),
        tool_choice=_tool_choice(body.get("tool_choice"), extra),
        response_format=_response_format(body.get("output_config"), extra),
        stream=bool(optional_bool(body, "stream")),
        extra_body=extra,
    )


def _system_messages(system: object) -> list[Message]:
    if system is None:
        return []
    if isinstance(system, str):
        return [Message.system(system)] if system else []
    out = []
    for where, block in objects(system, "system"):
        if block.get("type") != "text":
            raise InvalidRequestError(f"{where} must be a text block ({{'type': 'text', …}})")
        text = a_string(block.get("text"), where + ".text")
        out.append(Message("system", (Text(text),), cache=_cached(block)))
    return out


def _cached(block: Mapping[str, object]) -> bool:
    return block.get("cache_control") is not None


class _Turn:
    """The callm messages one wire turn becomes, cut after every cache-marked block."""

    def __init__(self, role: Role) -> None:
        self.role: Role = role
        self.messages: list[Message] = []
        self._parts: list[Part] = []

    def add(self, part: Part) -> None:
        self._parts.append(part)

    def cut(self, *, cache: bool = False) -> None:
        if self._parts:
            self.messages.append(Message(self.role, tuple(self._parts), cache=cache))
            self._parts = []

    def insert(self, message: Message) -> None:
        self.cut()
        self.messages.append(message)

    def done(self) -> list[Message]:
        self.cut()
        return self.messages or [Message(self.role, ())]


def _conversation(messages: object) -> list[Message]:
    out: list[Message] = []
    for where, message in objects(messages, "messages"):
        role = message.get("role")
        content = required(message, "content", where + ".")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        if role == "user":
            out += _user_turn(blocks, where)
        elif role == "assistant":
            out += _assistant_turn(blocks, where)
        elif role == "system":  # mid-conversation system content (newer API versions)
            out += _system_turn(blocks, where)
        else:
            raise InvalidRequestError(f"{where}.role must be 'user' or 'assistant', not {role!r}")
    return out


def _user_turn(blocks: object, where: str) -> list[Message]:
    turn = _Turn("user")
    for at, block in objects(blocks, where + ".content"):
        if block.get("type") == "tool_result" and _plain_tool_result(block):
            result, media = _tool_result(block, at)
            turn.insert(Message("tool", (result,), cache=_cached(block)))
            if media:
                turn.insert(Message("user", tuple(media)))
            continue
        turn.add(_user_part(block, at))
        if _cached(block):
            turn.cut(cache=True)
    return turn.done()


def _assistant_turn(blocks: object, where: str) -> list[Message]:
    turn = _Turn("assistant")
    for at, block in objects(blocks, where + ".content"):
        for part in _assistant_parts(block, at):
            turn.add(part)
        if _cached(block):
            turn.cut(cache=True)
    return turn.done()


def _system_turn(blocks: object, where: str) -> list[Message]:
    turn = _Turn("system")
    for at, block in objects(blocks, where + ".content"):
        turn.add(_user_part(block, at))
    return turn.done()


def _user_part(block: Mapping[str, object], where: str) -> Part:
    kind = block.get("type")
    if kind == "text":
        return Text(a_string(block.get("text"), where + ".text"))
    if kind == "image":
        return _image(block, where)
    if kind == "document":
        return _document(block, where)
    if kind == "tool_use":
        raise InvalidRequestError(
            f"{where} is a tool_use block in a user turn: tool calls belong to assistant turns"
        )
    if not isinstance(kind, str):
        raise InvalidRequestError(f"{where}.type must be a string naming the block's kind")
    return RawPart(PROTOCOL, kind, dict(block))


def _assistant_parts(block: Mapping[str, object], where: str) -> list[Part]:
    kind = block.get("type")
    if kind == "text":
        parts: list[Part] = [Text(a_string(block.get("text"), where + ".text"))]
        if block.get("citations"):
            citations = an_array(block["citations"], where + ".citations")
            parts.append(RawPart(PROTOCOL, "citations", {"citations": citations}))
        return parts
    if kind == "tool_use":
        return [_tool_call(block, where)]
    if kind == "thinking":
        return [_thinking(block, where)]
    if kind == "redacted_thinking":
        data = a_string(block.get("data"), where + ".data")
        return [Reasoning("", data=data, protocol=PROTOCOL)]
    return [_user_part(block, where)]


def _tool_call(block: Mapping[str, object], where: str) -> ToolCall:
    call_id = a_string(block.get("id"), where + ".id")
    name = a_string(block.get("name"), where + ".name")
    arguments = an_object(block.get("input", {}), where + ".input")
    return ToolCall(call_id, name, dict(arguments))


def _thinking(block: Mapping[str, object], where: str) -> Reasoning:
    text = a_string(block.get("thinking", ""), where + ".thinking")
    signature = optional_string(block, "signature", where + ".")
    sealed = unseal(signature, text)
    if sealed is not None:
        return sealed
    return Reasoning(text, signature=signature or None, protocol=PROTOCOL)


def _image(block: Mapping[str, object], where: str) -> Part:
    source = an_object(required(block, "source", where + "."), where + ".source")
    kind = source.get("type")
    if kind == "base64":
        media_type = a_string(source.get("media_type"), where + ".source.media_type")
        data = a_string(source.get("data"), where + ".source.data")
        return Image(f"data:{media_type};base64,{data}")
    if kind == "url":
        return Image(a_string(source.get("url"), where + ".source.url"))
    return RawPart(PROTOCOL, "image", dict(block))  # a Files API id: Anthropic's own


def _document(block: Mapping[str, object], where: str) -> Part:
    source = an_object(required(block, "source", where + "."), where + ".source")
    title = optional_string(block, "title", where + ".")
    kind = source.get("type")
    if set(block) - {"type", "source", "title", "cache_control"}:
        return RawPart(PROTOCOL, "document", dict(block))  # citations, context: Anthropic's
    if kind == "base64":
        media_type = a_string(source.get("media_type"), where + ".source.media_type")
        data = a_string(source.get("data"), where + ".source.data")
        return Document(f"data:{media_type};base64,{data}", media_type, title)
    if kind == "text":
        text = a_string(source.get("data"), where + ".source.data")
        encoded = base64.b64encode(text.encode()).decode("ascii")
        return Document(f"data:text/plain;base64,{encoded}", "text/plain", title)
    if kind == "url":
        url = a_string(source.get("url"), where + ".source.url")
        return Document(url, guess_from_name(url), title)
    return RawPart(PROTOCOL, "document", dict(block))


def _plain_tool_result(block: Mapping[str, object]) -> bool:
    """A tool result callm can hold: text, plus images or documents that follow it."""
    content = block.get("content")
    if not isinstance(content, list):
        return True
    return all(
        isinstance(b, Mapping) and b.get("type") in ("text", *_TOOL_RESULT_MEDIA) for b in content
    )


def _tool_result(block: Mapping[str, object], where: str) -> tuple[ToolResult, list[Part]]:
    call_id = a_string(block.get("tool_use_id"), where + ".tool_use_id")
    content = block.get("content")
    texts: list[str] = []
    media: list[Part] = []
    if isinstance(content, str):
        texts.append(content)
    elif content is not None:
        for at, item in objects(content, where + ".content"):
            if item.get("type") == "text":
                texts.append(a_string(item.get("text"), at + ".text"))
            else:
                media.append(_user_part(item, at))
    is_error = bool(optional_bool(block, "is_error", where + "."))
    return ToolResult(call_id, "\n".join(texts), is_error=is_error), media


def _user(metadata: object, extra: dict[str, object]) -> str | None:
    if metadata is None:
        return None
    metadata = an_object(metadata, "metadata")
    user = metadata.get("user_id")
    if set(metadata) - {"user_id"} or not isinstance(user, str | None):
        extra["metadata"] = dict(metadata)
    return user if isinstance(user, str) else None


def _tools(value: object, extra: dict[str, object]) -> tuple[Tool, ...]:
    if value is None:
        return ()
    items = an_array(value, "tools")
    tools: list[Tool] = []
    exact = True
    for where, item in objects(items, "tools"):
        if item.get("type") not in (None, "custom"):
            exact = False  # a server tool (web search, code execution …): Anthropic's own
            continue
        tool = Tool(
            name=a_string(item.get("name"), where + ".name"),
            description=optional_string(item, "description", where + ".") or "",
            parameters=dict(an_object(item.get("input_schema"), where + ".input_schema")),
            strict=optional_bool(item, "strict", where + "."),
        )
        tools.append(tool)
        exact = exact and client.encode_tool(tool) == item
    if not exact:
        extra["tools"] = list(items)
    return tuple(tools)


def _tool_choice(value: object, extra: dict[str, object]) -> ToolChoice | None:
    if value is None:
        return None
    choice = {"type": value} if isinstance(value, str) else an_object(value, "tool_choice")
    kind = choice.get("type")
    if kind == "tool":
        mapped = a_string(choice.get("name"), "tool_choice.name")
    elif isinstance(kind, str) and kind in _TOOL_CHOICES:
        mapped = _TOOL_CHOICES[kind]
    else:
        raise InvalidRequestError(
            f"tool_choice.type must be 'auto', 'any', 'tool' or 'none', not {kind!r}"
        )
    typed = tool_choice_of(mapped)
    if client.encode_tool_choice(typed) != choice:
        extra["tool_choice"] = dict(choice)  # disable_parallel_tool_use …
    return typed


def _response_format(value: object, extra: dict[str, object]) -> ResponseFormat | None:
    if value is None:
        return None
    config = an_object(value, "output_config")
    fmt = config.get("format")
    response_format = None
    if fmt is not None:
        fmt = an_object(fmt, "output_config.format")
        if fmt.get("type") == "json_schema":
            schema = an_object(fmt.get("schema"), "output_config.format.schema")
            response_format = ResponseFormat("json_schema", dict(schema))
    if response_format is None or config != {"format": _reencoded(response_format)}:
        extra["output_config"] = dict(config)  # effort, or a format callm cannot re-create
    return response_format


def _reencoded(response_format: ResponseFormat) -> object:
    try:
        return client.encode_response_format(response_format)
    except InvalidRequestError:
        return None
