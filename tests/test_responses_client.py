"""The built-in ``openai-responses`` provider, end to end against the fake over loopback.

Every feature runs through the sync and the async client, streamed and not; the official
``openai`` SDK then checks that the fake speaks the Responses API faithfully.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

import callm
from callm.testing import FakeOpenAIServer, FakeToolCall, Fault, Reply

KEY = "sk-fake-responses"
MODEL = "openai-responses/gpt-4o-mini"
MODES = pytest.mark.parametrize("mode", ["sync", "async"])
STREAMED = pytest.mark.parametrize("streamed", [False, True], ids=["json", "sse"])
WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(api_key=KEY) as fake:
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        yield fake


async def stream(
    mode: str, *args: Any, client: dict[str, Any] | None = None, **params: Any
) -> tuple[list[callm.StreamEvent], callm.Response]:
    if mode == "sync":
        with callm.Client(**(client or {})) as c, c.stream(*args, **params) as s:
            return list(s), s.response
    async with callm.AsyncClient(**(client or {})) as ac:
        s = await ac.stream(*args, **params)
        async with s:
            events = [ev async for ev in s]
        return events, s.response


async def run(
    mode: str, streamed: bool, *args: Any, client: dict[str, Any] | None = None, **params: Any
) -> callm.Response:
    if streamed:
        return (await stream(mode, *args, client=client, **params))[1]
    if mode == "sync":
        with callm.Client(**(client or {})) as c:
            return c.complete(*args, **params)
    async with callm.AsyncClient(**(client or {})) as ac:
        return await ac.complete(*args, **params)


def last_body(server: FakeOpenAIServer) -> dict[str, Any]:
    body = server.requests[-1].json
    assert isinstance(body, dict)
    return body


# --- features ---------------------------------------------------------------------------


@MODES
@STREAMED
async def test_text(mode: str, streamed: bool, server: FakeOpenAIServer) -> None:
    r = await run(mode, streamed, MODEL, "Hello there", temperature=0.3, top_p=0.9, user="u1")
    assert r.text.startswith('[offline] You said: "Hello there".')
    assert (r.provider, r.model, r.finish_reason) == ("openai-responses", "gpt-4o-mini", "stop")
    assert r.native_finish_reason == "completed"
    assert r.id.startswith("resp_") and r.request_id and r.request_id.startswith("req_")
    assert r.usage.input_tokens == 2 and r.usage.output_tokens == len(r.text.split())
    (seen,) = server.requests
    assert (seen.method, seen.path) == ("POST", "/v1/responses")
    assert seen.headers["authorization"] == f"Bearer {KEY}"
    body = seen.json
    assert body["input"] == [{"role": "user", "content": "Hello there"}]
    assert (body["temperature"], body["top_p"], body["user"]) == (0.3, 0.9, "u1")
    assert body.get("stream", False) is streamed


@MODES
async def test_stream_events(mode: str, server: FakeOpenAIServer) -> None:
    events, r = await stream(mode, MODEL, "one two three")
    deltas = [e.text for e in events if isinstance(e, callm.TextDelta)]
    assert len(deltas) > 3 and "".join(deltas) == r.text
    assert [e for e in events if isinstance(e, callm.FinishEvent)] == [callm.FinishEvent("stop")]
    assert [e.usage for e in events if isinstance(e, callm.UsageEvent)] == [r.usage]
    assert r.ttft_s is not None and r.latency_s is not None


@MODES
@STREAMED
async def test_system_becomes_instructions(
    mode: str, streamed: bool, server: FakeOpenAIServer
) -> None:
    r = await run(mode, streamed, MODEL, "Hi", system="Be brief.")
    assert r.text.startswith('[offline] You said: "Hi"')
    body = last_body(server)
    assert body["instructions"] == "Be brief."
    assert body["input"] == [{"role": "user", "content": "Hi"}]


@MODES
@STREAMED
async def test_multi_turn(mode: str, streamed: bool, server: FakeOpenAIServer) -> None:
    history = [
        {"role": "user", "content": "My name is Ada."},
        {"role": "assistant", "content": "Hello Ada."},
        {"role": "user", "content": "What is my name?"},
    ]
    r = await run(mode, streamed, MODEL, history)
    assert r.text.startswith('[offline] You said: "What is my name?"')
    assert last_body(server)["input"][1] == {
        "type": "message",
        "role": "assistant",
        "content": [{"type": "output_text", "text": "Hello Ada."}],
    }


@MODES
@STREAMED
async def test_images(mode: str, streamed: bool, server: FakeOpenAIServer) -> None:
    image = callm.Image.from_bytes(b"\x89PNG fake", detail="low")
    message = callm.Message.user("What is this?", image, callm.Image("https://x/cat.png"))
    r = await run(mode, streamed, MODEL, [message])
    assert "You also sent 2 non-text part(s)." in r.text
    content = last_body(server)["input"][0]["content"]
    assert content[1] == {"type": "input_image", "image_url": image.url, "detail": "low"}
    assert content[2] == {"type": "input_image", "image_url": "https://x/cat.png", "detail": "auto"}


@MODES
@STREAMED
async def test_tool_call_and_result_round_trip(
    mode: str, streamed: bool, server: FakeOpenAIServer
) -> None:
    question = callm.Message.user("Use get_weather for Paris")
    r = await run(mode, streamed, MODEL, [question], tools=[WEATHER])
    assert r.finish_reason == "tool_calls"
    (call,) = r.tool_calls
    assert call.name == "get_weather" and dict(call.arguments) == {"city": "Paris"}
    assert last_body(server)["tools"] == [{"type": "function", **WEATHER}]
    history = [question, r.to_message(), callm.Message.tool(call.id, "22C and sunny")]
    r2 = await run(mode, streamed, MODEL, history, tools=[WEATHER])
    assert r2.text == "[offline] Tool get_weather returned: 22C and sunny"
    items = last_body(server)["input"]
    assert items[1]["type"] == "function_call" and items[1]["call_id"] == call.id
    assert items[2] == {
        "type": "function_call_output",
        "call_id": call.id,
        "output": "22C and sunny",
    }


@MODES
@STREAMED
async def test_forced_tool_choice(mode: str, streamed: bool, server: FakeOpenAIServer) -> None:
    r = await run(mode, streamed, MODEL, "Hello", tools=[WEATHER], tool_choice="get_weather")
    assert [c.name for c in r.tool_calls] == ["get_weather"]
    assert last_body(server)["tool_choice"] == {"type": "function", "name": "get_weather"}


@MODES
@STREAMED
async def test_reasoning_item_round_trip(
    mode: str, streamed: bool, server: FakeOpenAIServer
) -> None:
    include = {"include": ["reasoning.encrypted_content"], "reasoning": {"effort": "low"}}
    question = callm.Message.user("Think about it")
    r = await run(mode, streamed, MODEL, [question], extra_body=include)
    reasoning = r.content[0]
    assert isinstance(reasoning, callm.Reasoning)
    assert reasoning.text.startswith("[offline] The user wrote 3 word(s)")
    assert reasoning.id and reasoning.id.startswith("rs_")
    assert reasoning.data == f"fake-encrypted-{reasoning.id}"
    assert r.usage.reasoning_tokens > 0
    # The fake, like the API, refuses a reasoning item sent without the item that followed it.
    history = [question, r.to_message(), callm.Message.user("And then?")]
    r2 = await run(mode, streamed, MODEL, history, extra_body=include)
    assert r2.text.startswith('[offline] You said: "And then?"')
    items = last_body(server)["input"]
    assert items[1] == {
        "type": "reasoning",
        "id": reasoning.id,
        "summary": [{"type": "summary_text", "text": reasoning.text}],
        "encrypted_content": reasoning.data,
    }
    assert items[2]["type"] == "message" and items[2]["id"] == r.raw["output"][1]["id"]


@MODES
async def test_orphan_reasoning_item_is_refused_like_the_api(
    mode: str, server: FakeOpenAIServer
) -> None:
    lone = callm.Reasoning("x", id="rs_1", data="enc")  # no following item id to send along
    history = [callm.Message.user("q"), callm.Message.assistant(lone, "a"), callm.Message.user("r")]
    with pytest.raises(callm.BadRequestError, match="without its required following item"):
        await run(mode, False, MODEL, history)


@MODES
async def test_stop_is_refused_before_sending(mode: str, server: FakeOpenAIServer) -> None:
    with pytest.raises(callm.InvalidRequestError, match="stop"):
        await run(mode, False, MODEL, "Hi", stop=["END"])
    assert server.requests == []


@MODES
@STREAMED
async def test_max_output_tokens_cut_off(
    mode: str, streamed: bool, server: FakeOpenAIServer
) -> None:
    events: list[callm.StreamEvent] = []
    if streamed:
        events, r = await stream(mode, MODEL, "one two three four five", max_tokens=3)
    else:
        r = await run(mode, False, MODEL, "one two three four five", max_tokens=3)
    assert r.text == "[offline] You said:"  # three fragments
    assert r.finish_reason == "length"
    assert r.native_finish_reason == "max_output_tokens"
    assert last_body(server)["max_output_tokens"] == 3
    if streamed:
        assert events[-1] == callm.FinishEvent("length")


@MODES
@STREAMED
async def test_structured_output(mode: str, streamed: bool, server: FakeOpenAIServer) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
        "required": ["city", "population"],
        "additionalProperties": False,
    }
    fmt = {"type": "json_schema", "name": "City", "schema": schema, "strict": True}
    r = await run(mode, streamed, MODEL, "Tell me about Paris", response_format=fmt)
    assert json.loads(r.text) == {"city": "Paris", "population": 1}
    assert last_body(server)["text"] == {"format": fmt}
    r = await run(mode, streamed, MODEL, "json please", response_format={"type": "json_object"})
    assert json.loads(r.text) == {
        "reply": '[offline] You said: "json please". '
        "This reply comes from callm's built-in offline model; "
        "set a provider key to talk to a real one."
    }


@MODES
@STREAMED
async def test_refusal(mode: str, streamed: bool, server: FakeOpenAIServer) -> None:
    server.queue(Reply(refusal="I can't help with that."))
    r = await run(mode, streamed, MODEL, "bad")
    assert r.refusal == "I can't help with that."
    assert r.finish_reason == "refusal"


@MODES
@STREAMED
async def test_several_tool_calls_with_text(
    mode: str, streamed: bool, server: FakeOpenAIServer
) -> None:
    calls = [FakeToolCall("a", {"x": 1}, id="call_a"), FakeToolCall("b", '{"bad', id="call_b")]
    server.queue(Reply("Checking.", tool_calls=calls))
    r = await run(mode, streamed, MODEL, "go")
    assert r.text == "Checking."
    assert [(c.id, c.name) for c in r.tool_calls] == [("call_a", "a"), ("call_b", "b")]
    assert r.tool_calls[1].invalid_arguments and r.tool_calls[1].raw_arguments == '{"bad'


# --- errors -----------------------------------------------------------------------------


@MODES
@STREAMED
async def test_wrong_key_is_401(
    mode: str, streamed: bool, server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong")
    with pytest.raises(callm.AuthenticationError, match="OPENAI_API_KEY") as info:
        await run(mode, streamed, MODEL, "Hi")
    assert info.value.status_code == 401 and info.value.code == "invalid_api_key"
    assert len(server.requests) == 1  # not retried


@MODES
@STREAMED
async def test_not_found(mode: str, streamed: bool, server: FakeOpenAIServer) -> None:
    server.queue(Fault.not_found("gpt-nope"))
    with pytest.raises(callm.NotFoundError, match="gpt-nope"):
        await run(mode, streamed, MODEL, "Hi")


@MODES
@STREAMED
async def test_429_and_5xx_are_retried(mode: str, streamed: bool, server: FakeOpenAIServer) -> None:
    server.queue(
        Fault.rate_limit(retry_after=0.01), Fault.server_error(502, retry_after=0.01), Reply("ok")
    )
    r = await run(mode, streamed, MODEL, "Hi")
    assert r.text == "ok"
    assert len(server.requests) == 3


@MODES
async def test_in_stream_failure_keeps_the_partial(mode: str, server: FakeOpenAIServer) -> None:
    # created, in_progress, item added, part added, then two text deltas
    server.queue(
        Fault.stream_error(after_chunks=6, message="The engine broke.", reply=Reply("a b c d"))
    )
    with pytest.raises(callm.InternalServerError, match="The engine broke") as info:
        await stream(mode, MODEL, "Hi")
    err = info.value
    assert err.code == "server_error"
    assert err.partial is not None and err.partial.text == "a b"
    assert err.partial.finish_reason == "error"
    assert len(server.requests) == 1  # errors after the stream began are not retried


@MODES
async def test_dropped_stream_is_interrupted(mode: str, server: FakeOpenAIServer) -> None:
    server.queue(Fault.drop_mid_stream(after_chunks=5, reply=Reply("a b c d")))
    with pytest.raises(callm.StreamInterruptedError) as info:
        await stream(mode, MODEL, "Hi")
    assert info.value.partial is not None and info.value.partial.text == "a"


@MODES
async def test_stream_ending_without_completion_is_interrupted(
    mode: str, server: FakeOpenAIServer
) -> None:
    server.queue(Fault.malformed_json(after_chunks=4))
    with pytest.raises(callm.APIResponseError, match="not JSON"):
        await stream(mode, MODEL, "Hi")


@MODES
@STREAMED
async def test_stall_then_finish(mode: str, streamed: bool, server: FakeOpenAIServer) -> None:
    server.queue(Fault.stall(after_chunks=4, seconds=0.05, reply=Reply("slow but fine")))
    r = await run(mode, streamed, MODEL, "Hi")
    assert r.text == "slow but fine"


@MODES
async def test_truncated_json_body(mode: str, server: FakeOpenAIServer) -> None:
    server.queue(Fault.malformed_json())
    with pytest.raises(callm.APIResponseError, match="not valid JSON"):
        await run(mode, False, MODEL, "Hi")


@MODES
@pytest.mark.parametrize(
    ("base", "path", "query"),
    [
        ("", "/openai/responses", {"api-version": "2025-04-01-preview"}),
        ("/openai/v1", "/openai/v1/responses", {}),
    ],
    ids=["classic", "v1"],
)
async def test_azure_style_endpoints(
    mode: str, base: str, path: str, query: dict[str, str], server: FakeOpenAIServer
) -> None:
    provider = {
        "base_url": server.url + base,
        "protocol": "openai_responses",
        "api_key": KEY,
        "auth": "api-key",
        "api_version": "2025-04-01-preview",
    }
    client = {"providers": {"az": provider}}
    r = await run(mode, False, "az/my-deployment", "Hi", client=client)
    assert r.text.startswith("[offline]")
    seen = server.requests[-1]
    assert seen.path == path  # Responses is never deployment-scoped
    assert seen.query == query
    assert seen.headers["api-key"] == KEY
    assert seen.json["model"] == "my-deployment"


@MODES
async def test_models(mode: str, server: FakeOpenAIServer) -> None:
    if mode == "sync":
        with callm.Client() as c:
            models = c.models("openai-responses")
    else:
        async with callm.AsyncClient() as ac:
            models = await ac.models("openai-responses")
    assert "gpt-4o-mini" in [m.id for m in models]


# --- the official SDK agrees with the fake ---------------------------------------------


def test_openai_sdk_create_and_stream(server: FakeOpenAIServer) -> None:
    openai = pytest.importorskip("openai")
    with openai.OpenAI(base_url=server.base_url, api_key=KEY, max_retries=0) as sdk:
        check_sdk_create_and_stream(sdk, server)


def check_sdk_create_and_stream(sdk: Any, server: FakeOpenAIServer) -> None:
    r = sdk.responses.create(model="gpt-4o-mini", input="Hello there", instructions="Be brief.")
    assert r.status == "completed" and r.output_text.startswith('[offline] You said: "Hello')
    assert r.usage is not None and r.usage.input_tokens == 4

    server.queue(Reply("Hi!", tool_calls=[FakeToolCall("f", {"a": 1})], reasoning="Hmm."))
    events = list(
        sdk.responses.create(
            model="gpt-4o-mini", input="x", stream=True, include=["reasoning.encrypted_content"]
        )
    )
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    final = events[-1].response
    assert [i.type for i in final.output] == ["reasoning", "message", "function_call"]
    assert final.output[2].arguments == '{"a":1}'
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == "Hi!"

    with sdk.responses.stream(model="gpt-4o-mini", input="again") as s:
        for _ in s:
            pass
        assert s.get_final_response().output_text.startswith('[offline] You said: "again"')


def test_openai_sdk_tool_round_trip_and_errors(server: FakeOpenAIServer) -> None:
    openai = pytest.importorskip("openai")
    with openai.OpenAI(base_url=server.base_url, api_key=KEY, max_retries=0) as sdk:
        check_sdk_tools_and_errors(openai, sdk, server)


def check_sdk_tools_and_errors(openai: Any, sdk: Any, server: FakeOpenAIServer) -> None:
    tool = {"type": "function", **WEATHER}
    first = sdk.responses.create(model="gpt-4o-mini", input="get_weather Rome", tools=[tool])
    call = first.output[-1]
    assert call.type == "function_call" and json.loads(call.arguments) == {"city": "Rome"}
    second = sdk.responses.create(
        model="gpt-4o-mini",
        tools=[tool],
        input=[
            {"role": "user", "content": "get_weather Rome"},
            {
                "type": "function_call",
                "call_id": call.call_id,
                "name": call.name,
                "arguments": call.arguments,
            },
            {"type": "function_call_output", "call_id": call.call_id, "output": "hot"},
        ],
    )
    assert second.output_text == "[offline] Tool get_weather returned: hot"

    server.queue(Fault.stream_error(after_chunks=3, message="gone"))
    events = list(sdk.responses.create(model="gpt-4o-mini", input="x", stream=True))
    assert events[-1].type == "response.failed"
    assert events[-1].response.error.message == "gone"

    with (
        openai.OpenAI(base_url=server.base_url, api_key="nope", max_retries=0) as bad,
        pytest.raises(openai.AuthenticationError),
    ):
        bad.responses.create(model="gpt-4o-mini", input="x")
    with pytest.raises(openai.BadRequestError, match="max_output_tokens"):
        sdk.responses.create(model="gpt-4o-mini", input="x", extra_body={"max_tokens": 5})
