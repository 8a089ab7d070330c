"""The official anthropic SDK as a caller of the gateway, with other protocols upstream."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import pytest
from gateway_process import GatewayProcess

from callm.testing import FakeOpenAIServer, FakeToolCall, Fault, Reply

UPSTREAMS = ["openai/gpt-4o-mini", "gemini/gemini-2.5-flash", "anthropic/claude-sonnet-4-5"]
WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}
HI = [{"role": "user", "content": "Hi"}]


_clients: list[Any] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _clients:
        _clients.pop().close()


def sdk(gateway: GatewayProcess, key: str) -> anthropic.Anthropic:
    client = anthropic.Anthropic(base_url=gateway.url, api_key=key, max_retries=0)
    _clients.append(client)
    return client


@pytest.mark.parametrize("model", UPSTREAMS)
def test_a_message_from_any_upstream(
    gateway: GatewayProcess, upstream: FakeOpenAIServer, model: str
) -> None:
    upstream.queue(Reply("Hello there."))
    message = sdk(gateway, gateway.new_key()).messages.create(
        model=model,
        max_tokens=50,
        messages=HI,  # type: ignore[arg-type]
    )
    assert message.content[0].type == "text"
    assert message.content[0].text == "Hello there."
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens > 0


@pytest.mark.parametrize("model", UPSTREAMS)
def test_a_stream_from_any_upstream(
    gateway: GatewayProcess, upstream: FakeOpenAIServer, model: str
) -> None:
    upstream.queue(Reply("One two three."))
    with sdk(gateway, gateway.new_key()).messages.stream(
        model=model,
        max_tokens=50,
        messages=HI,  # type: ignore[arg-type]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "One two three."
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0


@pytest.mark.parametrize("model", UPSTREAMS[:2])
@pytest.mark.parametrize("streamed", [False, True])
def test_tool_arguments_survive(
    gateway: GatewayProcess, upstream: FakeOpenAIServer, model: str, streamed: bool
) -> None:
    upstream.queue(Reply(tool_calls=[FakeToolCall("get_weather", {"city": "Paris"})]))
    client = sdk(gateway, gateway.new_key())
    kwargs = {"model": model, "max_tokens": 100, "messages": HI, "tools": [WEATHER]}
    if streamed:
        with client.messages.stream(**kwargs) as stream:  # type: ignore[arg-type]
            message = stream.get_final_message()
    else:
        message = client.messages.create(**kwargs)  # type: ignore[arg-type]
    uses = [b for b in message.content if b.type == "tool_use"]
    assert [(u.name, u.input) for u in uses] == [("get_weather", {"city": "Paris"})]
    assert message.stop_reason == "tool_use"


def test_errors_come_in_anthropic_shape(
    gateway: GatewayProcess, upstream: FakeOpenAIServer
) -> None:
    with pytest.raises(anthropic.AuthenticationError):
        sdk(gateway, "sk-callm-" + "n" * 32).messages.create(
            model="claude",
            max_tokens=10,
            messages=HI,  # type: ignore[arg-type]
        )
    key = gateway.new_key(models=["gemini/*"])
    with pytest.raises(anthropic.PermissionDeniedError):
        sdk(gateway, key).messages.create(
            model="claude",
            max_tokens=10,
            messages=HI,  # type: ignore[arg-type]
        )
    upstream.queue(*[Fault.rate_limit(retry_after=3)] * 3)
    with pytest.raises(anthropic.RateLimitError) as caught:
        sdk(gateway, gateway.new_key()).messages.create(
            model="openai/gpt-4o-mini",
            max_tokens=10,
            messages=HI,  # type: ignore[arg-type]
        )
    assert caught.value.response.headers["retry-after"] == "3"


def test_count_tokens_counts_without_a_model_call(
    gateway: GatewayProcess, upstream: FakeOpenAIServer
) -> None:
    counted = sdk(gateway, gateway.new_key()).messages.count_tokens(
        model="anthropic/claude-sonnet-4-5",
        messages=HI,  # type: ignore[arg-type]
    )
    assert counted.input_tokens > 0
    assert all(not r.path.endswith("/v1/messages") for r in upstream.requests)
