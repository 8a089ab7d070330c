"""``CallRecord``: one row of the call log, built from callm's own types."""

from __future__ import annotations

import random
import time as _time
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from datetime import UTC, datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Any, TypedDict, Unpack

from .._core.embeddings import EmbedRequest
from .._core.options import ResponseFormat, ToolChoice
from .._core.secrets import REDACTED, looks_secret
from .._core.types import (
    Document,
    Image,
    Message,
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

_SCALARS = frozenset({str, int, float, bool})
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}
_NO_TAGS: Mapping[str, str] = MappingProxyType({})
_NO_USAGE = Usage()
# Request fields stored under "parameters" (messages and tools have their own keys).
_PARAMETERS = (
    "max_tokens",
    "temperature",
    "top_p",
    "top_k",
    "stop",
    "seed",
    "n",
    "user",
    "tool_choice",
    "response_format",
    "extra_body",
    "extra_headers",
)

# A generator of our own: the shared one belongs to the application (and test tools
# watch it), and these ids are drawn on a background thread.
_rng = random.Random()


def new_id() -> str:
    """A unique, time-ordered record id: 32 hex digits (nanosecond clock + 64 random bits)."""
    # Not uuid4: os.urandom is a system call per id. ``random`` is reseeded in forked
    # children, so two processes never share a sequence.
    return f"{_time.time_ns():016x}{_rng.getrandbits(64):016x}"


class RecordDetails(TypedDict, total=False):
    """The optional keyword arguments of :meth:`CallRecord.of`."""

    response: Response | None
    error: BaseException | None
    model: str | None
    latency_s: float | None
    ttft_s: float | None
    tags: Mapping[str, str] | None
    conversation_id: str | None
    streamed: bool | None
    cached: bool
    time: datetime | None
    embed: EmbedRequest | None
    cancelled: bool


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One model call as the call log keeps it: what was asked, what came back, what it cost.

    ``request`` is JSON-like: ``{"messages": [...], "parameters": {...}, "tools": [...]}``.
    ``status`` is ``"ok"``, ``"cancelled"`` (a stream its caller stopped early, with what
    had arrived) or the class name of the error the call ended with (``error`` holds its
    message). ``cost`` is exact USD, or None when the price is unknown. ``cached`` means
    the answer came from callm's response cache, not from the provider. ``usage_reported``
    is False when the provider reported no usage: the token counts are unknown, not zero.

    A record built by :meth:`of` holds what the call held; the store redacts keys and base64
    payloads on the way in, so a record read back from the store is the redacted form.
    """

    provider: str
    model: str
    request: Mapping[str, Any]
    response_text: str | None = None
    tool_calls: tuple[Mapping[str, object], ...] = ()
    finish_reason: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cost: Decimal | None = None
    latency_s: float | None = None
    ttft_s: float | None = None
    status: str = "ok"
    error: str | None = None
    request_id: str | None = None
    conversation_id: str | None = None
    tags: Mapping[str, str] = field(default_factory=lambda: _NO_TAGS)
    streamed: bool = False
    cached: bool = False
    usage_reported: bool = True
    time: datetime = field(default_factory=lambda: datetime.now(UTC))
    id: str = field(default_factory=new_id)

    @property
    def usage(self) -> Usage:
        """The token counts as a :class:`callm.Usage`."""
        return Usage(
            self.input_tokens,
            self.output_tokens,
            self.cached_input_tokens,
            self.cache_write_tokens,
            self.reasoning_tokens,
            self.usage_reported,
        )

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @classmethod
    def of(cls, request: Request, *, provider: str, **details: Unpack[RecordDetails]) -> CallRecord:
        """The record of one call: its request and either its response or its error.

        When the call failed after a stream began, the error's ``.partial`` response supplies
        the text and usage that did arrive. ``model`` defaults to the requested model name,
        ``latency_s`` / ``ttft_s`` to the response's own, ``streamed`` to ``request.stream``.
        """
        return cls(**record_fields(request, provider=provider, **details))


def record_fields(
    request: Request,
    *,
    provider: str,
    response: Response | None = None,
    error: BaseException | None = None,
    model: str | None = None,
    latency_s: float | None = None,
    ttft_s: float | None = None,
    tags: Mapping[str, str] | None = None,
    conversation_id: str | None = None,
    streamed: bool | None = None,
    cached: bool = False,
    time: datetime | None = None,
    embed: EmbedRequest | None = None,
    cancelled: bool = False,
) -> dict[str, Any]:
    """The fields of :meth:`CallRecord.of` as a dict, id and time included (the call log
    turns them into a row without building the record). An embeddings call (``embed``)
    keeps how many inputs it sent, not the inputs, and no vectors."""
    reply = response if response is not None else getattr(error, "partial", None)
    usage = reply.usage if reply is not None else _NO_USAGE
    return {
        "id": new_id(),
        "time": time if time is not None else datetime.now(UTC),
        "provider": provider,
        "model": model or request.model,
        "request": request_json(request) if embed is None else embed_json(embed),
        "response_text": reply.text if reply is not None else None,
        "tool_calls": tuple(_tool_call_json(c) for c in reply.tool_calls) if reply else (),
        "finish_reason": reply.finish_reason if reply is not None else None,
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cached_input_tokens": usage.cached_input_tokens,
        "cache_write_tokens": usage.cache_write_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
        "cost": reply.cost if reply is not None else None,
        "latency_s": latency_s if latency_s is not None else reply.latency_s if reply else None,
        "ttft_s": ttft_s if ttft_s is not None else reply.ttft_s if reply else None,
        "status": _status(error, cancelled),
        "error": CANCELLED_NOTE if cancelled else None if error is None else str(error),
        "request_id": _request_id(reply, error),
        "conversation_id": conversation_id,
        "tags": dict(tags) if tags else _NO_TAGS,
        "streamed": request.stream if streamed is None else streamed,
        "cached": cached,
        "usage_reported": usage.reported,
    }


CANCELLED_NOTE = "the stream was stopped before it finished; the part that arrived is kept"


def _status(error: BaseException | None, cancelled: bool) -> str:
    """ "ok", "cancelled" (a stream its caller stopped: Ctrl-C, a break) or the error's class."""
    if cancelled:
        return "cancelled"
    return "ok" if error is None else type(error).__name__


