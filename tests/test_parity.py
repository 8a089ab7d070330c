"""One set of requests, every protocol: equivalent Responses, streamed or not, sync or async.

Each protocol's fake answers with the same offline model, so what a user sees — text, finish
reason, tool calls, structured output — must not depend on the protocol underneath.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

import callm
import drive
from callm.testing import FakeOpenAIServer
from helpers import point_builtins

KEY = "sk-parity-fake-key"
MODELS = {
    "openai_chat": "openai/gpt-4o-mini",
    "openai_responses": "openai-responses/gpt-4o-mini",
    "anthropic": "anthropic/claude-sonnet-4-5",
    "gemini": "gemini/gemini-2.5-flash",
    "bedrock": "bedrock/us.anthropic.claude-sonnet-4-5-20250929-v1:0",
    "vertex_gemini": "vertex/gemini-2.5-flash",
    "vertex_anthropic": "vertex/claude-sonnet-4-5@20250929",
}
WEATHER = callm.Tool(
    "get_weather",
    "Current weather of a city",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
PERSON = {
    "type": "json_schema",
    "name": "person",
    "schema": {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
        "additionalProperties": False,
    },
    "strict": True,
}
PNG = callm.Image.from_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)

pytestmark = [
    pytest.mark.parametrize("protocol", list(MODELS)),
    pytest.mark.parametrize("streamed", [False, True], ids=["json", "sse"]),
    pytest.mark.parametrize("mode", drive.MODES),
]


@pytest.fixture
def server(fake_openai: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch) -> FakeOpenAIServer:
    """Every built-in provider of the five protocols (and Vertex AI's two), pointed at the
    one fake."""
    return point_builtins(fake_openai, monkeypatch, KEY)


async def ask(
    mode: str, streamed: bool, protocol: str, messages: Any, **params: Any
) -> callm.Response:
    model = MODELS[protocol]
    if mode == "sync":
        with callm.Client() as client:
            if not streamed:
                return client.complete(model, messages, **params)
            with client.stream(model, messages, **params) as s:
                return s.response
    async with callm.AsyncClient() as ac:
        if not streamed:
            return await ac.complete(model, messages, **params)
        s2 = await ac.stream(model, messages, **params)
        async with s2:
            return await s2.get_response()


def echo(text: str) -> str:
    return f'[offline] You said: "{text}".'


async def test_plain_text(
    server: FakeOpenAIServer, mode: str, streamed: bool, protocol: str
) -> None:
    r = await ask(mode, streamed, protocol, "Hello there")
    assert r.text.startswith(echo("Hello there"))
    assert r.finish_reason == "stop"
    assert r.usage.input_tokens > 0 and r.usage.output_tokens > 0
    assert r.provider == MODELS[protocol].split("/")[0]


async def test_system_prompt_and_multi_turn(
    server: FakeOpenAIServer, mode: str, streamed: bool, protocol: str
) -> None:
    history = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": "second question"},
    ]
    r = await ask(mode, streamed, protocol, history)
    assert r.text.startswith(echo("second question"))
    sent = json.dumps(server.requests[-1].json)
    for text in ("Be brief.", "first question", "first answer", "second question"):
        assert text in sent


async def test_image_input(
    server: FakeOpenAIServer, mode: str, streamed: bool, protocol: str
) -> None:
    r = await ask(mode, streamed, protocol, [callm.Message.user("What is this?", PNG)])
    assert r.text.startswith(echo("What is this?"))
    assert PNG.url.split(",", 1)[1] in json.dumps(server.requests[-1].json)


async def test_tool_call_and_result_round_trip(
    server: FakeOpenAIServer, mode: str, streamed: bool, protocol: str
) -> None:
    messages: list[callm.Message] = [callm.Message.user("Use get_weather for Paris")]
    first = await ask(mode, streamed, protocol, messages, tools=[WEATHER])
    assert first.finish_reason == "tool_calls"
    (call,) = first.tool_calls
    assert (call.name, dict(call.arguments)) == ("get_weather", {"city": "Paris"})
    messages += [first.to_message(), callm.Message.tool(call.id, "18C and sunny")]
    second = await ask(mode, streamed, protocol, messages, tools=[WEATHER])
    assert second.text == "[offline] Tool get_weather returned: 18C and sunny"
    assert second.finish_reason == "stop"


async def test_structured_output(
    server: FakeOpenAIServer, mode: str, streamed: bool, protocol: str
) -> None:
    r = await ask(mode, streamed, protocol, "Describe a person", response_format=PERSON)
    person = json.loads(r.text)
    assert isinstance(person["name"], str) and isinstance(person["age"], int)


async def test_max_tokens_cut_off(
    server: FakeOpenAIServer, mode: str, streamed: bool, protocol: str
) -> None:
    r = await ask(mode, streamed, protocol, "one two three four five six", max_tokens=3)
    assert r.finish_reason == "length"
    assert r.text == "[offline] You said:"


async def test_stop_sequence(
    server: FakeOpenAIServer, mode: str, streamed: bool, protocol: str
) -> None:
    if protocol == "openai_responses":
        with pytest.raises(callm.InvalidRequestError, match="stop"):
            await ask(mode, streamed, protocol, "alpha beta gamma", stop=["beta"])
        return
    r = await ask(mode, streamed, protocol, "alpha beta gamma", stop=["beta"])
    assert r.text == '[offline] You said: "alpha '
    assert r.finish_reason == "stop"
