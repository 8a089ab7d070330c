"""The official google-genai SDK as a caller of the gateway (``/v1beta/models/{model}:…``),
with Gemini, OpenAI and Anthropic upstreams; keys in ``x-goog-api-key`` (the SDK's way) and
in ``?key=``."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from gateway_process import GatewayProcess
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types

from callm.testing import FakeOpenAIServer, FakeToolCall, Fault, Reply

UPSTREAMS = ["gemini-2.5-flash", "openai/gpt-4o-mini", "anthropic/claude-sonnet-4-5"]
WEATHER = genai_types.Tool(
    function_declarations=[
        genai_types.FunctionDeclaration(
            name="get_weather",
            description="The weather in a city.",
            parameters_json_schema={"type": "object", "properties": {"city": {"type": "string"}}},
        )
    ]
)

_clients: list[genai.Client] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _clients:
        _clients.pop().close()


def sdk(gateway: GatewayProcess, key: str) -> genai.Client:
    options = genai_types.HttpOptions(base_url=gateway.url, retry_options=None)
    client = genai.Client(api_key=key, http_options=options)
    _clients.append(client)
    return client


@pytest.mark.parametrize("model", UPSTREAMS)
def test_generate_content_from_any_upstream(
    gateway: GatewayProcess, upstream: FakeOpenAIServer, model: str
) -> None:
    upstream.queue(Reply("Hello from upstream."))
    reply = sdk(gateway, gateway.new_key()).models.generate_content(
        model=model,
        contents="Hi",
        config=genai_types.GenerateContentConfig(
            system_instruction="Be brief.", max_output_tokens=40
        ),
    )
    assert reply.text == "Hello from upstream."
    candidate = reply.candidates[0]  # type: ignore[index]
    assert candidate.finish_reason == genai_types.FinishReason.STOP
    usage = reply.usage_metadata
    assert usage is not None
    assert (usage.prompt_token_count or 0) > 0 and (usage.candidates_token_count or 0) > 0


@pytest.mark.parametrize("model", UPSTREAMS)
def test_generate_content_stream_from_any_upstream(
    gateway: GatewayProcess, upstream: FakeOpenAIServer, model: str
) -> None:
    upstream.queue(Reply("One two three four."))
    chunks = list(
        sdk(gateway, gateway.new_key()).models.generate_content_stream(
            model=model, contents="Count"
        )
    )
    assert "".join(c.text or "" for c in chunks) == "One two three four."
    last = chunks[-1]
    assert last.candidates[0].finish_reason == genai_types.FinishReason.STOP  # type: ignore[index]
    assert last.usage_metadata is not None
    assert (last.usage_metadata.candidates_token_count or 0) > 0


@pytest.mark.parametrize("model", UPSTREAMS)
@pytest.mark.parametrize("streamed", [False, True])
def test_function_calls_survive_and_their_responses_go_back(
    gateway: GatewayProcess, upstream: FakeOpenAIServer, model: str, streamed: bool
) -> None:
    upstream.queue(Reply(tool_calls=[FakeToolCall("get_weather", {"city": "Paris"})]))
    client = sdk(gateway, gateway.new_key())
    config = genai_types.GenerateContentConfig(
        tools=[WEATHER],
        automatic_function_calling=genai_types.AutomaticFunctionCallingConfig(disable=True),
    )
    ask = genai_types.Content(role="user", parts=[genai_types.Part(text="Weather in Paris?")])
    if streamed:
        chunks = list(
            client.models.generate_content_stream(model=model, contents=[ask], config=config)
        )
        calls = [c for chunk in chunks for c in chunk.function_calls or []]
        contents = [c.candidates[0].content for c in chunks if c.candidates]
        parts = [p for content in contents if content for p in content.parts or []]
        turn = genai_types.Content(role="model", parts=parts)
    else:
        reply = client.models.generate_content(model=model, contents=[ask], config=config)
        calls = reply.function_calls or []
        turn = reply.candidates[0].content  # type: ignore[index, assignment]
    assert [(c.name, c.args) for c in calls] == [("get_weather", {"city": "Paris"})]
    upstream.queue(Reply("Sunny."))
    answer = genai_types.Content(
        role="user",
        parts=[
            genai_types.Part.from_function_response(
                name="get_weather", response={"output": "sunny"}
            )
        ],
    )
    again = client.models.generate_content(model=model, contents=[ask, turn, answer], config=config)
    assert again.text == "Sunny."
    sent = json.dumps(upstream.requests[-1].json)
    assert "sunny" in sent and "get_weather" in sent


def test_reasoning_survives_the_round_trip_to_anthropic(
    gateway: GatewayProcess, upstream: FakeOpenAIServer
) -> None:
    upstream.queue(Reply("Yes.", reasoning="Let me think."))
    client = sdk(gateway, gateway.new_key())
    model = "anthropic/claude-sonnet-4-5"
    reply = client.models.generate_content(model=model, contents="Is it?")
    parts = reply.candidates[0].content.parts  # type: ignore[index, union-attr]
    thoughts = [p for p in parts if p.thought]
    assert [p.text for p in thoughts] == ["Let me think."]
    assert reply.text == "Yes."
    upstream.queue(Reply("Sure."))
    client.models.generate_content(
        model=model,
        contents=[
            genai_types.Content(role="user", parts=[genai_types.Part(text="Is it?")]),
            reply.candidates[0].content,  # type: ignore[index, list-item]
            genai_types.Content(role="user", parts=[genai_types.Part(text="Sure?")]),
        ],
    )
    blocks = upstream.requests[-1].json["messages"][1]["content"]
    assert blocks[0]["type"] == "thinking" and blocks[0]["signature"]


def test_count_tokens_counts_without_a_model_call(
    gateway: GatewayProcess, upstream: FakeOpenAIServer
) -> None:
    counted = sdk(gateway, gateway.new_key()).models.count_tokens(
        model="gemini-2.5-flash", contents="How many tokens is this?"
    )
    assert (counted.total_tokens or 0) > 0
    assert not any("generateContent" in r.path for r in upstream.requests)


def test_errors_reach_the_sdk_as_its_own_exceptions(
    gateway: GatewayProcess, upstream: FakeOpenAIServer
) -> None:
    with pytest.raises(genai_errors.ClientError) as unknown:
        sdk(gateway, "sk-callm-" + "g" * 32).models.generate_content(
            model="gemini-2.5-flash", contents="Hi"
        )
    assert unknown.value.code == 401
    limited = gateway.new_key(models=["openai/*"])
    with pytest.raises(genai_errors.ClientError) as denied:
        sdk(gateway, limited).models.generate_content(model="gemini-2.5-flash", contents="Hi")
    assert denied.value.code == 403
    upstream.queue(*[Fault.rate_limit(retry_after=4)] * 3)
    with pytest.raises(genai_errors.ClientError) as slow:
        sdk(gateway, gateway.new_key()).models.generate_content(
            model="openai/gpt-4o-mini", contents="Hi"
        )
    assert slow.value.code == 429
    upstream.queue(*[Fault.server_error()] * 3)
    with pytest.raises(genai_errors.ServerError):
        sdk(gateway, gateway.new_key()).models.generate_content(
            model="anthropic/claude-sonnet-4-5", contents="Hi"
        )


def raw(gateway: GatewayProcess, path: str, body: Any, headers: dict[str, str]) -> tuple[int, Any]:
    request = urllib.request.Request(
        gateway.url + path,
        json.dumps(body).encode(),
        {"content-type": "application/json", **headers},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


HELLO = {"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]}


def test_a_key_in_the_query_string_works(
    gateway: GatewayProcess, upstream: FakeOpenAIServer
) -> None:
    key = gateway.new_key()
    upstream.queue(Reply("by query"))
    path = f"/v1beta/models/gemini-2.5-flash:generateContent?key={key}"
    status, body = raw(gateway, path, HELLO, {})
    assert status == 200
    assert json.loads(body)["candidates"][0]["content"]["parts"][0]["text"] == "by query"
    upstream.queue(Reply("streamed by query"))
    path = f"/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse&key={key}"
    status, body = raw(gateway, path, HELLO, {})
    assert status == 200
    assert body.startswith(b"data: ")
    status, body = raw(gateway, "/v1beta/models/gemini-2.5-flash:generateContent", HELLO, {})
    assert status == 401
    assert json.loads(body)["error"]["status"] == "UNAUTHENTICATED"


def test_the_key_in_the_query_never_reaches_the_log(
    gateway: GatewayProcess, upstream: FakeOpenAIServer
) -> None:
    key = gateway.new_key()
    upstream.queue(Reply("hi"))
    raw(gateway, f"/v1beta/models/gemini-2.5-flash:generateContent?key={key}", HELLO, {})
    assert key not in gateway.log.read_text()
