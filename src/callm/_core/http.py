"""Plain HTTP request/response values exchanged between providers and transports.

Providers build an :class:`HttpRequest` and read an :class:`HttpResponse`; only the
transports touch sockets.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypedDict

from .secrets import looks_secret


class Extensions(TypedDict, total=False):
    """State of one request that its transport acts on (as httpx's ``request.extensions``).

    The policies put it there as the request is prepared; nothing about a request lives in
    a module global.
    """

    # Called by the transport while the caller only waits for the server: the sync one
    # between sending the request and reading its answer, the async one as the request
    # starts (in the event loop's thread). The call log builds its waiting rows there.
    on_wait: Callable[[], None]


def _no_extensions() -> Extensions:
    return {}


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes | None = None
    # Header names whose values are secrets, redacted in --curl output, logs and reprs.
    secret_headers: frozenset[str] = field(default=frozenset())
    extensions: Extensions = field(default_factory=_no_extensions, compare=False, repr=False)

    def __repr__(self) -> str:
        return f"HttpRequest({self.method} {redact_url(self.url)})"


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    # Header names are lower-case.
    headers: Mapping[str, str]
    body: bytes = b""


def redact_url(url: str) -> str:
    """A URL fit to show people: a ``user:password@`` and the values of secret-named query
    parameters (``key=``, ``api_key=``, ``token=``, ``sig=`` …) become ``***``."""
    head, mark, query = url.partition("?")
    scheme, sep, rest = head.partition("://")
    if sep and "@" in rest.partition("/")[0]:
        host = rest.partition("/")[0].rpartition("@")[2]
        head = f"{scheme}://***@{host}{rest[len(rest.partition('/')[0]) :]}"
    if not mark:
        return head
    return head + "?" + "&".join(_redact_param(p) for p in query.split("&"))


def _redact_param(param: str) -> str:
    name, eq, value = param.partition("=")
    return f"{name}=***" if eq and value and looks_secret(name) else param
