"""What the features need of a client: a small protocol, so none of them imports the client.

The tool loop, structured output and conversations make their model calls through a
:class:`Caller` (or :class:`AsyncCaller`); :class:`callm.Client` and :class:`callm.AsyncClient`
are both, and pass themselves. A conversation also looks up its model's context window and
keeps its history in the client's store (:class:`ConversationHost`).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING, Protocol, Unpack

if TYPE_CHECKING:
    from .._core.endpoint import Endpoint
    from .._core.params import CallParams, MessagesInput
    from .._core.types import Response
    from .._engine.stream import AsyncStream, Stream
    from .._store import Store


class Caller(Protocol):
    """Makes model calls, synchronously."""

    def complete(
        self, model: str | None = None, messages: MessagesInput = "", **params: Unpack[CallParams]
    ) -> Response: ...

    def stream(
        self, model: str | None = None, messages: MessagesInput = "", **params: Unpack[CallParams]
    ) -> Stream: ...


class AsyncCaller(Protocol):
    """Makes model calls, awaited."""

    async def complete(
        self, model: str | None = None, messages: MessagesInput = "", **params: Unpack[CallParams]
    ) -> Response: ...

    def stream(
        self, model: str | None = None, messages: MessagesInput = "", **params: Unpack[CallParams]
    ) -> Awaitable[AsyncStream]: ...


class _HasStore(Protocol):
    def store(self) -> Store: ...


class Host(Protocol):
    """What a conversation needs besides the calls: where a model lives, and the store."""

    @property
    def pipeline(self) -> _HasStore: ...

    def resolve_model(self, model: str | None) -> tuple[Endpoint, str]: ...


class ConversationHost(Caller, Host, Protocol):
    """A synchronous client a conversation can run on."""


class AsyncConversationHost(AsyncCaller, Host, Protocol):
    """An async client a conversation can run on."""
