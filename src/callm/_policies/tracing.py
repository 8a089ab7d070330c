"""OpenTelemetry spans for model calls, following the GenAI semantic conventions.

Each call becomes one CLIENT span named ``"{operation} {model}"`` ("chat gpt-4o-mini") that
covers the whole call, retries included, and for a stream stays open until the stream ends.
It carries the ``gen_ai.*`` request, response and usage attributes, ``server.address`` /
``server.port``, ``error.type`` on failure, and callm's own extras under ``callm.*``
(``callm.cost_usd``, ``callm.ttft_s``, ``callm.retries``, ``callm.cached`` …).

Tracing costs next to nothing when it is off: it is off unless ``opentelemetry-api`` is
installed, imported by the application, and a tracer provider is configured (or one is given
to :class:`Tracing`). OpenTelemetry is never imported by ``import callm``.

Message content (prompts, replies) is not recorded unless the application opts in, as the
conventions ask, with ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`` (or
``SPAN_ONLY`` / ``SPAN_AND_EVENT``) or ``Tracing(capture_content=True)``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import lru_cache
from types import ModuleType
from typing import TYPE_CHECKING, Any, assert_never
from urllib.parse import urlsplit

from .._core.types import (
    Document,
    Image,
    Message,
    Part,
    RawPart,
    Reasoning,
    Refusal,
    Request,
    Response,
    Text,
    ToolCall,
    ToolResult,
)
from .base import Attempt, Policy, StateKey

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer, TracerProvider

__all__ = ["CONTENT_ENV", "CallSpan", "Tracing"]

CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
# "true" is the switch of the OpenAI instrumentation; the other two are opentelemetry-util-genai's.
_CONTENT_ON = frozenset({"true", "1", "span_only", "span_and_event"})
_TRACE_MODULE = "opentelemetry.trace"
_PROVIDER_ENV = "OTEL_PYTHON_TRACER_PROVIDER"

# callm provider → the conventions' gen_ai.provider.name; others keep callm's name.
_PROVIDER_NAMES: Mapping[str, str] = {
    "openai": "openai",
    "anthropic": "anthropic",
    "gemini": "gcp.gemini",
    "azure": "azure.ai.openai",
    "groq": "groq",
    "mistral": "mistral_ai",
    "deepseek": "deepseek",
    "xai": "x_ai",
}
# The deprecated gen_ai.system spelled a few names differently from gen_ai.provider.name.
_LEGACY_SYSTEM_NAMES: Mapping[str, str] = {"x_ai": "xai"}

_REQUEST_ATTRIBUTES = (
    ("gen_ai.request.max_tokens", "max_tokens"),
    ("gen_ai.request.temperature", "temperature"),
    ("gen_ai.request.top_p", "top_p"),
    ("gen_ai.request.top_k", "top_k"),
    ("gen_ai.request.seed", "seed"),
)


class Tracing:
    """Makes a span per model call, when OpenTelemetry tracing is configured.

    ``tracer_provider`` is the provider to use; ``None`` means the global one, looked up on
    every call (so a provider configured after the client was built is still honoured).
    ``capture_content`` records prompts and replies on spans; ``None`` reads
    ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` once, here.
    """

    __slots__ = ("_capture", "_env_provider", "_provider", "_tracer")

    def __init__(
        self,
        tracer_provider: TracerProvider | None = None,
        *,
        capture_content: bool | None = None,
    ) -> None:
        self._provider = tracer_provider
        # The provider last seen and its tracer (None for a no-op provider), so the per-call
        # check is an identity comparison.
        self._tracer: tuple[TracerProvider, Tracer | None] | None = None
        if capture_content is None:
            capture_content = os.environ.get(CONTENT_ENV, "").strip().lower() in _CONTENT_ON
        self._capture = capture_content
        self._env_provider = bool(os.environ.get(_PROVIDER_ENV))
        if tracer_provider is None and self._env_provider:
            # A provider named by env var is loaded by OpenTelemetry itself, so the
            # application may never import it: do so here, once, to notice it.
            _trace_module(force=True)

    @classmethod
    def if_available(
        cls, tracer_provider: TracerProvider | None = None, *, capture_content: bool | None = None
    ) -> Tracing | None:
        """A Tracing when ``opentelemetry-api`` is installed, else None (without importing it)."""
        if tracer_provider is None and not _otel_installed():
            return None
        return cls(tracer_provider, capture_content=capture_content)

    def __repr__(self) -> str:
        return f"Tracing(tracer_provider={self._provider!r}, capture_content={self._capture})"

    def start_span(
        self, provider: str, request: Request, base_url: str, operation: str = "chat"
    ) -> CallSpan | None:
        """Open the span of one call, or return None (doing no work) when tracing is off.

        ``provider`` is callm's provider name ("openai"), ``base_url`` the endpoint's, and
        ``operation`` "chat", "text_completion" or "embeddings". End the span with exactly one of
        :meth:`CallSpan.finish`, :meth:`CallSpan.fail` or :meth:`CallSpan.abandon`.
        """
        tracer = self._active_tracer()
        if tracer is None:
            return None
        trace = _trace_module()
        assert trace is not None  # a tracer exists only when OpenTelemetry is importable
        span = tracer.start_span(
            f"{operation} {request.model}",
            kind=trace.SpanKind.CLIENT,
            attributes=_request_attributes(provider, request, base_url, operation),
            # Errors are recorded by fail(), with the partial response; not twice.
            record_exception=False,
            set_status_on_exception=False,
        )
        if self._capture and span.is_recording():
            _set_input_content(span, request.messages)
        return CallSpan(span, self._capture)

    def tracer(self) -> Tracer | None:
        """The tracer spans are made with now, or None when tracing is off (cheap to ask).

        For code that wraps callm's calls in spans of its own (the gateway's server span).
        """
        return self._active_tracer()

    def _active_tracer(self) -> Tracer | None:
        """The tracer to use, or None when tracing is off (the fast path: a dict lookup)."""
        provider = self._provider
        if provider is None:
            trace = _trace_module()
            if trace is None:
                return None
            # Until a provider is set, get_tracer_provider() looks the env var up in
            # os.environ on every call (~1.6 µs); the global it guards answers in ~0.1 µs.
            # Should a later opentelemetry-api drop that global, the public call is used.
            if not self._env_provider and getattr(trace, "_TRACER_PROVIDER", trace) is None:
                return None
            provider = trace.get_tracer_provider()
        cached = self._tracer
        if cached is not None and cached[0] is provider:
            return cached[1]
        return self._new_tracer(provider)

    def _new_tracer(self, provider: TracerProvider) -> Tracer | None:
        trace = _trace_module(force=True)
        if trace is None:
            return None
        # The proxy stands in for the global provider until one is set: tracing is off.
        noop = isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider)
        tracer = None if noop else provider.get_tracer("callm", _callm_version())
        self._tracer = (provider, tracer)
        return tracer


class CallSpan:
    """The open span of one call. End it once: finish, fail or abandon (later calls are ignored).

    A CallSpan belongs to one call and is driven by one thread or task at a time.
    """

    __slots__ = ("_capture", "_retries", "_span")

    def __init__(self, span: Span, capture_content: bool = False) -> None:
        self._span: Span | None = span
        self._capture = capture_content
        self._retries = 0

    def __repr__(self) -> str:
        state = "ended" if self._span is None else "open"
        return f"<CallSpan {state}, {self._retries} retries>"

    @property
    def span(self) -> Span | None:
        """The OpenTelemetry span, or None once it has ended."""
        return self._span

    @contextmanager
    def current(self) -> Iterator[None]:
        """Make this span the current one in a block, so HTTP client spans nest under it."""
        span, trace = self._span, _trace_module()
        if span is None or trace is None:
            yield
            return
        with trace.use_span(
            span, end_on_exit=False, record_exception=False, set_status_on_exception=False
        ):
            yield

    def retrying(self, error: BaseException, delay_s: float | None = None) -> None:
        """Note that an attempt failed with ``error`` and will be retried after ``delay_s``."""
        self._retries += 1
        span = self._span
        if span is None or not span.is_recording():
            return
        attributes: dict[str, Any] = {
            "error.type": type(error).__name__,
            "callm.retry.attempt": self._retries,
        }
        if delay_s is not None:
            attributes["callm.retry.delay_s"] = delay_s
        span.add_event("callm.retry", attributes)

    def finish(self, response: Response, *, cached: bool = False) -> None:
        """End the span of a call that succeeded (a stream: once its Response is complete).

        ``cached`` marks a reply served from callm's response cache.
        """
        span = self._take()
        if span is None:
            return
        if span.is_recording():
            self._set_outcome(span, response)
            span.set_attribute("callm.cached", cached)
        span.end()

    def fail(self, error: BaseException, partial: Response | None = None) -> None:
        """End the span of a call that failed: ``error.type``, status ERROR, the exception.

        ``partial`` (by default the error's ``.partial``) is what a stream received first.
        """
        span = self._take()
        if span is None:
            return
        if span.is_recording():
            _set_error(span, error)
            partial = partial if partial is not None else getattr(error, "partial", None)
            self._set_outcome(span, partial if isinstance(partial, Response) else None)
        span.end()

    def abandon(self, partial: Response | None = None) -> None:
        """End the span of a stream the caller closed early: not an error, status left unset."""
        span = self._take()
        if span is None:
            return
        if span.is_recording():
            span.set_attribute("callm.stream.abandoned", True)
            self._set_outcome(span, partial)
        span.end()

    def _take(self) -> Span | None:
        span, self._span = self._span, None
        return span

    def _set_outcome(self, span: Span, response: Response | None) -> None:
        span.set_attribute("callm.retries", self._retries)
        if response is None:
            return
        span.set_attributes(_response_attributes(response))
        if self._capture:
            _set_output_content(span, response)


# --- attributes ---------------------------------------------------------------------------


_SPAN: StateKey[CallSpan] = StateKey("span")


class TracingPolicy(Policy):
    """An OpenTelemetry span per call: opened as it is prepared, ended however it ends."""

    def __init__(self, tracing: Tracing) -> None:
        self.tracing = tracing

    def __repr__(self) -> str:
        return f"TracingPolicy({self.tracing!r})"

    def prepare(self, attempt: Attempt) -> None:
        endpoint = attempt.endpoint
        info = attempt.info
        operation = "embeddings" if info.embed is not None else "chat"
        span = self.tracing.start_span(
            endpoint.provider, info.request, endpoint.base_url, operation
        )
        if span is not None:
            attempt.put(_SPAN, span)

    def succeeded(
        self, attempt: Attempt, response: Response, headers: Mapping[str, str]
    ) -> Response:
        span = attempt.get(_SPAN)
        if span is not None:
            span.finish(response, cached=attempt.cached)
        return response

    def failed(self, attempt: Attempt, error: BaseException) -> None:
        span = attempt.get(_SPAN)
        if span is not None:
            span.fail(error, getattr(error, "partial", None))

    def abandoned(self, attempt: Attempt, partial: Response) -> None:
        span = attempt.get(_SPAN)
        if span is not None:
            span.abandon(partial)


def _request_attributes(
    provider: str, request: Request, base_url: str, operation: str
) -> dict[str, Any]:
    """The attributes known before the call is sent (given at start, so samplers see them)."""
    name = _PROVIDER_NAMES.get(provider, provider)
    attributes: dict[str, object] = {
        "gen_ai.operation.name": operation,
        "gen_ai.provider.name": name,
        "gen_ai.system": _LEGACY_SYSTEM_NAMES.get(name, name),
        "gen_ai.request.model": request.model,
        "callm.provider": provider,
    }
    for key, field in _REQUEST_ATTRIBUTES:
        value = getattr(request, field)
        if value is not None:
            attributes[key] = value
    if request.stop:
        attributes["gen_ai.request.stop_sequences"] = list(request.stop)
    if request.n is not None and request.n != 1:
        attributes["gen_ai.request.choice.count"] = request.n
    if request.stream:
        attributes["gen_ai.request.stream"] = True
    attributes.update(_server_attributes(base_url))
    return attributes


@lru_cache(maxsize=64)
def _server_attributes(base_url: str) -> Mapping[str, object]:
    """``server.address`` and ``server.port`` of a base URL (parsed once per URL)."""
    try:
        parts = urlsplit(base_url)
        port = parts.port or {"https": 443, "http": 80}.get(parts.scheme)
    except ValueError:  # a malformed port: name the host only
        return {}
    if not parts.hostname:
        return {}
    return {"server.address": parts.hostname} | ({"server.port": port} if port else {})


def _response_attributes(response: Response) -> dict[str, Any]:
    usage = response.usage
    attributes: dict[str, object] = {"gen_ai.response.model": response.model}
    if usage.reported:  # no made-up counts on a span: unreported usage is left out
        attributes["gen_ai.usage.input_tokens"] = usage.input_tokens
        attributes["gen_ai.usage.output_tokens"] = usage.output_tokens
    if response.id:
        attributes["gen_ai.response.id"] = response.id
    reasons = [r for c in (response, *response.choices) if (r := _finish_reason(c))]
    if reasons:
        attributes["gen_ai.response.finish_reasons"] = reasons
    # Zero is the default when a provider does not report these: only real counts are set.
    for key, count in (
        ("gen_ai.usage.cache_read.input_tokens", usage.cached_input_tokens),
        ("gen_ai.usage.cache_creation.input_tokens", usage.cache_write_tokens),
        ("gen_ai.usage.reasoning.output_tokens", usage.reasoning_tokens),
    ):
        if count:
            attributes[key] = count
    if response.cost is not None:
        attributes["callm.cost_usd"] = float(response.cost)
    if response.ttft_s is not None:
        attributes["callm.ttft_s"] = response.ttft_s
        attributes["gen_ai.response.time_to_first_chunk"] = response.ttft_s
    if response.request_id:
        attributes["callm.request_id"] = response.request_id
    return attributes


def _finish_reason(response: Response) -> str | None:
    return response.finish_reason or response.native_finish_reason


def _set_error(span: Span, error: BaseException) -> None:
    trace = _trace_module()
    assert trace is not None  # a span exists only when OpenTelemetry is importable
    span.set_attribute("error.type", type(error).__name__)
    status = getattr(error, "status_code", None)
    if isinstance(status, int):
        span.set_attribute("http.response.status_code", status)
    request_id = getattr(error, "request_id", None)
    if isinstance(request_id, str):
        span.set_attribute("callm.request_id", request_id)
    span.record_exception(error)
    span.set_status(trace.Status(trace.StatusCode.ERROR, str(error)))


# --- message content (opt-in) -------------------------------------------------------------


def _set_input_content(span: Span, messages: tuple[Message, ...]) -> None:
    import json

    system = [p for m in messages if m.role in ("system", "developer") for p in m.content]
    chat = [_message_json(m) for m in messages if m.role not in ("system", "developer")]
    if system:
        span.set_attribute("gen_ai.system_instructions", json.dumps(_parts_json(system)))
    span.set_attribute("gen_ai.input.messages", json.dumps(chat))


def _set_output_content(span: Span, response: Response) -> None:
    import json

    messages = [
        {
            "role": "assistant",
            "parts": _parts_json(choice.content),
            "finish_reason": _finish_reason(choice) or "",
        }
        for choice in (response, *response.choices)
    ]
    span.set_attribute("gen_ai.output.messages", json.dumps(messages))


def _message_json(message: Message) -> dict[str, object]:
    shaped: dict[str, object] = {"role": message.role, "parts": _parts_json(message.content)}
    if message.name:
        shaped["name"] = message.name
    return shaped


def _parts_json(parts: tuple[Part, ...] | list[Part]) -> list[dict[str, object]]:
    return [_part_json(p) for p in parts]


def _part_json(part: Part) -> dict[str, object]:
    """One part in the conventions' message JSON shape; inline (base64) data is left out."""
    match part:
        case Text():
            return {"type": "text", "content": part.text}
        case Image():
            return {"type": "uri", "modality": "image", "uri": _shown_url(part.url)}
        case Document():
            return {"type": "document", "uri": _shown_url(part.url), "mime_type": part.media_type}
        case ToolCall():
            arguments = part.raw_arguments if part.invalid_arguments else dict(part.arguments)
            return {"type": "tool_call", "id": part.id, "name": part.name, "arguments": arguments}
        case ToolResult():
            return {"type": "tool_call_response", "id": part.tool_call_id, "response": part.content}
        case Reasoning():
            return {"type": "reasoning", "content": part.text}
        case Refusal():
            return {"type": "refusal", "content": part.text}
        case RawPart():
            return {"type": part.type, "protocol": part.protocol}
        case _:
            assert_never(part)


def _shown_url(url: str) -> str:
    # A data: URL is a base64 payload: large, and never to be stored.
    return url if not url.startswith("data:") else url.split(",", 1)[0] + ",…"


# --- lazy OpenTelemetry -------------------------------------------------------------------


def _trace_module(force: bool = False) -> ModuleType | None:
    """``opentelemetry.trace`` if the application has imported it (or, with ``force``, if it
    is installed); None otherwise.

    An application that configured a tracer provider has imported this module, so looking
    in ``sys.modules`` is enough on the per-call path — and it never pays for the import.
    """
    module = sys.modules.get(_TRACE_MODULE)
    if module is not None or not force:
        return module
    try:
        from opentelemetry import trace
    except ImportError:
        return None
    return trace


@lru_cache(maxsize=1)
def _otel_installed() -> bool:
    """Whether opentelemetry-api is installed: found on the path, not imported (~0.4 ms once)."""
    from importlib.util import find_spec

    if sys.modules.get(_TRACE_MODULE) is not None:
        return True
    try:
        return find_spec(_TRACE_MODULE) is not None
    except (ImportError, ValueError):  # ValueError: a module whose __spec__ is None
        return False


@lru_cache(maxsize=1)
def _callm_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("callm")
    except PackageNotFoundError:
        return None
