"""``Client`` and ``AsyncClient``: resolve the model, build the request, run the send path.

The send path is a short chain of single-concern steps —
``complete → _send (retries) → transport.send`` — and the two clients differ only in I/O:
everything else (preparing the call, retry decisions, decoding) is shared below.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar, Unpack

from .._config.providers import ProviderSpec
from .._config.settings import LOCAL_NOTICE, Settings, split_model
from .._core.endpoint import Endpoint
from .._core.errors import (
    APIConnectionError,
    APIError,
    CallmError,
    InvalidRequestError,
    RateLimitError,
)
from .._core.http import HttpRequest, HttpResponse, redact_url
from .._core.messages import MessagesInput, ToolInput, to_messages, to_tools
from .._core.timeouts import DEFAULT_TIMEOUT, Timeout
from .._core.types import ModelInfo, Request, Response, ToolCall
from .._policies import retry as _retry
from .._policies.routing import Group, RouterFn, Routes
from ..protocols import WireProtocol, protocol_for
from ..protocols.openai_chat import client as openai_chat
from .pipeline import (
    AfterHook,
    Attempt,
    BeforeHook,
    Budget,
    CallInfo,
    ErrorHook,
    Pipeline,
    estimate_cost,
    warm_prices,
)
from .stream import AsyncReplayStream, AsyncStream, ReplayStream, Stream, StreamState

if TYPE_CHECKING:
    from .._features.conversation import AsyncConversation, Conversation
    from .._features.output import OutputSpec
    from .._features.run import AsyncRunStream, RunStream
    from .._features.tokens import TokenCount
    from .._policies.cache import ResponseCache
    from .._policies.ratelimit import RateLimit
    from .._transport import AsyncStreamBody, AsyncTransport, StreamBody, Transport

logger = logging.getLogger("callm")
T = TypeVar("T")
S = TypeVar("S", Stream, AsyncStream)
_DEFAULT_OUTPUT_GUESS = 1024  # output tokens to reserve when max_tokens is not given
_clock = time.perf_counter
_notice_shown = False


class CallParams(TypedDict, total=False):
    """The optional parameters of a chat call (keyword-only everywhere)."""

    system: str
    max_tokens: int
    temperature: float
    top_p: float
    top_k: int
    stop: str | Sequence[str]
    seed: int
    n: int
    user: str
    tools: Sequence[ToolInput]
    tool_choice: str | Mapping[str, Any]
    response_format: Mapping[str, Any]
    extra_body: Mapping[str, Any]
    extra_headers: Mapping[str, str]
    timeout: float | Timeout | None
    max_retries: int
    # Prompt caching: True places breakpoints / a derived key; a string is the cache key.
    cache: bool | str
    # Structured output: a pydantic model, dataclass, TypedDict or JSON-schema dict.
    output: Any
    output_retries: int
    # Policies of one call: its tags (for budgets, the log), whether it is logged, and
    # whether the client's response cache may answer it.
    tags: Mapping[str, str]
    log: bool
    response_cache: bool
    # The conversation a call belongs to, kept in the call log (conversations set it).
    conversation_id: str


_EMPTY: Mapping[str, Any] = MappingProxyType({})
_REQUEST_FIELDS = (
    "max_tokens",
    "temperature",
    "top_p",
    "top_k",
    "seed",
    "n",
    "user",
    "tool_choice",
)


@dataclass(frozen=True, slots=True)
class _Call:
    """One prepared call: where it goes, what it says, and how patient to be."""

    endpoint: Endpoint
    wire: WireProtocol
    http: HttpRequest
    timeout: Timeout
    max_retries: int


class _ClientBase:
    """Configuration and the pure half of the send path, shared by both clients."""

    def __init__(
        self,
        *,
        max_retries: int = 2,
        timeout: float | Timeout | None = DEFAULT_TIMEOUT,
        providers: Mapping[str, ProviderSpec | Mapping[str, Any]] | None = None,
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
        tracer_provider: Any = None,
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
        warm_prices()
        self.pipeline = Pipeline(
            routes=routes,
            before_request=tuple(before_request),
            after_response=tuple(after_response),
            on_error=tuple(on_error),
            budget=budget,
            limiter=_limiter(rate_limits),
            log=log and self.settings.lookup("CALLM_LOG") not in ("0", "false", "off"),
            tracing=_tracing(tracer_provider) if tracing else None,
            store_path=self.settings.home / "callm.db",
        )
        if cache is not None:
            store = self.pipeline.store() if cache.backend == "sqlite" else None
            from .._policies.cache import CacheStore

            self.pipeline.cache = CacheStore(cache, store)

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
        resolved = self.settings.endpoint(provider), name
        if key is not None:
            self._resolved[key] = resolved
        return resolved

    def build_request(
        self, model: str | None, messages: MessagesInput, stream: bool, params: CallParams
    ) -> tuple[Endpoint, Request]:
        """The provider-neutral Request of a call, and the endpoint it goes to."""
        endpoint, name = self.resolve_model(model)
        fields: dict[str, Any] = {k: params[k] for k in _REQUEST_FIELDS if k in params}  # type: ignore[literal-required]
        stop = params.get("stop")
        request = Request(
            model=name,
            messages=to_messages(messages, params.get("system")),
            stop=(stop,) if isinstance(stop, str) else tuple(stop) if stop else None,
            tools=to_tools(params.get("tools")),
            response_format=_response_format(params),
            stream=stream,
            extra_body=params.get("extra_body") or _EMPTY,
            extra_headers=params.get("extra_headers") or _EMPTY,
            cache=params.get("cache"),
            **fields,
        )
        return endpoint, request

    def _plan(
        self, model: str | None, messages: MessagesInput, stream: bool, params: CallParams
    ) -> list[str | None]:
        """The models to try for this call (just ``model`` unless routing is configured)."""
        routes = self.pipeline.routes
        if not routes.active:
            return [model]
        draft = Request(
            model="", messages=to_messages(messages, params.get("system")), stream=stream
        )
        return routes.plan(model, draft)

    def _attempt(
        self,
        model: str | None,
        messages: MessagesInput,
        stream: bool,
        params: CallParams,
        tried: tuple[str, ...],
    ) -> Attempt:
        """One attempt, prepared and passed through the hooks and the budget."""
        pipeline = self.pipeline
        endpoint, request = self.build_request(model, messages, stream, params)
        name = f"{endpoint.provider}/{request.model}"
        tags = params.get("tags") or _EMPTY
        info = CallInfo(name, request, tags, stream, params.get("conversation_id"))
        if pipeline.before_request:
            info = pipeline.hooks_before(info)
        if pipeline.budget is not None:
            pipeline.check_budget(info, estimate_cost(info, endpoint.provider))
        wire = protocol_for(endpoint.protocol)
        call = self._call(endpoint, wire, wire.encode(endpoint, info.request), params)
        attempt = Attempt(info, call, (*tried, name), params.get("log", pipeline.log))
        if pipeline.cache is not None and params.get("response_cache", True):
            # Streamed or not, the same question has the same cached answer.
            plain = (
                call.http
                if not stream
                else wire.encode(endpoint, replace(info.request, stream=False))
            )
            from .._policies.cache import cache_key

            attempt.cache_key = cache_key(endpoint.provider, plain)
        pipeline.start_span(attempt)
        return attempt

    def _failed(self, attempt: Attempt, error: CallmError, more: bool) -> None:
        """Report a failed attempt; re-raise it unless the next model of the plan takes over."""
        self.pipeline.fail(attempt, error)
        if not (more and self.pipeline.routes.falls_back(error)):
            raise error
        logger.info("callm: %s failed (%s), falling back", attempt.info.model, type(error).__name__)

    def _watched(self, stream: S, attempt: Attempt) -> S:
        """Let the pipeline hear how the stream ends (cost, log, trace, hooks)."""
        pipeline = self.pipeline
        stream.watch(
            lambda r: pipeline.succeed(attempt, r, stream.headers),
            lambda e: pipeline.fail(attempt, e),
            lambda r: pipeline.abandon(attempt, r),
        )
        return stream

    def _prepare(
        self, model: str | None, messages: MessagesInput, stream: bool, params: CallParams
    ) -> _Call:
        endpoint, request = self.build_request(model, messages, stream, params)
        wire = protocol_for(endpoint.protocol)
        return self._call(endpoint, wire, wire.encode(endpoint, request), params)

    def _call(
        self, endpoint: Endpoint, wire: WireProtocol, http: HttpRequest, params: CallParams
    ) -> _Call:
        timeout = Timeout.of(params["timeout"]) if "timeout" in params else self.timeout
        retries = params.get("max_retries", self.max_retries)
        return _Call(endpoint, wire, http, timeout, retries)

    def http_request(
        self,
        model: str | None,
        messages: MessagesInput,
        *,
        stream: bool = False,
        **params: Unpack[CallParams],
    ) -> HttpRequest:
        """The exact HTTP request a call would send (for ``--curl`` and debugging)."""
        return self._prepare(model, messages, stream, params).http

    def _text_call(
        self, model: str | None, prompt: str, stream: bool, params: Mapping[str, Any]
    ) -> _Call:
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
        http = openai_chat.encode_text_completion(endpoint, name, prompt, options, stream)
        return self._call(endpoint, openai_chat, http, call_params)

    def _count_call(
        self, model: str | None, messages: MessagesInput, params: CallParams
    ) -> _Call | TokenCount:
        """The call to the provider's counting endpoint, or a local count where it has none."""
        endpoint, request = self.build_request(model, messages, False, params)
        wire = protocol_for(endpoint.protocol)
        encode = getattr(wire, "encode_count_tokens", None)
        if encode is None:
            from .._features.tokens import count_locally

            return count_locally(endpoint.protocol, request.model, request)
        return self._call(endpoint, wire, encode(endpoint, request), params)

    def _models_call(self, provider: str) -> _Call:
        endpoint = self.settings.endpoint(provider)
        wire = protocol_for(endpoint.protocol)
        return self._call(endpoint, wire, wire.encode_models(endpoint), {})


