"""Plain HTTP request/response values exchanged between providers and transports.

Providers build an :class:`HttpRequest` and read an :class:`HttpResponse`; only the
transports touch sockets.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes | None = None
    # Header names whose values are secrets, redacted in --curl output, logs and reprs.
    secret_headers: frozenset[str] = field(default=frozenset())

    def __repr__(self) -> str:
        return f"HttpRequest({self.method} {redact_url(self.url)})"


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    # Header names are lower-case.
    headers: Mapping[str, str]
    body: bytes = b""


def redact_url(url: str) -> str:
    """Hide a ``key=`` query parameter (Gemini style) in a URL that is shown to people."""
    if "key=" not in url:
        return url
    head, _, query = url.partition("?")
    parts = [("key=***" if p.startswith("key=") else p) for p in query.split("&")]
    return head + "?" + "&".join(parts)
