"""The send engine: resolve the model, run the policies and send, with retries.

:class:`Engine` and :class:`AsyncEngine` take a provider-neutral :class:`Request` drafted by
the caller (every field but the provider's model name) and carry it through the policies
(routing, hooks, budget, cache, rate limits, cost, log, tracing) to the transport and back:
``send → _send (retries) → transport.send``. The two differ only in I/O; everything else is
shared in :class:`_EngineBase`. What users call — :class:`callm.Client` and
:class:`callm.AsyncClient` — builds on these (see :mod:`callm._client`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from .._config.providers import ProviderSpec
from .._config.settings import LOCAL_NOTICE, Settings, split_model
from .._core.endpoint import Endpoint
from .._core.errors import CallmError, InvalidRequestError
from .._core.http import HttpRequest, HttpResponse
from .._core.params import CallParams
from .._core.timeouts import DEFAULT_TIMEOUT, Timeout
from .._core.types import ModelInfo, Request, Response
from .._policies.base import Attempt, CallInfo, Policy
from .._policies.routing import Group, RouterFn, Routes
from ..protocols import WireProtocol, protocol_for
from ..protocols.openai_chat import client as openai_chat
from .pipeline import LazyStore, Pipeline
from .policies import default_policies
from .send import (
    ENCODABLE,
    Call,
    failure,
    log_exchange,
    retrying,
    retrying_async,
    stream_state,
    stream_timeout,
)
from .stream import AsyncReplayStream, AsyncStream, OpeningStream, ReplayStream, Stream

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

    from .._core.embeddings import Embeddings, EmbedRequest
    from .._policies.budget import Budget
    from .._policies.cache import ResponseCache
    from .._policies.hooks import AfterHook, BeforeHook, ErrorHook
    from .._policies.ratelimit import RateLimit
    from .._policies.tokens import TokenCount
    from .._transport import AsyncTransport, Transport
    from .embed import EmbedPlan

logger = logging.getLogger("callm")
_clock = time.perf_counter
_notice_shown = False
_EMPTY: Mapping[str, str] = {}


class _EngineBase:
    """Configuration and the pure half of the send path, shared by both engines."""

    def __init__(
        self,
        *,
        max_retries: int = 2,
        timeout: float | Timeout | None = DEFAULT_TIMEOUT,
        providers: Mapping[str, ProviderSpec | Mapping[str, object]] | None = None,
        env_file: str | Path | None = ".env",
        environ: Mapping[str, str] | None = None,
        aliases: Mapping[str, str] | None = None,
        fallbacks: Mapping[str, Sequence[str]] | None = None,
        fallback_on: tuple[type[BaseException], ...] | None = None,
        groups: Mapping[str, Group | Sequence[str]] | None = None,
        router: RouterFn | None = None,
        before_request: Sequence[BeforeHook] = (),
        after_response: Sequence[AfterHook] = (),
        on_error: Sequence[ErrorHook] = (),
        budget: Budget | None = None,
        rate_limits: Mapping[str, RateLimit] | RateLimit | None = None,
        log: bool = True,
        cache: ResponseCache | None = None,
        tracing: bool = True,
        tracer_provider: TracerProvider | None = None,
        policies: Sequence[Policy] = (),
    ) -> None:
        self.max_retries = max_retries
        self.timeout = Timeout.of(timeout)
        self.settings = Settings(providers=providers, env_file=env_file, environ=environ)
        self._resolved: dict[str, tuple[Endpoint, str]] = {}
        routes = Routes(
            aliases=aliases or {},
            fallbacks=fallbacks or {},
            groups={
                k: v if isinstance(v, Group) else Group(tuple(v)) for k, v in (groups or {}).items()
            },
            router=router,
        )
        if fallback_on is not None:
            routes.fallback_on = fallback_on
        logged = log and self.settings.log_enabled()
        path = self.settings.home / "callm.db"
        store = LazyStore(path)
        chosen = default_policies(
            extra=policies,
            before_request=before_request,
            after_response=after_response,
            on_error=on_error,
            log_path=path,
            log=logged,
            tracing=tracing,
            tracer_provider=tracer_provider,
            budget=budget,
            cache=cache,
            rate_limits=rate_limits,
            store=store,
        )
        self.pipeline = Pipeline(routes=routes, policies=chosen, log=logged, opened_store=store)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(max_retries={self.max_retries}, timeout={self.timeout})"

    def resolve_model(self, model: str | None) -> tuple[Endpoint, str]:
        """The endpoint and provider-side model name of ``"provider/model"`` (or the default)."""
        resolved = self._resolved.get(model)  # type: ignore[arg-type]
        if resolved is not None:
            return resolved
        key = model
        if model is None:
            model, offline = self.settings.default_model()
            if offline:
                _notice_offline()
        provider, name = split_model(model)
        resolved = self.settings.endpoint(provider, name), name
        if key is not None:
            self._resolved[key] = resolved
        return resolved

    def _plan(self, model: str | None, draft: Request) -> list[str | None]:
        """The models to try for this call (just ``model`` unless routing is configured)."""
        routes = self.pipeline.routes
        if not routes.active:
            return [model]
        return routes.plan(model, draft)

    def _attempt(
        self, model: str | None, draft: Request, params: CallParams, tried: tuple[str, ...]
    ) -> tuple[Attempt, Call]:
        """One attempt, admitted and prepared by the policies, and the call that sends it."""
        pipeline = self.pipeline
        endpoint, request = self._addressed(model, draft)
        name = f"{endpoint.provider}/{request.model}"
        tags = params.get("tags") or _EMPTY
        info = CallInfo(name, request, tags, request.stream, params.get("conversation_id"))
        attempt = Attempt(info, endpoint, (*tried, name), params)
        pipeline.admit(attempt)
        wire = protocol_for(endpoint.protocol)
        with ENCODABLE:
            attempt.http = http = wire.encode(endpoint, attempt.info.request)
        pipeline.prepare(attempt)
        return attempt, self._call(endpoint, wire, http, params)

    def _addressed(self, model: str | None, draft: Request) -> tuple[Endpoint, Request]:
        """The endpoint ``model`` resolves to, and the draft with the provider's model name."""
        endpoint, name = self.resolve_model(model)
        return endpoint, draft.with_model(name)

    def _failed(self, attempt: Attempt, error: CallmError, more: bool) -> None:
        """Report a failed attempt; re-raise it unless the next model of the plan takes over."""
        self.pipeline.fail(attempt, error)
        if not (more and self.pipeline.routes.falls_back(error)):
            raise error
        logger.info("callm: %s failed (%s), falling back", attempt.info.model, type(error).__name__)

    def _watched(self, stream: Stream | AsyncStream, attempt: Attempt) -> None:
        """Let the pipeline hear how the stream ends (cost, log, trace, hooks)."""
        pipeline = self.pipeline
        stream.watch(
            lambda r: pipeline.succeed(attempt, r, stream.headers),
            lambda e: pipeline.fail(attempt, e),
            lambda r: pipeline.abandon(attempt, r),
        )

    def _prepared(self, model: str | None, draft: Request, params: CallParams) -> Call:
        """The call a request makes, with no policy applied (for ``http_request``)."""
        endpoint, request = self._addressed(model, draft)
        wire = protocol_for(endpoint.protocol)
        with ENCODABLE:
            http = wire.encode(endpoint, request)
        return self._call(endpoint, wire, http, params)

    def _call(
        self, endpoint: Endpoint, wire: WireProtocol, http: HttpRequest, params: CallParams
    ) -> Call:
        timeout = Timeout.of(params["timeout"]) if "timeout" in params else self.timeout
        retries = params.get("max_retries", self.max_retries)
        return Call(endpoint, wire, http, timeout, retries)

    def _text_call(
        self, model: str | None, prompt: str, stream: bool, params: Mapping[str, Any]
    ) -> Call:
        endpoint, name = self.resolve_model(model)
        if endpoint.protocol != "openai_chat":
            raise InvalidRequestError(
                f"text completions are an OpenAI-compatible endpoint; {endpoint.provider} "
                f"speaks {endpoint.protocol}: use complete() instead"
            )
        options = dict(params)
        call_params: CallParams = {}
        for key in ("timeout", "max_retries"):
            if key in options:
                call_params[key] = options.pop(key)
        with ENCODABLE:
            http = openai_chat.encode_text_completion(endpoint, name, prompt, options, stream)
        return self._call(endpoint, openai_chat, http, call_params)

    def _count_call(
        self, model: str | None, draft: Request, params: CallParams
    ) -> Call | TokenCount:
        """The call to the provider's counting endpoint, or a local count where it has none."""
        endpoint, request = self._addressed(model, draft)
        wire = protocol_for(endpoint.protocol)
        encode = getattr(wire, "encode_count_tokens", None)
        if encode is None:
            from .._policies.tokens import count_locally

            return count_locally(endpoint.protocol, request.model, request)
        with ENCODABLE:
            http = encode(endpoint, request)
        return self._call(endpoint, wire, http, params)

    def _models_call(self, provider: str) -> Call:
        endpoint = self.settings.endpoint(provider)
        wire = protocol_for(endpoint.protocol)
        return self._call(endpoint, wire, wire.encode_models(endpoint), {})


