"""Spans following the OpenTelemetry GenAI conventions, read back from an in-memory exporter.

Each test injects its own TracerProvider: the global one can be set only once per process.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from decimal import Decimal

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import SpanKind, StatusCode

from callm import (
    APIConnectionError,
    Image,
    Message,
    RateLimitError,
    Request,
    Response,
    StreamInterruptedError,
    Text,
    ToolCall,
    Usage,
)
from callm._policies.tracing import CONTENT_ENV, CallSpan, Tracing, _otel_installed

REQUEST = Request(
    model="gpt-4o-mini",
    messages=(Message.system("Be brief."), Message.user("Hi")),
    max_tokens=100,
    temperature=0.7,
    top_p=0.9,
    top_k=40,
    stop=("END", "STOP"),
    seed=7,
)
RESPONSE = Response(
    id="chatcmpl-123",
    model="gpt-4o-mini-2024-07-18",
    provider="openai",
    content=(Text("Hello!"),),
    finish_reason="stop",
    usage=Usage(input_tokens=12, output_tokens=3, cached_input_tokens=4),
    request_id="req_abc",
    latency_s=0.25,
    ttft_s=0.1,
    cost=Decimal("0.0000123"),
)


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    yield exporter
    exporter.shutdown()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider
    provider.shutdown()


@pytest.fixture
def tracing(provider: TracerProvider) -> Tracing:
    return Tracing(provider, capture_content=False)


def start(tracing: Tracing, request: Request = REQUEST, **kw: str) -> CallSpan:
    span = tracing.start_span("openai", request, "https://api.openai.com/v1", **kw)
    assert span is not None
    return span


def only_span(exporter: InMemorySpanExporter) -> ReadableSpan:
    spans = exporter.get_finished_spans()
    assert len(spans) == 1
    return spans[0]


def test_success_span_follows_the_genai_conventions(
    tracing: Tracing, exporter: InMemorySpanExporter
) -> None:
    start(tracing).finish(RESPONSE)

    span = only_span(exporter)
    assert span.name == "chat gpt-4o-mini"
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET  # the conventions: leave OK unset
    assert dict(span.attributes or {}) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.system": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.request.max_tokens": 100,
        "gen_ai.request.temperature": 0.7,
        "gen_ai.request.top_p": 0.9,
        "gen_ai.request.top_k": 40,
        "gen_ai.request.stop_sequences": ("END", "STOP"),
        "gen_ai.request.seed": 7,
        "server.address": "api.openai.com",
        "server.port": 443,
        "callm.provider": "openai",
        "gen_ai.response.id": "chatcmpl-123",
        "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.usage.input_tokens": 12,
        "gen_ai.usage.output_tokens": 3,
        "gen_ai.usage.cache_read.input_tokens": 4,
        "gen_ai.response.time_to_first_chunk": 0.1,
        "callm.ttft_s": 0.1,
        "callm.cost_usd": 0.0000123,
        "callm.request_id": "req_abc",
        "callm.retries": 0,
        "callm.cached": False,
    }


def test_no_message_content_by_default(tracing: Tracing, exporter: InMemorySpanExporter) -> None:
    start(tracing).finish(RESPONSE)

    attributes = only_span(exporter).attributes or {}
    assert not [k for k in attributes if "messages" in k or "instructions" in k]
    assert "Hi" not in repr(dict(attributes)) and "Hello!" not in repr(dict(attributes))


def test_unset_request_fields_and_unknown_cost_are_left_out(
    tracing: Tracing, exporter: InMemorySpanExporter
) -> None:
    request = Request(model="m", messages=(Message.user("Hi"),), stream=True, n=2)
    response = Response("", "m", "openai", (), None, Usage(), cost=None)
    start(tracing, request, operation="text_completion").finish(response, cached=True)

    span = only_span(exporter)
    attributes = span.attributes or {}
    assert span.name == "text_completion m"
    assert attributes["gen_ai.operation.name"] == "text_completion"
    assert attributes["gen_ai.request.stream"] is True
    assert attributes["gen_ai.request.choice.count"] == 2
    assert attributes["callm.cached"] is True
    for absent in (
        "gen_ai.request.max_tokens",
        "gen_ai.request.temperature",
        "gen_ai.request.stop_sequences",
        "gen_ai.response.id",
        "gen_ai.response.finish_reasons",
        "gen_ai.usage.cache_read.input_tokens",
        "callm.cost_usd",
        "callm.ttft_s",
    ):
        assert absent not in attributes


def test_every_choice_gives_a_finish_reason(
    tracing: Tracing, exporter: InMemorySpanExporter
) -> None:
    second = Response("x", "m", "openai", (Text("b"),), "length", Usage())
    response = Response("x", "m", "openai", (Text("a"),), "stop", Usage(), choices=(second,))
    start(tracing).finish(response)

    reasons = (only_span(exporter).attributes or {})["gen_ai.response.finish_reasons"]
    assert reasons == ("stop", "length")


NAMES = {
    # provider: (base URL, gen_ai.provider.name, gen_ai.system, server.address, server.port)
    "anthropic": ("https://api.anthropic.com", "anthropic", "anthropic", "api.anthropic.com", 443),
    "gemini": (
        "https://generativelanguage.googleapis.com/v1beta",
        "gcp.gemini",
        "gcp.gemini",
        "generativelanguage.googleapis.com",
        443,
    ),
    "azure": (
        "https://res.openai.azure.com/openai",
        "azure.ai.openai",
        "azure.ai.openai",
        "res.openai.azure.com",
        443,
    ),
    "mistral": ("https://api.mistral.ai/v1", "mistral_ai", "mistral_ai", "api.mistral.ai", 443),
    "xai": ("https://api.x.ai/v1", "x_ai", "xai", "api.x.ai", 443),
    "ollama": ("http://localhost:11434/v1", "ollama", "ollama", "localhost", 11434),
    "vllm": ("http://10.0.0.5/v1", "vllm", "vllm", "10.0.0.5", 80),
}


@pytest.mark.parametrize("provider_name", NAMES)
def test_provider_and_server_names(
    tracing: Tracing, exporter: InMemorySpanExporter, provider_name: str
) -> None:
    base_url, *expected = NAMES[provider_name]
    span = tracing.start_span(provider_name, REQUEST, str(base_url))
    assert span is not None
    span.finish(RESPONSE)

    attributes = only_span(exporter).attributes or {}
    names = ("gen_ai.provider.name", "gen_ai.system", "server.address", "server.port")
    assert [attributes[k] for k in names] == expected
    assert attributes["callm.provider"] == provider_name


def test_failure_sets_error_type_status_and_exception_event(
    tracing: Tracing, exporter: InMemorySpanExporter
) -> None:
    error = RateLimitError("slow down", provider="openai", status_code=429, request_id="req_9")
    start(tracing).fail(error)

    span = only_span(exporter)
    attributes = span.attributes or {}
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == str(error)
    assert attributes["error.type"] == "RateLimitError"
    assert attributes["http.response.status_code"] == 429
    assert attributes["callm.request_id"] == "req_9"
    assert "gen_ai.usage.input_tokens" not in attributes  # no reply: no usage to report
    [event] = span.events
    assert event.name == "exception"
    assert (event.attributes or {})["exception.type"].endswith("RateLimitError")
    assert (event.attributes or {})["exception.message"] == str(error)


def test_failure_after_a_stream_began_reports_the_partial_reply(
    tracing: Tracing, exporter: InMemorySpanExporter
) -> None:
    partial = Response("r1", "m", "openai", (Text("Hel"),), None, Usage(10, 2))
    error = StreamInterruptedError("connection reset", partial=partial)
    start(tracing, Request("m", (Message.user("Hi"),), stream=True)).fail(error)

    span = only_span(exporter)
    attributes = span.attributes or {}
    assert attributes["error.type"] == "StreamInterruptedError"
    assert "http.response.status_code" not in attributes
    assert attributes["gen_ai.usage.output_tokens"] == 2
    assert attributes["gen_ai.response.id"] == "r1"
    assert span.status.status_code is StatusCode.ERROR


def test_a_non_callm_exception_is_reported_too(
    tracing: Tracing, exporter: InMemorySpanExporter
) -> None:
    start(tracing).fail(KeyboardInterrupt())

    span = only_span(exporter)
    assert (span.attributes or {})["error.type"] == "KeyboardInterrupt"
    assert span.status.status_code is StatusCode.ERROR


def test_retries_are_counted_and_recorded_as_events(
    tracing: Tracing, exporter: InMemorySpanExporter
) -> None:
    span = start(tracing)
    span.retrying(RateLimitError("429"), delay_s=0.5)
    span.retrying(APIConnectionError("reset"))
    span.finish(RESPONSE)

    exported = only_span(exporter)
    assert (exported.attributes or {})["callm.retries"] == 2
    events = [(e.name, dict(e.attributes or {})) for e in exported.events]
    assert events == [
        (
            "callm.retry",
            {"error.type": "RateLimitError", "callm.retry.attempt": 1, "callm.retry.delay_s": 0.5},
        ),
        ("callm.retry", {"error.type": "APIConnectionError", "callm.retry.attempt": 2}),
    ]


def test_stream_span_stays_open_until_finished(
    tracing: Tracing, exporter: InMemorySpanExporter
) -> None:
    request = Request("gpt-4o-mini", (Message.user("Hi"),), stream=True)
    span = start(tracing, request)
    assert exporter.get_finished_spans() == ()  # open while the stream runs
    assert span.span is not None and span.span.is_recording()

    span.finish(RESPONSE)

    exported = only_span(exporter)
    attributes = exported.attributes or {}
    assert attributes["gen_ai.request.stream"] is True
    assert attributes["gen_ai.response.time_to_first_chunk"] == 0.1
    assert attributes["gen_ai.usage.output_tokens"] == 3
    assert "callm.stream.abandoned" not in attributes
    assert exported.status.status_code is StatusCode.UNSET
    assert span.span is None


def test_stream_abandoned_is_not_an_error(tracing: Tracing, exporter: InMemorySpanExporter) -> None:
    partial = Response("r1", "m", "openai", (Text("Hel"),), None, Usage(10, 2))
    start(tracing, Request("m", (Message.user("Hi"),), stream=True)).abandon(partial)

    span = only_span(exporter)
    attributes = span.attributes or {}
    assert span.status.status_code is StatusCode.UNSET
    assert attributes["callm.stream.abandoned"] is True
    assert attributes["gen_ai.usage.output_tokens"] == 2
    assert "error.type" not in attributes
    assert span.events == ()


def test_a_span_ends_once_whatever_is_called_after(
    tracing: Tracing, exporter: InMemorySpanExporter
) -> None:
    span = start(tracing)
    span.finish(RESPONSE)
    span.fail(APIConnectionError("late"))
    span.abandon()
    span.finish(RESPONSE)

    exported = only_span(exporter)
    assert "error.type" not in (exported.attributes or {})
    assert exported.status.status_code is StatusCode.UNSET


def test_current_makes_the_span_the_parent_of_nested_spans(
    tracing: Tracing, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    span = start(tracing)
    with span.current(), provider.get_tracer("http").start_as_current_span("POST"):
        pass
    span.finish(RESPONSE)

    child, parent = exporter.get_finished_spans()
    assert child.parent is not None and parent.context is not None
    assert child.parent.span_id == parent.context.span_id
    assert trace.get_current_span() is trace.INVALID_SPAN  # the context was restored


def test_span_nests_under_the_callers_current_span(
    tracing: Tracing, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    with provider.get_tracer("app").start_as_current_span("handle request"):
        start(tracing).finish(RESPONSE)

    call, outer = exporter.get_finished_spans()
    assert call.parent is not None and outer.context is not None
    assert call.parent.span_id == outer.context.span_id


# --- message content, opt-in ---------------------------------------------------------------


def test_content_captured_when_opted_in(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    request = Request(
        "gpt-4o-mini",
        (
            Message.system("Be brief."),
            Message.user("What is this?", Image.from_bytes(b"\x89PNG")),
        ),
    )
    response = Response(
        "r",
        "m",
        "openai",
        (Text("Let me look."), ToolCall("call_1", "lookup", {"q": "png"})),
        "tool_calls",
        Usage(),
    )
    tracing = Tracing(provider, capture_content=True)
    span = tracing.start_span("openai", request, "https://api.openai.com/v1")
    assert span is not None
    span.finish(response)

    attributes = only_span(exporter).attributes or {}
    assert json.loads(str(attributes["gen_ai.system_instructions"])) == [
        {"type": "text", "content": "Be brief."}
    ]
    assert json.loads(str(attributes["gen_ai.input.messages"])) == [
        {
            "role": "user",
            "parts": [
                {"type": "text", "content": "What is this?"},
                # Inline image bytes are never copied into telemetry.
                {"type": "uri", "modality": "image", "uri": "data:image/png;base64,…"},
            ],
        }
    ]
    assert json.loads(str(attributes["gen_ai.output.messages"])) == [
        {
            "role": "assistant",
            "parts": [
                {"type": "text", "content": "Let me look."},
                {"type": "tool_call", "id": "call_1", "name": "lookup", "arguments": {"q": "png"}},
            ],
            "finish_reason": "tool_calls",
        }
    ]


@pytest.mark.parametrize(
    ("value", "captured"),
    [("true", True), ("SPAN_ONLY", True), ("NO_CONTENT", False), ("false", False)],
)
def test_content_capture_follows_the_conventions_env_var(
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
    monkeypatch: pytest.MonkeyPatch,
    value: str,
    captured: bool,
) -> None:
    monkeypatch.setenv(CONTENT_ENV, value)
    span = Tracing(provider).start_span("openai", REQUEST, "https://api.openai.com/v1")
    assert span is not None
    span.finish(RESPONSE)

    attributes = only_span(exporter).attributes or {}
    assert ("gen_ai.input.messages" in attributes) is captured
    assert ("gen_ai.output.messages" in attributes) is captured


# --- the no-op paths ------------------------------------------------------------------------


def test_no_global_provider_means_no_span() -> None:
    # Precondition: nothing in this process configured the global provider.
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)

    assert Tracing().start_span("openai", REQUEST, "https://api.openai.com/v1") is None


def test_noop_provider_means_no_span() -> None:
    class Untouchable(trace.NoOpTracerProvider):
        def get_tracer(self, *args: object, **kwargs: object) -> trace.Tracer:
            raise AssertionError("no tracer may be asked of a no-op provider")

    tracing = Tracing(Untouchable())
    assert tracing.start_span("openai", REQUEST, "https://api.openai.com/v1") is None
    assert tracing.start_span("openai", REQUEST, "https://api.openai.com/v1") is None


def test_opentelemetry_not_imported_means_no_span(monkeypatch: pytest.MonkeyPatch) -> None:
    # A None entry in sys.modules makes the module unimportable, as if not installed.
    monkeypatch.setitem(sys.modules, "opentelemetry.trace", None)

    assert Tracing().start_span("openai", REQUEST, "https://api.openai.com/v1") is None


def test_a_global_provider_set_later_is_honoured(
    provider: TracerProvider, exporter: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracing = Tracing()
    assert tracing.start_span("openai", REQUEST, "https://api.openai.com/v1") is None

    # What trace.set_tracer_provider(provider) does, undone after the test (it can be
    # called once per process); fails loudly should opentelemetry rename its global.
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", provider)
    span = tracing.start_span("openai", REQUEST, "https://api.openai.com/v1")
    assert span is not None
    span.finish(RESPONSE)

    assert only_span(exporter).name == "chat gpt-4o-mini"


def test_sampled_out_span_skips_attribute_work(exporter: InMemorySpanExporter) -> None:
    provider = TracerProvider(sampler=ALWAYS_OFF)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    span = Tracing(provider, capture_content=True).start_span(
        "openai", REQUEST, "https://api.openai.com/v1"
    )
    assert span is not None and span.span is not None
    assert not span.span.is_recording()
    span.finish(RESPONSE)

    assert exporter.get_finished_spans() == ()
    provider.shutdown()


def test_importing_callm_does_not_import_opentelemetry() -> None:
    import subprocess

    code = "import callm, sys; print('opentelemetry' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_if_available_gives_a_tracing_when_opentelemetry_is_installed(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    tracing = Tracing.if_available(provider)
    assert isinstance(tracing, Tracing)
    span = tracing.start_span("openai", REQUEST, "https://api.openai.com/v1")
    assert span is not None
    span.finish(RESPONSE)
    assert only_span(exporter).name == "chat gpt-4o-mini"
    assert isinstance(Tracing.if_available(), Tracing)


def test_if_available_gives_none_without_opentelemetry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.trace", None)
    _otel_installed.cache_clear()
    try:
        assert Tracing.if_available() is None
    finally:
        _otel_installed.cache_clear()
