"""The official openai SDK's legacy ``completions.create`` as a caller of the gateway
(``/v1/completions``), answered by chat models of any protocol."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest
from gateway_process import GatewayProcess

from callm.testing import FakeOpenAIServer, Fault, Reply

UPSTREAMS = ["openai/gpt-4o-mini", "anthropic/claude-sonnet-4-5", "gemini/gemini-2.5-flash"]

_clients: list[Any] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _clients:
        _clients.pop().close()


def sdk(gateway: GatewayProcess, key: str) -> openai.OpenAI:
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)
    _clients.append(client)
    return client


@pytest.mark.parametrize("model", UPSTREAMS)
def test_a_completion_from_any_upstream(
    gateway: GatewayProcess, upstream: FakeOpenAIServer, model: str
) -> None:
    upstream.queue(Reply("a land far away."))
    completion = sdk(gateway, gateway.new_key()).completions.create(
        model=model, prompt="Once upon a time in", max_tokens=30, temperature=0
    )
    assert completion.object == "text_completion"
    assert completion.choices[0].text == "a land far away."
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.completion_tokens > 0
    assert "Once upon a time in" in str(upstream.requests[-1].json)


@pytest.mark.parametrize("model", UPSTREAMS[:2])
def test_a_streamed_completion_with_usage(
    gateway: GatewayProcess, upstream: FakeOpenAIServer, model: str
) -> None:
    upstream.queue(Reply("One two three."))
    chunks = list(
        sdk(gateway, gateway.new_key()).completions.create(
            model=model,
            prompt="Count:",
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "One two three."
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0


def test_the_legacy_default_of_16_tokens_reaches_the_upstream(
    gateway: GatewayProcess, upstream: FakeOpenAIServer
) -> None:
    upstream.queue(Reply("short"))
    sdk(gateway, gateway.new_key()).completions.create(model="openai/gpt-4o-mini", prompt="Hi")
    assert upstream.requests[-1].json["max_completion_tokens"] == 16


def test_errors_come_in_openais_shape(gateway: GatewayProcess, upstream: FakeOpenAIServer) -> None:
    with pytest.raises(openai.AuthenticationError):
        sdk(gateway, "sk-callm-" + "c" * 32).completions.create(model="fast", prompt="Hi")
    with pytest.raises(openai.BadRequestError) as bad:
        sdk(gateway, gateway.new_key()).completions.create(
            model="fast", prompt="Hi", suffix="there"
        )
    assert "suffix" in bad.value.message
    upstream.queue(*[Fault.rate_limit(retry_after=2)] * 3)
    with pytest.raises(openai.RateLimitError) as limited:
        sdk(gateway, gateway.new_key()).completions.create(model="openai/gpt-4o-mini", prompt="x")
    assert limited.value.response.headers["retry-after"] == "2"