def _notice_offline() -> None:
    global _notice_shown  # noqa: PLW0603 — one notice per process is the point
    if not _notice_shown:
        _notice_shown = True
        logger.warning(LOCAL_NOTICE)


def _on_threads(
    send: Callable[[EmbedRequest], Embeddings], pieces: Sequence[EmbedRequest], plan: EmbedPlan
) -> list[Embeddings]:
    """Send the pieces on a few threads (each in the caller's context: its trace span),
    results in input order; the first failure cancels what has not started."""
    import contextvars
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(min(plan.concurrency, len(pieces)), "callm-embed") as pool:
        futures = [pool.submit(contextvars.copy_context().run, send, p) for p in pieces]
        try:
            return [future.result() for future in futures]
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def _counted(call: Call, response: HttpResponse) -> TokenCount:
    from .._policies.tokens import TokenCount

    tokens: int = getattr(call.wire, "decode_count_tokens")(call.endpoint, response)  # noqa: B009
    return TokenCount(tokens, True, f"{call.endpoint.provider} token counting endpoint")


class Engine(_EngineBase):
    """The synchronous send path, over urllib3 (or the caller's own httpx2 client)."""

    def __init__(self, *, http_client: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._transport: Transport | None = None
        if http_client is not None:
            from .._transport._httpx import HttpxTransport

            self._transport = HttpxTransport(http_client)

    @property
    def transport(self) -> Transport:
        if self._transport is None:
            from .._transport._urllib3 import Urllib3Transport

            self._transport = Urllib3Transport()
        return self._transport

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close pooled connections and write out the call log."""
        if self._transport is not None:
            self._transport.close()
        self.pipeline.flush()

    def send(self, model: str | None, draft: Request, params: CallParams) -> Response:
        """The whole reply to ``draft`` (``draft.stream`` is False), through every policy."""
        plan = self._plan(model, draft)
        tried: tuple[str, ...] = ()
        for index, candidate in enumerate(plan):
            attempt, call = self._attempt(candidate, draft, params, tried)
            tried = attempt.tried
            cached = self.pipeline.answer(attempt)
            if cached is not None:
                return cached
            try:
                self.pipeline.wait(attempt)
                started = _clock()
                http = self._send(call)
                response = call.wire.decode(call.endpoint, http, _clock() - started)
            except CallmError as exc:
                self._failed(attempt, exc, index + 1 < len(plan))
                continue
            return self.pipeline.succeed(attempt, response, http.headers)
        raise AssertionError("a routing plan always holds a model")

    def open(self, model: str | None, draft: Request, params: CallParams) -> Stream:
        """The streamed reply to ``draft`` (``draft.stream`` is True), through every policy."""
        plan = self._plan(model, draft)
        tried: tuple[str, ...] = ()
        for index, candidate in enumerate(plan):
            attempt, call = self._attempt(candidate, draft, params, tried)
            tried = attempt.tried
            cached = self.pipeline.answer(attempt)
            if cached is not None:
                return ReplayStream(cached)
            try:
                self.pipeline.wait(attempt)
                stream = self._open_stream(call)
            except CallmError as exc:
                self._failed(attempt, exc, index + 1 < len(plan))
                continue
            self._watched(stream, attempt)
            return stream
        raise AssertionError("a routing plan always holds a model")

    def text_completion(self, model: str | None, prompt: str, **params: Any) -> Response:
        """The legacy text completions endpoint: ``prompt`` in, ``choices[0].text`` out."""
        call = self._text_call(model, prompt, False, params)
        started = _clock()
        response = self._send(call)
        return call.wire.decode(call.endpoint, response, _clock() - started)

    def stream_text_completion(self, model: str | None, prompt: str, **params: Any) -> Stream:
        """The legacy text completions endpoint, streamed."""
        return self._open_stream(self._text_call(model, prompt, True, params))

    def models(self, provider: str = "openai") -> list[ModelInfo]:
        """The models a provider lists."""
        call = self._models_call(provider)
        return call.wire.decode_models(call.endpoint, self._send(call))

    def count(self, model: str | None, draft: Request, params: CallParams) -> TokenCount:
        """Input tokens of ``draft``: the provider's counting endpoint, else counted here."""
        call = self._count_call(model, draft, params)
        if not isinstance(call, Call):
            return call
        return _counted(call, self._send(call))

    def embed_inputs(
        self,
        model: str | None,
        inputs: str | Iterable[str],
        dimensions: int | None,
        params: Mapping[str, Any],
    ) -> Embeddings:
        """The vectors of ``inputs``: split under the provider's limit, sent on threads."""
        from .embed import joined, plan_embed  # loaded by the first embed() call

        plan = plan_embed(self, model, inputs, dimensions, params)
        started = _clock()
        pieces = plan.pieces
        if len(pieces) <= 1 or plan.concurrency == 1:
            parts = [self._embed_piece(plan, piece) for piece in pieces]
        else:
            parts = _on_threads(lambda piece: self._embed_piece(plan, piece), pieces, plan)
        return joined(plan, parts, _clock() - started)

    def _embed_piece(self, plan: EmbedPlan, piece: EmbedRequest) -> Embeddings:
        from .embed import start_piece

        attempt, call = start_piece(self, plan, piece)
        try:
            self.pipeline.wait(attempt)
            started = _clock()
            http = self._send(call)
            sent = attempt.info.embed or piece
            decoded = plan.codec.decode_embed_response(
                plan.endpoint, sent, http, _clock() - started
            )
        except CallmError as exc:
            self.pipeline.fail(attempt, exc)
            raise
        from .embed import finish_piece

        return finish_piece(self, plan, attempt, decoded, http.headers)

    def _send(self, call: Call) -> HttpResponse:
        """Send with retries; returns a 2xx response or raises the typed error."""
        return retrying(call, self._send_once)

    def _send_once(self, call: Call) -> HttpResponse:
        started = _clock()
        response = self.transport.send(call.http, call.timeout)
        log_exchange(call, response.status, started)
        if response.status >= 400:
            raise failure(call, response)
        return response

    def _open_stream(self, call: Call) -> Stream:
        """Open with retries (only until the stream has begun)."""
        return retrying(call, self._open_once)

    def _open_once(self, call: Call) -> Stream:
        started = _clock()
        body = self.transport.open_stream(call.http, stream_timeout(call.timeout))
        log_exchange(call, body.status, started)
        if body.status >= 400:
            try:
                data = body.read()
            finally:
                body.close()
            raise failure(call, HttpResponse(body.status, body.headers, data))
        return Stream(body, stream_state(call, body, started)).start()


class AsyncEngine(_EngineBase):
    """The asyncio send path, over aiohttp (or the caller's own httpx2 AsyncClient)."""

    def __init__(
        self, *, http_client: Any = None, transport: AsyncTransport | None = None, **kwargs: Any
    ) -> None:
        """``transport``: an ``AsyncTransport`` of callm's own (the gateway's upstream
        client); ``http_client``: your httpx2 AsyncClient."""
        super().__init__(**kwargs)
        self._transport: AsyncTransport | None = transport
        if http_client is not None:
            from .._transport._httpx import AsyncHttpxTransport

            self._transport = AsyncHttpxTransport(http_client)

    def _token_refresh(self, endpoint: Endpoint) -> Awaitable[object] | None:
        """A refresh of ``endpoint``'s access token on a worker thread when one is due, else
        None. Encoding a request takes the provider's current token, and a due refresh
        (google-auth's, for Vertex AI) is a blocking HTTP call: on the event loop it would
        stop every other task until the token endpoint answered."""
        tokens = endpoint.token_provider
        due = getattr(tokens, "due", None)  # a source that can tell (TokenSource, Vertex)
        if due is None or not due():
            return None
        import asyncio

        return asyncio.to_thread(tokens.refresh_ahead)  # type: ignore[union-attr]

    @property
    def transport(self) -> AsyncTransport:
        if self._transport is None:
            from .._transport._aiohttp import AiohttpTransport

            self._transport = AiohttpTransport()
        return self._transport

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close pooled connections and write out the call log."""
        if self._transport is not None:
            await self._transport.close()
        self.pipeline.flush()

    async def send(self, model: str | None, draft: Request, params: CallParams) -> Response:
        """The whole reply to ``draft`` (``draft.stream`` is False), through every policy."""
        plan = self._plan(model, draft)
        tried: tuple[str, ...] = ()
        for index, candidate in enumerate(plan):
            refreshing = self._token_refresh(self.resolve_model(candidate)[0])
            if refreshing is not None:
                await refreshing
            attempt, call = self._attempt(candidate, draft, params, tried)
            tried = attempt.tried
            cached = self.pipeline.answer(attempt)
            if cached is not None:
                return cached
            try:
                await self.pipeline.wait_async(attempt)
                started = _clock()
                http = await self._send(call)
                response = call.wire.decode(call.endpoint, http, _clock() - started)
            except CallmError as exc:
                self._failed(attempt, exc, index + 1 < len(plan))
                continue
            return self.pipeline.succeed(attempt, response, http.headers)
        raise AssertionError("a routing plan always holds a model")

    async def open(self, model: str | None, draft: Request, params: CallParams) -> AsyncStream:
        """The streamed reply to ``draft`` (``draft.stream`` is True), through every policy."""
        plan = self._plan(model, draft)
        tried: tuple[str, ...] = ()
        for index, candidate in enumerate(plan):
            refreshing = self._token_refresh(self.resolve_model(candidate)[0])
            if refreshing is not None:
                await refreshing
            attempt, call = self._attempt(candidate, draft, params, tried)
            tried = attempt.tried
            cached = self.pipeline.answer(attempt)
            if cached is not None:
                return AsyncReplayStream(cached)
            try:
                await self.pipeline.wait_async(attempt)
                stream = await self._open_stream(call)
            except CallmError as exc:
                self._failed(attempt, exc, index + 1 < len(plan))
                continue
            self._watched(stream, attempt)
            return stream
        raise AssertionError("a routing plan always holds a model")

    async def text_completion(self, model: str | None, prompt: str, **params: Any) -> Response:
        """The legacy text completions endpoint: ``prompt`` in, ``choices[0].text`` out."""
        call = self._text_call(model, prompt, False, params)
        started = _clock()
        response = await self._send(call)
        return call.wire.decode(call.endpoint, response, _clock() - started)

    def stream_text_completion(
        self, model: str | None, prompt: str, **params: Any
    ) -> OpeningStream:
        """The legacy text completions endpoint, streamed (``async with`` or ``await`` it)."""
        return OpeningStream(self._open_stream(self._text_call(model, prompt, True, params)))

    async def models(self, provider: str = "openai") -> list[ModelInfo]:
        """The models a provider lists."""
        refreshing = self._token_refresh(self.settings.endpoint(provider))
        if refreshing is not None:
            await refreshing
        call = self._models_call(provider)
        return call.wire.decode_models(call.endpoint, await self._send(call))

    async def count(self, model: str | None, draft: Request, params: CallParams) -> TokenCount:
        """Input tokens of ``draft``: the provider's counting endpoint, else counted here."""
        call = self._count_call(model, draft, params)
        if not isinstance(call, Call):
            return call
        return _counted(call, await self._send(call))

    async def embed_inputs(
        self,
        model: str | None,
        inputs: str | Iterable[str],
        dimensions: int | None,
        params: Mapping[str, Any],
        *,
        on_piece: Callable[[Embeddings], object] | None = None,
    ) -> Embeddings:
        """The vectors of ``inputs``: split under the provider's limit, sent as tasks.

        ``on_piece`` is given each request's priced result as it arrives, so a caller that
        accounts for spend (the gateway's ledger) still knows what was spent when another
        request of the call fails.
        """
        from .embed import joined, plan_embed  # loaded by the first embed() call

        plan = plan_embed(self, model, inputs, dimensions, params)
        started = _clock()
        pieces = plan.pieces
        if len(pieces) <= 1 or plan.concurrency == 1:
            parts = [await self._embed_piece(plan, piece, on_piece) for piece in pieces]
        else:
            parts = await self._embed_concurrently(plan, on_piece)
        return joined(plan, parts, _clock() - started)

    async def _embed_concurrently(
        self, plan: EmbedPlan, on_piece: Callable[[Embeddings], object] | None
    ) -> list[Embeddings]:
        """The pieces as tasks, at most ``plan.concurrency`` at once. The first failure
        stops what has not started; requests already sent finish (as on the sync client's
        threads), so what the provider charged for is priced, logged and reported."""
        import asyncio

        gate = asyncio.Semaphore(plan.concurrency)
        failures: list[BaseException] = []

        async def one(piece: EmbedRequest) -> Embeddings | None:
            async with gate:
                if failures:
                    return None
                try:
                    return await self._embed_piece(plan, piece, on_piece)
                except BaseException as exc:
                    failures.append(exc)
                    raise

        parts = await asyncio.gather(*(one(p) for p in plan.pieces), return_exceptions=True)
        if failures:
            raise failures[0]
        return [p for p in parts if p is not None and not isinstance(p, BaseException)]

    async def _embed_piece(
        self,
        plan: EmbedPlan,
        piece: EmbedRequest,
        on_piece: Callable[[Embeddings], object] | None = None,
    ) -> Embeddings:
        from .embed import start_piece

        refreshing = self._token_refresh(plan.endpoint)
        if refreshing is not None:
            await refreshing
        attempt, call = start_piece(self, plan, piece)
        try:
            await self.pipeline.wait_async(attempt)
            started = _clock()
            http = await self._send(call)
            sent = attempt.info.embed or piece
            decoded = plan.codec.decode_embed_response(
                plan.endpoint, sent, http, _clock() - started
            )
        except CallmError as exc:
            self.pipeline.fail(attempt, exc)
            raise
        from .embed import finish_piece

        part = finish_piece(self, plan, attempt, decoded, http.headers)
        if on_piece is not None:
            on_piece(part)
        return part

    async def _send(self, call: Call) -> HttpResponse:
        """Send with retries; returns a 2xx response or raises the typed error."""
        return await retrying_async(call, self._send_once)

    async def _send_once(self, call: Call) -> HttpResponse:
        started = _clock()
        response = await self.transport.send(call.http, call.timeout)
        log_exchange(call, response.status, started)
        if response.status >= 400:
            raise failure(call, response)
        return response

    async def _open_stream(self, call: Call) -> AsyncStream:
        """Open with retries (only until the stream has begun)."""
        return await retrying_async(call, self._open_once)

    async def _open_once(self, call: Call) -> AsyncStream:
        started = _clock()
        body = await self.transport.open_stream(call.http, stream_timeout(call.timeout))
        log_exchange(call, body.status, started)
        if body.status >= 400:
            try:
                data = await body.read()
            finally:
                await body.close()
            raise failure(call, HttpResponse(body.status, body.headers, data))
        return await AsyncStream(body, stream_state(call, body, started)).start()
