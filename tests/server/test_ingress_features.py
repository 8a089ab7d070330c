"""Ingress features beyond text and tools, through the official SDKs: a response format
(JSON schema) and images reach upstreams of other protocols in their own shape."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest
from gateway_process import GatewayProcess

from callm.testing import FakeOpenAIServer, Reply

# A 1x1 PNG, made here (the bytes of the smallest valid image).
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
    "additionalProperties": False,
}
_clients: list[Any] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _clients:
        _clients.pop().close()


def chat(gateway: GatewayProcess) -> openai.OpenAI:
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=gateway.new_key(), max_retries=0)
    _clients.append(client)
    return client


@pytest.mark.parametrize(
    ("model", "where"),
    [
        ("anthropic/claude-sonnet-4-5", ("output_config", "format", "schema")),
        ("gemini/gemini-2.5-flash", ("generationConfig", "responseJsonSchema")),
        ("openai-responses/gpt-5-mini", ("text", "format", "schema")),
    ],
)
def test_a_json_schema_response_format_reaches_each_protocol(
    gateway: GatewayProcess, upstream: FakeOpenAIServer, model: str, where: tuple[str, ...]
) -> None:
    upstream.queue(Reply('{"city": "Paris"}'))
    reply = chat(gateway).chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "Where?"}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "place", "schema": SCHEMA, "strict": True},
        },
    )
    assert json.loads(reply.choices[0].message.content or "") == {"city": "Paris"}
    sent: Any = upstream.requests[-1].json
    for key in where:
        sent = sent[key]
    assert sent["properties"] == SCHEMA["properties"]


@pytest.mark.parametrize("model", ["openai/gpt-4o-mini", "gemini/gemini-2.5-flash"])
def test_an_anthropic_image_reaches_other_protocols(
    gateway: GatewayProcess, upstream: FakeOpenAIServer, model: str
) -> None:
    upstream.queue(Reply("A dot."))
    client = anthropic.Anthropic(base_url=gateway.url, api_key=gateway.new_key(), max_retries=0)
    _clients.append(client)
    image = {
        "type": "image",
        "source": {
            "type": "base64",
            "media_type": "image/png",
            "data": base64.b64encode(PNG).decode(),
        },
    }
    message = client.messages.create(
        model=model,
        max_tokens=20,
        messages=[{"role": "user", "content": [image, {"type": "text", "text": "What is it?"}]}],  # type: ignore[list-item]
    )
    assert message.content[0].text == "A dot."  # type: ignore[union-attr]
    sent = json.dumps(upstream.requests[-1].json)
    assert base64.b64encode(PNG).decode() in sent