def request_json(request: Request) -> dict[str, object]:
    """The JSON-like form of a request as stored: messages, parameters and tools."""
    params = {}
    for name in _PARAMETERS:
        value = getattr(request, name)
        if isinstance(value, ToolChoice | ResponseFormat):
            value = value.as_json()  # as the call parameter takes it
        if value is not None and not (isinstance(value, Mapping) and not value):
            params[name] = _plain(value)
    if "extra_headers" in params:
        params["extra_headers"] = _headers_json(request.extra_headers or {})
    return {
        "messages": [message_json(m) for m in request.messages],
        "parameters": params,
        "tools": [_tool_json(t) for t in request.tools],
    }


def embed_json(embed: EmbedRequest) -> dict[str, object]:
    """An embeddings request as stored: the number of inputs and the parameters."""
    params: dict[str, object] = {}
    if embed.dimensions is not None:
        params["dimensions"] = embed.dimensions
    if embed.user is not None:
        params["user"] = embed.user
    if embed.extra_body:
        params["extra_body"] = _plain(embed.extra_body)
    return {
        "messages": [],
        "parameters": params,
        "tools": [],
        "embed": {"inputs": len(embed.inputs)},
    }


def message_json(message: Message) -> dict[str, object]:
    """A message as a plain dict: role, content parts (each with its ``kind``), name, cache."""
    out: dict[str, object] = {
        "role": message.role,
        "content": [part_json(p) for p in message.content],
    }
    if message.name is not None:
        out["name"] = message.name
    if message.cache:
        out["cache"] = True
    return out


def part_json(part: Part) -> dict[str, object]:
    """A content part as a plain dict of its set fields (``kind`` always included)."""
    # A walk over the dataclass fields covers every part type, present and future, so a
    # new field can never be silently left out of the log.
    if (
        type(part) is Text and part.text
    ):  # the commonest part, without the walk (same keys, same order)
        return {"text": part.text, "kind": "text"}
    names = _FIELD_NAMES.get(type(part))
    if names is None:
        names = _FIELD_NAMES[type(part)] = tuple(f.name for f in fields(part))
    out: dict[str, object] = {}
    for name in names:
        value = getattr(part, name)
        if name == "kind" or not _unset(value):
            out[name] = _plain(value)
    return out


def _unset(value: Any) -> bool:
    return value is None or value is False or (isinstance(value, str | Mapping) and not value)


def _tool_json(tool: Tool) -> dict[str, object]:
    return {
        "name": tool.name,
        "description": tool.description,
        "parameters": _plain(tool.parameters),
    }


def _tool_call_json(call: ToolCall) -> dict[str, object]:
    out: dict[str, object] = {"id": call.id, "name": call.name, "arguments": _plain(call.arguments)}
    if call.invalid_arguments:
        out["raw_arguments"] = call.raw_arguments
    return out


def _headers_json(headers: Mapping[str, str]) -> dict[str, object]:
    """Extra headers as stored: names kept, the values of secret-named ones masked
    (``x-gateway-token``, ``helicone-auth`` …: headers are where secrets travel)."""
    return {str(k): REDACTED if looks_secret(str(k)) else v for k, v in headers.items()}


def _plain(value: Any) -> Any:
    """Mappings and tuples as dicts and lists, so the value is ready for ``json.dumps``."""
    if value is None or type(value) in _SCALARS:
        return value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _request_id(reply: Response | None, error: BaseException | None) -> str | None:
    if reply is not None and reply.request_id:
        return reply.request_id
    rid = getattr(error, "request_id", None)
    return rid if isinstance(rid, str) else None


_PART_TYPES: Mapping[str, type[Any]] = {
    "text": Text,
    "image": Image,
    "document": Document,
    "tool_call": ToolCall,
    "tool_result": ToolResult,
    "reasoning": Reasoning,
    "refusal": Refusal,
    "raw": RawPart,
}


def message_from_json(data: Mapping[str, Any]) -> Message:
    """The reverse of :func:`callm._store.message_json`: a Message from its plain dict."""
    return Message(
        data["role"],
        tuple(part_from_json(p) for p in data.get("content", ())),
        data.get("name"),
        bool(data.get("cache", False)),
    )


def part_from_json(data: Mapping[str, Any]) -> Part:
    """The reverse of :func:`callm._store.part_json` (unset fields take their defaults)."""
    cls = _PART_TYPES.get(data.get("kind", ""))
    if cls is None:
        raise ValueError(f"unknown message part kind {data.get('kind')!r} in the store")
    values: dict[str, Any] = {}
    for f in fields(cls):
        if f.name in data:
            values[f.name] = data[f.name]
        elif f.default is MISSING and f.default_factory is MISSING:
            # part_json leaves out empty values: "" for text, {} for a mapping.
            values[f.name] = {} if f.name in ("arguments", "data") else ""
    part: Part = cls(**values)
    return part