def _response_format(params: CallParams) -> Mapping[str, Any] | None:
    """The response format of a call: the one given, or the one ``output=`` implies."""
    if params.get("output") is None:
        return params.get("response_format")
    from .._features.output import response_format

    return response_format(params)


def _structured(stream: S, spec: OutputSpec) -> S:
    """A stream of a call with ``output=`` (already opened without it) that parses as it goes."""
    from .._features.partial import PartialParser

    stream._expect_output(PartialParser(spec))
    return stream


def _notice_offline() -> None:
    global _notice_shown  # noqa: PLW0603 — one notice per process is the point
    if not _notice_shown:
        _notice_shown = True
        logger.warning(LOCAL_NOTICE)


def _failure(call: _Call, response: HttpResponse) -> APIError:
    return call.wire.decode_failure(call.endpoint, response)


def _counted(call: _Call, response: HttpResponse) -> TokenCount:
    from .._features.tokens import TokenCount

    tokens: int = getattr(call.wire, "decode_count_tokens")(call.endpoint, response)  # noqa: B009
    return TokenCount(tokens, True, f"{call.endpoint.provider} token counting endpoint")


def _stream_timeout(timeout: Timeout) -> Timeout:
    """Streams wait on the socket no longer than the idle timeout allows."""
    if timeout.idle is None or (timeout.read is not None and timeout.read <= timeout.idle):
        return timeout
    return replace(timeout, read=timeout.idle)


