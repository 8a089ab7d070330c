"""OpenTelemetry: a SERVER span per gateway request, the library's CLIENT span of the model
call inside it (the OTel SDK's in-memory exporter, the gateway in this process, the fake
upstream over loopback HTTP)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from gateway_process import MASTER_KEY, upstream_env
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from callm.server import Gateway
from callm.server._http import Incoming, Reply, StreamReply, after_reply
from callm.server._router import handle
from callm.server._settings import settings_from
from callm.testing import FakeOpenAIServer, Fault

BODY = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
async def gateway(
    upstream: FakeOpenAIServer, exporter: InMemorySpanExporter, tmp_path: Path
) -> AsyncIterator[Gateway]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    env = {**upstream_env(upstream), "CALLM_HOME": str(tmp_path), "CALLM_MASTER_KEY": MASTER_KEY}
    served = Gateway(settings_from({}, env), environ=env, tracer_provider=provider)
    await served.start()
    yield served
    await served.close()


async def post(gateway: Gateway, path: str, body: object, key: str) -> Reply | StreamReply:
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    reply = await handle(gateway, Incoming("POST", path, "", headers, json.dumps(body).encode()))
    if isinstance(reply, Reply):
        await after_reply(reply)  # as the server does once the reply is written
    return reply


async def new_key(gateway: Gateway) -> str:
    reply = await post(gateway, "/admin/keys", {"name": "traced"}, MASTER_KEY)
    assert isinstance(reply, Reply) and reply.status == 201
    return str(json.loads(reply.body)["key"])


def of_kind(exporter: InMemorySpanExporter, kind: SpanKind) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.kind == kind]


async def test_the_call_span_is_a_child_of_the_request_span(
    gateway: Gateway, exporter: InMemorySpanExporter
) -> None:
    key = await new_key(gateway)
    reply = await post(gateway, "/v1/chat/completions", BODY, key)
    assert isinstance(reply, Reply) and reply.status == 200
    [server] = of_kind(exporter, SpanKind.SERVER)
    [client] = of_kind(exporter, SpanKind.CLIENT)
    assert server.name == "POST /v1/chat/completions"
    assert client.name == "chat gpt-4o-mini"
    assert client.parent is not None and client.parent.span_id == server.context.span_id
    assert client.context.trace_id == server.context.trace_id
    attributes = dict(server.attributes or {})
    assert attributes["http.response.status_code"] == 200
    assert attributes["gen_ai.request.model"] == "openai/gpt-4o-mini"
    assert str(attributes["callm.key_id"]).startswith("key_")
    assert int(str(attributes["gen_ai.usage.output_tokens"])) > 0
    every_value = json.dumps(
        [dict(s.attributes or {}) for s in exporter.get_finished_spans()], default=str
    )
    assert key not in every_value and MASTER_KEY not in every_value


async def test_a_streamed_request_span_ends_with_its_stream(
    gateway: Gateway, exporter: InMemorySpanExporter
) -> None:
    key = await new_key(gateway)
    reply = await post(gateway, "/v1/chat/completions", {**BODY, "stream": True}, key)
    assert isinstance(reply, StreamReply)
    assert of_kind(exporter, SpanKind.SERVER) == []  # still streaming
    frames = b"".join([chunk async for chunk in reply.chunks])
    assert b"[DONE]" in frames
    [server] = of_kind(exporter, SpanKind.SERVER)
    [client] = of_kind(exporter, SpanKind.CLIENT)
    assert client.parent is not None and client.parent.span_id == server.context.span_id
    assert dict(server.attributes or {})["callm.stream"] is True


async def test_refused_and_failed_requests_are_spans_too(
    gateway: Gateway, exporter: InMemorySpanExporter, upstream: FakeOpenAIServer
) -> None:
    refused = await post(gateway, "/v1/chat/completions", BODY, "sk-callm-" + "n" * 32)
    assert refused.status == 401
    [span] = of_kind(exporter, SpanKind.SERVER)
    assert dict(span.attributes or {})["error.type"] == "invalid_api_key"
    assert of_kind(exporter, SpanKind.CLIENT) == []  # no model was called

    exporter.clear()
    upstream.queue(*[Fault.server_error()] * 3)
    failed = await post(gateway, "/v1/chat/completions", BODY, await new_key(gateway))
    assert failed.status == 502
    [span] = of_kind(exporter, SpanKind.SERVER)
    assert span.status.status_code == StatusCode.ERROR
    [client] = of_kind(exporter, SpanKind.CLIENT)
    assert client.parent is not None and client.parent.span_id == span.context.span_id
    assert client.status.status_code == StatusCode.ERROR
