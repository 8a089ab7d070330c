"""``Client`` and ``AsyncClient``: what users call, on top of the send engine and the features.

A plain call drafts its Request from what was passed (:mod:`callm._features.request`) and
hands it to the engine (:mod:`callm._engine.client`), which runs the policies and sends it.
Structured output, the tool loop and conversations are features over the same calls: they
receive the client itself as their :class:`~callm._features.caller.Caller`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, TypeVar, Unpack

from ._core.http import HttpRequest
from ._core.params import CallParams, MessagesInput
from ._core.types import Response, ToolCall
from ._engine.client import AsyncEngine, Engine
from ._engine.stream import AsyncStream, OpeningStream, Stream
from ._features.request import draft_request

if TYPE_CHECKING:
    from ._core.embeddings import Embeddings
    from ._engine.embed import EmbedParams
    from ._features.conversation import AsyncConversation, Conversation, ConversationOptions
    from ._features.output import OutputSpec
    from ._features.run import AsyncRunStream, RunStream
    from ._policies.tokens import TokenCount

__all__ = ["AsyncClient", "CallParams", "Client"]

S = TypeVar("S", Stream, AsyncStream)


class Client(Engine):
    """A synchronous client for every provider. Reuse one: it keeps connections alive.

    ``Client(max_retries=2, timeout=60)`` reads keys and base URLs from the environment,
    a ``.env`` file or ``callm keys set``; ``http_client`` takes your own ``httpx2.Client``.
    """

    def complete(
        self,
        model: str | None = None,
        messages: MessagesInput = "",
        **params: Unpack[CallParams],
    ) -> Response:
        """Send a chat request and return the whole reply.

        With ``output=`` (a pydantic model, dataclass, TypedDict or JSON-schema dict) the reply
        is validated into ``response.parsed``; an invalid one is re-asked with the errors up to
        ``output_retries`` times (default 2), each attempt a call of its own.
        """
        if params.get("output") is not None:
            from ._features.output import complete as complete_structured

            return complete_structured(self, model, messages, params)
        return self.send(model, draft_request(messages, params, False), params)

    def stream(
        self,
        model: str | None = None,
        messages: MessagesInput = "",
        **params: Unpack[CallParams],
    ) -> Stream:
        """Send a chat request and stream the reply: ``with client.stream(…) as s: for ev in s``.

        With ``output=`` the events include PartialOutput values as the JSON grows, and
        ``s.response.parsed`` is set at the end (streams do not re-ask).
        """
        if params.get("output") is not None:
            from ._features.output import stream_params

            spec, inner = stream_params(params)
            return _structured(self.stream(model, messages, **inner), spec)
        return self.open(model, draft_request(messages, params, True), params)

    def run(
        self,
        model: str | None = None,
        messages: MessagesInput = "",
        *,
        max_steps: int = 10,
        approve: Callable[[ToolCall], object] | None = None,
        **params: Unpack[CallParams],
    ) -> Response:
        """Call the model, run the tools it asks for, send the results back, until it answers.

        Returns the final Response with ``transcript`` holding every message of the exchange;
        its ``usage`` and ``cost`` cover every model call of the run.
        """
        from ._features.run import run_tools

        return run_tools(self, model, messages, params, max_steps=max_steps, approve=approve)

    def run_stream(
        self,
        model: str | None = None,
        messages: MessagesInput = "",
        *,
        max_steps: int = 10,
        approve: Callable[[ToolCall], object] | None = None,
        **params: Unpack[CallParams],
    ) -> RunStream:
        """:meth:`run`, streamed: the events of every step, and each tool result as it is made."""
        from ._features.run import RunStream

        return RunStream(self, model, messages, params, max_steps=max_steps, approve=approve)

    def conversation(
        self, model: str | None = None, **options: Unpack[ConversationOptions]
    ) -> Conversation:
        """A conversation that keeps its history, fitted to the model's context window.

        ``conv.send("hi")`` / ``conv.stream("hi")`` send the history with each message;
        ``id=`` resumes a stored conversation. Options: ``id``, ``strategy``
        (``"drop_oldest"`` | ``"summarize"``), ``context_window``, ``max_output_tokens``,
        ``summary_model``, ``persist``, and call defaults (see :class:`callm.Conversation`).
        """
        from ._features.conversation import Conversation

        return Conversation(self, model, **options)

    def count_tokens(
        self, model: str | None, messages: MessagesInput, **params: Unpack[CallParams]
    ) -> TokenCount:
        """Input tokens of a request, counted the best way available (see ``TokenCount.method``).

        The provider's counting endpoint (Anthropic, Gemini), else OpenAI's tokenizer for
        OpenAI models when its data is on disk (``pip install callm[tokenizer]``), else a
        conservative estimate. Only an endpoint count sends anything.
        """
        return self.count(model, draft_request(messages, params, False), params)

    def http_request(
        self,
        model: str | None,
        messages: MessagesInput,
        *,
        stream: bool = False,
        **params: Unpack[CallParams],
    ) -> HttpRequest:
        """The exact HTTP request a call would send (for ``--curl`` and debugging)."""
        return self._prepared(model, draft_request(messages, params, stream), params).http

    def embed(
        self,
        model: str,
        inputs: str | Iterable[str],
        dimensions: int | None = None,
        **params: Unpack[EmbedParams],
    ) -> Embeddings:
        """The embedding vectors of ``inputs`` (a string or strings), in input order.

        ``client.embed("openai/text-embedding-3-small", ["a", "b"]).vectors``. A long list is
        split under the provider's per-request limit and the pieces are sent concurrently
        (``max_concurrency``, default 4); ``usage`` and ``cost`` cover them all. Every
        request goes through the client's policies: retries, rate limits, budget, the call
        log (inputs counted, never stored with the vectors). ``dimensions`` shortens the
        vectors where the model allows it (OpenAI's text-embedding-3, Gemini).
        """
        return self.embed_inputs(model, inputs, dimensions, params)


class AsyncClient(AsyncEngine):
    """The asyncio client: the same methods as :class:`Client`, awaited.

    It runs on aiohttp by default; ``http_client`` takes your own ``httpx2.AsyncClient``.
    """

    async def complete(
        self,
        model: str | None = None,
        messages: MessagesInput = "",
        **params: Unpack[CallParams],
    ) -> Response:
        """Send a chat request and return the whole reply.

        With ``output=`` (a pydantic model, dataclass, TypedDict or JSON-schema dict) the reply
        is validated into ``response.parsed``; an invalid one is re-asked with the errors up to
        ``output_retries`` times (default 2), each attempt a call of its own.
        """
        if params.get("output") is not None:
            from ._features.output import complete_async

            return await complete_async(self, model, messages, params)
        return await self.send(model, draft_request(messages, params, False), params)

    def stream(
        self,
        model: str | None = None,
        messages: MessagesInput = "",
        **params: Unpack[CallParams],
    ) -> OpeningStream:
        """Stream a reply: ``async with client.stream(…) as s: async for ev in s``.

        ``s = await client.stream(…)`` works too (then ``async with s`` or ``await
        s.close()``). With ``output=``: PartialOutput events and ``parsed``, as in
        :meth:`Client.stream`.
        """
        return OpeningStream(self._stream(model, messages, params))

    async def _stream(
        self, model: str | None, messages: MessagesInput, params: CallParams
    ) -> AsyncStream:
        if params.get("output") is not None:
            from ._features.output import stream_params

            spec, inner = stream_params(params)
            return _structured(await self._stream(model, messages, inner), spec)
        return await self.open(model, draft_request(messages, params, True), params)

    async def run(
        self,
        model: str | None = None,
        messages: MessagesInput = "",
        *,
        max_steps: int = 10,
        approve: Callable[[ToolCall], object] | None = None,
        **params: Unpack[CallParams],
    ) -> Response:
        """:meth:`Client.run`, awaited; parallel tool calls run concurrently."""
        from ._features.run import run_tools_async

        return await run_tools_async(
            self, model, messages, params, max_steps=max_steps, approve=approve
        )

    def run_stream(
        self,
        model: str | None = None,
        messages: MessagesInput = "",
        *,
        max_steps: int = 10,
        approve: Callable[[ToolCall], object] | None = None,
        **params: Unpack[CallParams],
    ) -> AsyncRunStream:
        """:meth:`run`, streamed: ``async with ac.run_stream(…) as s: async for ev in s``."""
        from ._features.run import AsyncRunStream

        return AsyncRunStream(self, model, messages, params, max_steps=max_steps, approve=approve)

    def conversation(
        self, model: str | None = None, **options: Unpack[ConversationOptions]
    ) -> AsyncConversation:
        """An async conversation: ``await conv.send("hi")``; see :meth:`Client.conversation`."""
        from ._features.conversation import AsyncConversation

        return AsyncConversation(self, model, **options)

    async def count_tokens(
        self, model: str | None, messages: MessagesInput, **params: Unpack[CallParams]
    ) -> TokenCount:
        """Input tokens of a request, counted the best way available (see ``TokenCount.method``).

        The provider's counting endpoint (Anthropic, Gemini), else OpenAI's tokenizer for
        OpenAI models when its data is on disk (``pip install callm[tokenizer]``), else a
        conservative estimate. Only an endpoint count sends anything.
        """
        return await self.count(model, draft_request(messages, params, False), params)

    def http_request(
        self,
        model: str | None,
        messages: MessagesInput,
        *,
        stream: bool = False,
        **params: Unpack[CallParams],
    ) -> HttpRequest:
        """The exact HTTP request a call would send (for ``--curl`` and debugging)."""
        return self._prepared(model, draft_request(messages, params, stream), params).http

    async def embed(
        self,
        model: str,
        inputs: str | Iterable[str],
        dimensions: int | None = None,
        **params: Unpack[EmbedParams],
    ) -> Embeddings:
        """The embedding vectors of ``inputs`` (a string or strings), in input order (awaited).

        ``client.embed("openai/text-embedding-3-small", ["a", "b"]).vectors``. A long list is
        split under the provider's per-request limit and the pieces are sent concurrently
        (``max_concurrency``, default 4); ``usage`` and ``cost`` cover them all. Every
        request goes through the client's policies: retries, rate limits, budget, the call
        log (inputs counted, never stored with the vectors). ``dimensions`` shortens the
        vectors where the model allows it (OpenAI's text-embedding-3, Gemini).
        """
        return await self.embed_inputs(model, inputs, dimensions, params)


def _structured(stream: S, spec: OutputSpec) -> S:
    """A stream of a call with ``output=`` (already opened without it) that parses as it goes."""
    from ._features.partial import PartialParser

    stream._expect_output(PartialParser(spec))
    return stream