def _retrying(call: _Call, attempt_once: Callable[[_Call], T]) -> T:
    """Run one attempt after another until one succeeds or an error must surface."""
    attempt, began = 0, _clock()
    while True:
        try:
            return attempt_once(call)
        except APIError as exc:
            delay = _retry_wait(call, attempt, exc, began)
            if delay is None:
                raise
        time.sleep(delay)
        attempt += 1


async def _retrying_async(call: _Call, attempt_once: Callable[[_Call], Awaitable[T]]) -> T:
    """The async twin of :func:`_retrying`."""
    import asyncio  # ~40 ms to import: only async users pay for it

    attempt, began = 0, _clock()
    while True:
        try:
            return await attempt_once(call)
        except APIError as exc:
            delay = _retry_wait(call, attempt, exc, began)
            if delay is None:
                raise
        await asyncio.sleep(delay)
        attempt += 1


def _retry_wait(call: _Call, attempt: int, error: APIError, began: float) -> float | None:
    """Seconds to wait before retrying, or None when this error must surface now."""
    error.provider = error.provider or call.endpoint.provider
    if attempt >= call.max_retries:
        return None
    headers = error.headers
    hint = error.retry_after if isinstance(error, RateLimitError) else None
    retryable = isinstance(error, APIConnectionError) or (
        error.status_code is not None and _retry.should_retry(error.status_code, headers, hint)
    )
    if not retryable:
        return None
    delay = _retry.retry_delay(attempt, headers, hint)
    total = call.timeout.total
    if total is not None and _clock() - began + delay >= total:
        return None  # the total timeout would run out before the next attempt could answer
    logger.info(
        "callm: %s on %s, retry %d/%d in %.2f s",
        type(error).__name__,
        redact_url(call.http.url),
        attempt + 1,
        call.max_retries,
        delay,
    )
    return delay


