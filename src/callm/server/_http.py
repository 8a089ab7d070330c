"""The gateway's view of HTTP, independent of the server running it.

An adapter (``_rsgi.py`` for granian) turns the server's request into an :class:`Incoming`
and sends back a :class:`Reply` or a :class:`StreamReply`; nothing else knows the server.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

JSON_TYPE = "application/json"
SSE_HEADERS = (
    ("content-type", "text/event-stream; charset=utf-8"),
    ("cache-control", "no-cache"),
    ("x-accel-buffering", "no"),
)

dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


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
    """A whole response."""

    status: int
    body: bytes
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_type: str = JSON_TYPE


@dataclass(slots=True)
class StreamReply:
    """A streamed response: ``chunks`` is iterated and each chunk sent as it comes."""

    status: int
    chunks: AsyncIterator[bytes]
    headers: list[tuple[str, str]] = field(default_factory=list)


def json_reply(status: int, data: Any, headers: list[tuple[str, str]] | None = None) -> Reply:
    return Reply(status, dumps(data).encode(), headers or [])
