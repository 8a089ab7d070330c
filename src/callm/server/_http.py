"""The gateway's view of HTTP, independent of the server running it.

An adapter (``_rsgi.py`` for granian) turns the server's request into an :class:`Incoming`
and sends back a :class:`Reply` or a :class:`StreamReply`; nothing else knows the server.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import orjson

logger = logging.getLogger("callm.server")
JSON_TYPE = "application/json"
SSE_HEADERS = (
    ("content-type", "text/event-stream; charset=utf-8"),
    ("cache-control", "no-cache"),
    ("x-accel-buffering", "no"),
)


def _plain(value: Any) -> Any:
    """What orjson cannot write itself: any other mapping or sequence, as a dict or list."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, tuple | list | set | frozenset):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def dumps(data: Any) -> bytes:
    """Compact JSON as bytes (orjson: a reply's JSON costs well under a microsecond)."""
    return orjson.dumps(data, default=_plain)


def loads(raw: bytes) -> Any:
    """JSON from bytes; whatever orjson refuses, the standard library reads or explains."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)  # NaN and friends, or a ValueError that says what is wrong


@dataclass(slots=True)
class Incoming:
    """One request: lower-case header names, the raw query string, the whole body."""

    method: str
    path: str
    query_string: str
    headers: Mapping[str, str]
    body: bytes = b""
    too_large: bool = False  # the body passed the size limit and was not read
    _query: dict[str, str] | None = field(default=None, repr=False)

    @property
    def query(self) -> dict[str, str]:
        if self._query is None:
            self._query = dict(parse_qsl(self.query_string)) if self.query_string else {}
        return self._query


@dataclass(slots=True)
class Reply:
    """A whole response. ``after``, when set, is awaited once the response is written: the
    request's bookkeeping (settling its reservation, its metrics and log line), which the
    caller need not wait for."""

    status: int
    body: bytes
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_type: str = JSON_TYPE
    after: Callable[[], Awaitable[None]] | None = None


@dataclass(slots=True)
class StreamReply:
    """A streamed response: ``chunks`` is iterated and each chunk sent as it comes."""

    status: int
    chunks: AsyncIterator[bytes]
    headers: list[tuple[str, str]] = field(default_factory=list)


def json_reply(status: int, data: Any, headers: list[tuple[str, str]] | None = None) -> Reply:
    return Reply(status, dumps(data), headers or [])


async def after_reply(reply: Reply) -> None:
    """A written reply's bookkeeping (``Reply.after``); a failure there is logged, as the
    caller has its answer already."""
    if reply.after is None:
        return
    try:
        await reply.after()
    except Exception:
        logger.exception("callm serve: a request's bookkeeping failed after its reply")