def _log(call: _Call, status: int, started: float) -> None:
    if not logger.isEnabledFor(logging.DEBUG):
        return
    logger.debug(
        "%s %s -> %d in %.1f ms",
        call.http.method,
        redact_url(call.http.url),
        status,
        (_clock() - started) * 1000,
    )


class Client(_ClientBase):
    """A synchronous client for every provider. Reuse one: it keeps connections alive.

    ``Client(max_retries=2, timeout=60)`` reads keys and base URLs from the environment,
    a ``.env`` file or ``callm keys set``; ``http_client`` takes your own ``httpx2.Client``.
    """

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

    def __enter__(self) -> Client:
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
            from .._features.output import complete as complete_structured

            return complete_structured(self, model, messages, params)
        plan = self._plan(model, messages, False, params)
        tried: tuple[str, ...] = ()
        for index, candidate in enumerate(plan):
            attempt = self._attempt(candidate, messages, False, params, tried)
            tried = attempt.tried
            cached = self.pipeline.cached(attempt)
            if cached is not None:
                return cached
            try:
                self._acquire(attempt)
                call, started = attempt.call, _clock()
                http = self._send(call)
                response = call.wire.decode(call.endpoint, http, _clock() - started)
            except CallmError as exc:
                self._failed(attempt, exc, index + 1 < len(plan))
                continue
            return self.pipeline.succeed(attempt, response, http.headers)
        raise AssertionError("a routing plan always holds a model")

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
            from .._features.output import stream_params

            spec, inner = stream_params(params)
            return _structured(self.stream(model, messages, **inner), spec)
        plan = self._plan(model, messages, True, params)
        tried: tuple[str, ...] = ()
        for index, candidate in enumerate(plan):
            attempt = self._attempt(candidate, messages, True, params, tried)
            tried = attempt.tried
            cached = self.pipeline.cached(attempt)
            if cached is not None:
                return ReplayStream(cached)
            try:
                self._acquire(attempt)
                stream = self._open_stream(attempt.call)
            except CallmError as exc:
                self._failed(attempt, exc, index + 1 < len(plan))
                continue
            return self._watched(stream, attempt)
        raise AssertionError("a routing plan always holds a model")

    def _acquire(self, attempt: Attempt) -> None:
        """Wait for the client-side rate limit, if one applies."""
        limiter = self.pipeline.limiter
        if limiter is not None:
            provider, _, model = attempt.info.model.partition("/")
            attempt.reservation = limiter.acquire(provider, model, _tokens_wanted(attempt))

    def run(
        self,
        model: str | None = None,
        messages: MessagesInput = "",
        *,
        max_steps: int = 10,
        approve: Callable[[ToolCall], Any] | None = None,
        **params: Unpack[CallParams],
    ) -> Response:
        """Call the model, run the tools it asks for, send the results back, until it answers.

        Returns the final Response with ``transcript`` holding every message of the exchange;
        its ``usage`` and ``cost`` cover every model call of the run.
        """
        from .._features.run import run_tools

        return run_tools(self, model, messages, params, max_steps=max_steps, approve=approve)

    def run_stream(
        self,
        model: str | None = None,
        messages: MessagesInput = "",
        *,
        max_steps: int = 10,
        approve: Callable[[ToolCall], Any] | None = None,
        **params: Unpack[CallParams],
    ) -> RunStream:
        """:meth:`run`, streamed: the events of every step, and each tool result as it is made."""
        from .._features.run import RunStream

        return RunStream(self, model, messages, params, max_steps=max_steps, approve=approve)

    def conversation(
        self, model: str | None = None, *, system: str | None = None, **options: Any
    ) -> Conversation:
        """A conversation that keeps its history, fitted to the model's context window.

        ``conv.send("hi")`` / ``conv.stream("hi")`` send the history with each message;
        ``id=`` resumes a stored conversation. Options: ``id``, ``strategy``
        (``"drop_oldest"`` | ``"summarize"``), ``context_window``, ``max_output_tokens``,
        ``summary_model``, ``persist``, and call defaults (see :class:`callm.Conversation`).
        """
        from .._features.conversation import Conversation

        return Conversation(self, model, system=system, **options)

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

    def count_tokens(
        self, model: str | None, messages: MessagesInput, **params: Unpack[CallParams]
    ) -> TokenCount:
        """Input tokens of a request, counted the best way available (see ``TokenCount.method``).

        The provider's counting endpoint (Anthropic, Gemini), else OpenAI's tokenizer for
        OpenAI models when its data is on disk (``pip install callm[tokenizer]``), else a
        conservative estimate. Only an endpoint count sends anything.
        """
        call = self._count_call(model, messages, params)
        if not isinstance(call, _Call):
            return call
        return _counted(call, self._send(call))

    def _send(self, call: _Call) -> HttpResponse:
        """Send with retries; returns a 2xx response or raises the typed error."""
        return _retrying(call, self._send_once)

    def _send_once(self, call: _Call) -> HttpResponse:
        started = _clock()
        response = self.transport.send(call.http, call.timeout)
        _log(call, response.status, started)
        if response.status >= 400:
            raise _failure(call, response)
        return response

    def _open_stream(self, call: _Call) -> Stream:
        """Open with retries (only until the stream has begun)."""
        return _retrying(call, self._open_once)

    def _open_once(self, call: _Call) -> Stream:
        started = _clock()
        body = self.transport.open_stream(call.http, _stream_timeout(call.timeout))
        _log(call, body.status, started)
        if body.status >= 400:
            try:
                data = body.read()
            finally:
                body.close()
            raise _failure(call, HttpResponse(body.status, body.headers, data))
        return Stream(body, _stream_state(call, body, started))


