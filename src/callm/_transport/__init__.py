"""The I/O seam: one sync and one async transport, chosen by benchmark.

Transports send an :class:`HttpRequest` and give back an :class:`HttpResponse` (or a
streaming body); they translate their library's exceptions into callm's in exactly one
place each. Providers never see them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Protocol

from .._core.http import HttpRequest, HttpResponse
from .._core.timeouts import Timeout


class StreamBody(Protocol):
    """An open response whose body is read as it arrives."""

    status: int
    headers: Mapping[str, str]

    def chunks(self) -> Iterator[bytes]: ...

    def read(self) -> bytes: ...

    def close(self) -> None: ...


class AsyncStreamBody(Protocol):
    status: int
    headers: Mapping[str, str]

    def chunks(self) -> AsyncIterator[bytes]: ...

    async def read(self) -> bytes: ...

    async def close(self) -> None: ...


class Transport(Protocol):
    def send(self, request: HttpRequest, timeout: Timeout) -> HttpResponse: ...

    def open_stream(self, request: HttpRequest, timeout: Timeout) -> StreamBody: ...

    def close(self) -> None: ...


class AsyncTransport(Protocol):
    async def send(self, request: HttpRequest, timeout: Timeout) -> HttpResponse: ...

    async def open_stream(self, request: HttpRequest, timeout: Timeout) -> AsyncStreamBody: ...

    async def close(self) -> None: ...
