"""The official openai SDK's Responses API as a caller of the gateway (``/v1/responses``),
with Responses, Chat Completions, Anthropic and Gemini upstreams."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from gateway_process import GatewayProcess

from callm.testing import FakeOpenAIServer, FakeToolCall, Fault, Reply

UPSTREAMS = [
    "openai-responses/gpt-5-mini",
    "openai/gpt-4o-mini",
    "anthropic/claude-sonnet-4-5",
    "gemini/gemini-2.5-flash",
]
WEATHER: Any = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}

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
def test_a_response_from_any_upstream(
    gateway: GatewayProcess, upstream: FakeOpenAIServer, model: str
) -> None:
    upstream.queue(Reply("Hello from upstream."))
    response = sdk(gateway, gateway.new_key()).responses.create(
        model=model, input="Hi", instructions="Be brief.", max_output_tokens=40
    )
    assert response.output_text == "Hello from upstream."
    assert response.status == "completed"
    assert response.model == model
    assert response.usage is not None
    assert response.usage.input_tokens > 0 and response.usage.output_tokens > 0


@pytest.mark.parametrize("model", UPSTREAMS)
def test_a_stream_from_any_upstream(
    gateway: GatewayProcess, upstream: FakeOpenAIServer, model: str
) -> None:
    upstream.queue(Reply("One two three four."))
    client = sdk(gateway, gateway.new_key())
    with client.responses.stream(model=model, input="Count") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == "One two three four."
    assert final.output_text == "One two three four."
    assert final.usage is not None and final.usage.output_tokens > 0


@pytest.mark.parametrize("model", UPSTREAMS)
@pytest.mark.parametrize("streamed", [False, True])
def test_tool_calls_survive_and_their_results_go_back(
    gateway: GatewayProcess, upstream: FakeOpenAIServer, model: str, streamed: bool
) -> None:
    upstream.queue(Reply(tool_calls=[FakeToolCall("get_weather", {"city": "Paris"})]))
    client = sdk(gateway, gateway.new_key())
    if streamed:
        with client.responses.stream(model=model, input="Weather?", tools=[WEATHER]) as stream:
            arguments = "".join(
                e.delta for e in stream if e.type == "response.function_call_arguments.delta"
            )
            response = stream.get_final_response()
        assert json.loads(arguments) == {"city": "Paris"}
    else:
        response = client.responses.create(model=model, input="Weather?", tools=[WEATHER])
    calls = [item for item in response.output if item.type == "function_call"]
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [
        ("get_weather", {"city": "Paris"})
    ]
    # The SDK's own way to continue: the output items, then the function's output.
    upstream.queue(Reply("Sunny."))
    history: Any = [
        {"role": "user", "content": "Weather?"},
        *[item.model_dump(exclude_none=True) for item in response.output],
        {"type": "function_call_output", "call_id": calls[0].call_id, "output": "sunny"},
    ]
    again = client.responses.create(model=model, input=history, tools=[WEATHER])
    assert again.output_text == "Sunny."
    sent = json.dumps(upstream.requests[-1].json)
    assert "sunny" in sent and "get_weather" in sent


def test_reasoning_from_another_protocol_goes_back_to_it(
    gateway: GatewayProcess, upstream: FakeOpenAIServer
) -> None:
    upstream.queue(Reply("Yes.", reasoning="Let me think."))
    client = sdk(gateway, gateway.new_key())
    model = "anthropic/claude-sonnet-4-5"
    response = client.responses.create(model=model, input="Is it?")
    reasoning = [item for item in response.output if item.type == "reasoning"]
    assert [s.text for s in reasoning[0].summary] == ["Let me think."]
    upstream.queue(Reply("Sure."))
    history: Any = [
        {"role": "user", "content": "Is it?"},
        *[item.model_dump(exclude_none=True) for item in response.output],
        {"role": "user", "content": "Sure?"},
    ]
    client.responses.create(model=model, input=history)
    blocks = upstream.requests[-1].json["messages"][1]["content"]
    assert blocks[0]["type"] == "thinking"
    assert blocks[0]["thinking"] == "Let me think."
    assert blocks[0]["signature"]  # Anthropic's own signature, restored


def test_a_bare_model_goes_to_the_responses_api(
    gateway: GatewayProcess, upstream: FakeOpenAIServer
) -> None:
    upstream.queue(Reply("bare"))
    key = gateway.new_key(models=["openai-responses/*"])
    response = sdk(gateway, key).responses.create(model="gpt-5-mini", input="Hi")
    assert response.output_text == "bare"
    assert upstream.requests[-1].path.endswith("/responses")


def test_errors_come_in_openais_shape(gateway: GatewayProcess, upstream: FakeOpenAIServer) -> None:
    with pytest.raises(openai.AuthenticationError):
        sdk(gateway, "sk-callm-" + "r" * 32).responses.create(model="fast", input="Hi")
    limited = gateway.new_key(models=["anthropic/*"])
    with pytest.raises(openai.PermissionDeniedError) as denied:
        sdk(gateway, limited).responses.create(model="openai/gpt-4o-mini", input="Hi")
    assert denied.value.code == "model_not_allowed"
    with pytest.raises(openai.BadRequestError) as bad:
        sdk(gateway, gateway.new_key()).responses.create(
            model="fast",
            input=[{"role": "robot", "content": "Hi"}],  # type: ignore[list-item]
        )
    assert "input[0].role" in bad.value.message
    upstream.queue(*[Fault.rate_limit(retry_after=5)] * 3)
    with pytest.raises(openai.RateLimitError) as limited_by:
        sdk(gateway, gateway.new_key()).responses.create(model="anthropic/claude", input="Hi")
    assert limited_by.value.response.headers["retry-after"] == "5"


@pytest.mark.parametrize("model", ["openai-responses/gpt-5-mini", "anthropic/claude-sonnet-4-5"])
def test_an_error_mid_stream_is_a_failed_response(
    gateway: GatewayProcess, upstream: FakeOpenAIServer, model: str
) -> None:
    upstream.queue(Fault.stream_error(after_chunks=6, reply=Reply("a b c d e f g h")))
    stream = sdk(gateway, gateway.new_key()).responses.create(model=model, input="Hi", stream=True)
    events = list(stream)
    assert events[-1].type == "response.failed"
    failed: Any = events[-1]
    assert failed.response.status == "failed"
    assert failed.response.error.message