class AsyncClient(_ClientBase):
    """The asyncio client: the same methods as :class:`Client`, awaited.

    It runs on aiohttp by default; ``http_client`` takes your own ``httpx2.AsyncClient``.
    """

    def __init__(self, *, http_client: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._transport: AsyncTransport | None = None
        if http_client is not None:
            from .._transport._httpx import AsyncHttpxTransport

            self._transport = AsyncHttpxTransport(http_client)

    @property
    def transport(self) -> AsyncTransport:
        if self._transport is None:
            from .._transport._aiohttp import AiohttpTransport

            self._transport = AiohttpTransport()
        return self._transport

    async def __aenter__(self) -> AsyncClient:
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
            from .._features.output import complete_async

            return await complete_async(self, model, messages, params)
        plan = self._plan(model, messages, False, params)
        tried: tuple[str, ...] = ()
        for index, candidate in enumerate(plan):
            attempt = self._attempt(candidate, messages, False, params, tried)
            tried = attempt.tried
            cached = self.pipeline.cached(attempt)
            if cached is not None:
                return cached
            try:
                await self._acquire(attempt)
                call, started = attempt.call, _clock()
                http = await self._send(call)
                response = call.wire.decode(call.endpoint, http, _clock() - started)
            except CallmError as exc:
                self._failed(attempt, exc, index + 1 < len(plan))
                continue
            return self.pipeline.succeed(attempt, response, http.headers)
        raise AssertionError("a routing plan always holds a model")

    async def stream(
        self,
        model: str | None = None,
        messages: MessagesInput = "",
        **params: Unpack[CallParams],
    ) -> AsyncStream:
        """Stream a reply: ``async with await client.stream(…) as s: async for ev in s``.

        With ``output=``: PartialOutput events and ``parsed``, as in :meth:`Client.stream`.
        """
        if params.get("output") is not None:
            from .._features.output import stream_params

            spec, inner = stream_params(params)
            return _structured(await self.stream(model, messages, **inner), spec)
        plan = self._plan(model, messages, True, params)
        tried: tuple[str, ...] = ()
        for index, candidate in enumerate(plan):
            attempt = self._attempt(candidate, messages, True, params, tried)
            tried = attempt.tried
            cached = self.pipeline.cached(attempt)
            if cached is not None:
                return AsyncReplayStream(cached)
            try:
                await self._acquire(attempt)
                stream = await self._open_stream(attempt.call)
            except CallmError as exc:
                self._failed(attempt, exc, index + 1 < len(plan))
                continue
            return self._watched(stream, attempt)
        raise AssertionError("a routing plan always holds a model")

    async def _acquire(self, attempt: Attempt) -> None:
        """Wait for the client-side rate limit, if one applies."""
        limiter = self.pipeline.limiter
        if limiter is not None:
            provider, _, model = attempt.info.model.partition("/")
            wanted = _tokens_wanted(attempt)
            attempt.reservation = await limiter.acquire_async(provider, model, wanted)

    async def run(
        self,
        model: str | None = None,
        messages: MessagesInput = "",
        *,
        max_steps: int = 10,
        approve: Callable[[ToolCall], Any] | None = None,
        **params: Unpack[CallParams],
    ) -> Response:
        """:meth:`Client.run`, awaited; parallel tool calls run concurrently."""
        from .._features.run import run_tools_async

        return await run_tools_async(
            self, model, messages, params, max_steps=max_steps, approve=approve
        )

    def run_stream(
        self,
        model: str | None = None,
        messages: MessagesInput = "",
        *,
        max_steps: int = 10,
        approve: Callable[[ToolCall], Any] | None = None,
        **params: Unpack[CallParams],
    ) -> AsyncRunStream:
        """:meth:`run`, streamed: ``async with ac.run_stream(…) as s: async for ev in s``."""
        from .._features.run import AsyncRunStream

        return AsyncRunStream(self, model, messages, params, max_steps=max_steps, approve=approve)

    def conversation(
        self, model: str | None = None, *, system: str | None = None, **options: Any
    ) -> AsyncConversation:
        """An async conversation: ``await conv.send("hi")``; see :meth:`Client.conversation`."""
        from .._features.conversation import AsyncConversation

        return AsyncConversation(self, model, system=system, **options)

    async def text_completion(self, model: str | None, prompt: str, **params: Any) -> Response:
        """The legacy text completions endpoint: ``prompt`` in, ``choices[0].text`` out."""
        call = self._text_call(model, prompt, False, params)
        started = _clock()
        response = await self._send(call)
        return call.wire.decode(call.endpoint, response, _clock() - started)

    async def stream_text_completion(
        self, model: str | None, prompt: str, **params: Any
    ) -> AsyncStream:
        """The legacy text completions endpoint, streamed."""
        return await self._open_stream(self._text_call(model, prompt, True, params))

    async def models(self, provider: str = "openai") -> list[ModelInfo]:
        """The models a provider lists."""
        call = self._models_call(provider)
        return call.wire.decode_models(call.endpoint, await self._send(call))

    async def count_tokens(
        self, model: str | None, messages: MessagesInput, **params: Unpack[CallParams]
    ) -> TokenCount:
        """Input tokens of a request, counted the best way available (see ``TokenCount.method``).

        The provider's counting endpoint (Anthropic, Gemini), else OpenAI's tokenizer for
        OpenAI models when its data is on disk (``pip install callm[tokenizer]``), else a
        conservative estimate. Only an endpoint count sends anything.
        """
        call = self._count_call(model, messages, params)
        if not isinstance(call, _Call):
            return call
        return _counted(call, await self._send(call))

    async def _send(self, call: _Call) -> HttpResponse:
        """Send with retries; returns a 2xx response or raises the typed error."""
        return await _retrying_async(call, self._send_once)

    async def _send_once(self, call: _Call) -> HttpResponse:
        started = _clock()
        response = await self.transport.send(call.http, call.timeout)
        _log(call, response.status, started)
        if response.status >= 400:
            raise _failure(call, response)
        return response

    async def _open_stream(self, call: _Call) -> AsyncStream:
        """Open with retries (only until the stream has begun)."""
        return await _retrying_async(call, self._open_once)

    async def _open_once(self, call: _Call) -> AsyncStream:
        started = _clock()
        body = await self.transport.open_stream(call.http, _stream_timeout(call.timeout))
        _log(call, body.status, started)
        if body.status >= 400:
            try:
                data = await body.read()
            finally:
                await body.close()
            raise _failure(call, HttpResponse(body.status, body.headers, data))
        return AsyncStream(body, _stream_state(call, body, started))


def _tokens_wanted(attempt: Attempt) -> int:
    """Tokens a call may use, for token-per-minute limits: its prompt and its output cap."""
    request = attempt.info.request
    from .._features.tokens import estimate

    return estimate(request).tokens + (request.max_tokens or _DEFAULT_OUTPUT_GUESS)


def _limiter(limits: Mapping[str, RateLimit] | RateLimit | None) -> Any:
    if not limits:
        return None
    from .._policies.ratelimit import RateLimiter

    return RateLimiter(limits)


def _tracing(tracer_provider: Any) -> Any:
    """A tracer when OpenTelemetry is installed (spans are no-ops until it is configured)."""
    from .._policies.tracing import Tracing

    return Tracing.if_available(tracer_provider)


def _stream_state(call: _Call, body: StreamBody | AsyncStreamBody, started: float) -> StreamState:
    from ..protocols._shared.errors import request_id_of

    decoder = call.wire.stream_decoder(call.endpoint, request_id_of(body.headers))
    return StreamState(decoder, call.timeout, started)
