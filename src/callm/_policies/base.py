"""What a policy is: the steps of one attempt it may take part in, and the attempt itself.

A client's policies are an ordered sequence (see :class:`callm._engine.pipeline.Pipeline`).
On the way out the pipeline runs them in order — :meth:`Policy.admit` before the request is
encoded, :meth:`Policy.prepare` once it is, :meth:`Policy.answer` (a reply without sending),
:meth:`Policy.wait` before it goes — and on the way back in reverse order:
:meth:`Policy.succeeded`, :meth:`Policy.failed` or :meth:`Policy.abandoned`. So, like layers
of an onion, the first policy sees the request first and the reply last. A policy overrides
only the steps it needs; the pipeline skips the others at no cost.

What a policy keeps about one attempt (its span, its reservation …) travels on the
:class:`Attempt`, under a typed :class:`StateKey`; nothing about a request lives in a module
global.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

if TYPE_CHECKING:
    from .._core.embeddings import EmbedRequest
    from .._core.endpoint import Endpoint
    from .._core.http import HttpRequest
    from .._core.params import CallParams
    from .._core.types import Request, Response

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class CallInfo:
    """What hooks see of a call: the model ("provider/model"), the request, the call's tags.

    An embeddings call sets ``embed`` (the inputs it sends, under the provider's per-request
    limit); its ``request`` then stands for it before the policies — one user message with
    the inputs, so token estimates, rate limits and budgets see their size — and what is
    sent is ``embed``.
    """

    model: str
    request: Request
    tags: Mapping[str, str]
    streamed: bool
    # The conversation the call belongs to (set by Client.conversation), for the call log.
    conversation_id: str | None = None
    embed: EmbedRequest | None = None


class StateKey(Generic[T]):
    """The name of what one policy keeps on an attempt, and the type it keeps there."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"StateKey({self.name!r})"


@dataclass(slots=True, eq=False)
class Attempt:
    """One attempt of a call, as the policies see it."""

    info: CallInfo
    endpoint: Endpoint
    # Every "provider/model" tried for this call so far, this one last.
    tried: tuple[str, ...]
    # The call's own parameters (tags, log, response_cache …), as the caller passed them.
    params: CallParams
    # The encoded request, from prepare() on; its extensions are the transport's part.
    http: HttpRequest | None = None
    # True when a policy answered without sending (the response cache).
    cached: bool = False
    _state: dict[StateKey[Any], object] = field(default_factory=dict, repr=False)

    def get(self, key: StateKey[T]) -> T | None:
        """What a policy put under ``key`` for this attempt, or None."""
        return cast("T | None", self._state.get(key))

    def put(self, key: StateKey[T], value: T) -> None:
        self._state[key] = value

    @property
    def provider_model(self) -> tuple[str, str]:
        """The provider and the provider's model name ("openai", "gpt-4o-mini")."""
        provider, _, model = self.info.model.partition("/")
        return provider, model


class Policy:
    """One policy around every attempt: each step does nothing unless overridden."""

    def admit(self, attempt: Attempt) -> None:
        """Before the request is encoded: change ``attempt.info``, or raise to refuse."""

    def prepare(self, attempt: Attempt) -> None:
        """The request is encoded (``attempt.http``) and about to be answered or sent."""

    def answer(self, attempt: Attempt) -> Response | None:
        """A reply without sending (the response cache), or None to send."""
        return None

    def wait(self, attempt: Attempt) -> None:
        """Block until the request may go (the rate limiter)."""

    async def wait_async(self, attempt: Attempt) -> None:
        """The async twin of :meth:`wait`."""

    def succeeded(
        self, attempt: Attempt, response: Response, headers: Mapping[str, str]
    ) -> Response:
        """The reply arrived (or was answered: ``attempt.cached``); returns it, maybe changed."""
        return response

    def failed(self, attempt: Attempt, error: BaseException) -> None:
        """The attempt failed (the caller decides whether another model takes over)."""

    def abandoned(self, attempt: Attempt, partial: Response) -> None:
        """The caller closed a stream before it finished; ``partial`` is what arrived."""

    def flush(self) -> None:
        """Write out what the policy still holds (the client is closing)."""
