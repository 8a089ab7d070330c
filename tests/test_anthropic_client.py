"""The Anthropic provider end to end: callm's clients against the fake over loopback HTTP.

Every scenario runs through ``callm.Client`` and ``callm.AsyncClient``, streamed and not,
with the built-in ``anthropic`` provider pointed at the fake by ``ANTHROPIC_BASE_URL``. The
official ``anthropic`` SDK checks that the fake speaks the real protocol.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

import callm
from callm._config.providers import BUILTIN, build_endpoint
from callm._core.endpoint import Endpoint
from callm._core.http import HttpRequest, HttpResponse
from callm._core.types import Image, Message, Reasoning, Request, Tool
from callm.protocols.anthropic import client as anthropic
from callm.testing import FakeOpenAIServer, FakeToolCall, Fault, Reply

KEY = "sk-ant-fake-0000"
MODEL = "anthropic/claude-sonnet-4-5"
MODES = pytest.mark.parametrize("mode", ["sync", "async"])
STREAMED = pytest.mark.parametrize("streamed", [False, True], ids=["json", "sse"])
WEATHER = Tool(
    "weather",
    "The weather in a city.",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)


@pytest.fixture(scope="module")
def module_server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(api_key=KEY) as server:
        yield server


@pytest.fixture
def server(module_server: FakeOpenAIServer) -> Iterator[FakeOpenAIServer]:
    module_server.clear()
    yield module_server
    module_server.clear()


def client_kwargs(server: FakeOpenAIServer, key: str = KEY, **kwargs: Any) -> dict[str, Any]:
    env = {**os.environ, "ANTHROPIC_BASE_URL": server.url, "ANTHROPIC_API_KEY": key}
    return {"environ": env, "max_retries": 0, **kwargs}


async def run(
    mode: str,
    streamed: bool,
    server: FakeOpenAIServer,
    messages: Any,
    *,
    client: dict[str, Any] | None = None,
    **params: Any,
) -> callm.Response:
    """The Response of one call, made the chosen way."""
    return (await run_events(mode, streamed, server, messages, client=client, **params))[1]


async def run_events(
    mode: str,
    streamed: bool,
    server: FakeOpenAIServer,
    messages: Any,
    *,
    client: dict[str, Any] | None = None,
    **params: Any,
) -> tuple[list[callm.StreamEvent], callm.Response]:
    kwargs = client_kwargs(server, **(client or {}))
    if mode == "sync":
        with callm.Client(**kwargs) as c:
            if not streamed:
                return [], c.complete(MODEL, messages, **params)
            with c.stream(MODEL, messages, **params) as s:
                events = list(s)
            return events, s.response
    async with callm.AsyncClient(**kwargs) as ac:
        if not streamed:
            return [], await ac.complete(MODEL, messages, **params)
        stream = await ac.stream(MODEL, messages, **params)
        async with stream:
            events = [ev async for ev in stream]
        return events, stream.response


def sent(server: FakeOpenAIServer) -> dict[str, Any]:
    """The JSON body of the last request the fake received."""
    body = server.requests[-1].json
    assert isinstance(body, dict)
    return body


# --- replies ------------------------------------------------------------------------------


@MODES
@STREAMED
async def test_text_usage_ids_and_wire(mode: str, streamed: bool, server: FakeOpenAIServer) -> None:
    usage = {"input_tokens": 11, "output_tokens": 4, "cache_read_input_tokens": 3}
    server.queue(Reply("Hello there, friend.", usage=usage))
    r = await run(mode, streamed, server, "Say hello", system="Be brief.", max_tokens=50)
    assert r.text == "Hello there, friend."
    assert (r.finish_reason, r.native_finish_reason) == ("stop", "end_turn")
    assert (r.provider, r.model) == ("anthropic", "claude-sonnet-4-5")
    assert r.id.startswith("msg_")
    assert r.request_id is not None and r.request_id.startswith("req_")
    assert (r.usage.input_tokens, r.usage.output_tokens, r.usage.cached_input_tokens) == (14, 4, 3)
    record = server.requests[-1]
    assert record.path == "/v1/messages"
    assert record.headers["x-api-key"] == KEY
    assert record.headers["anthropic-version"] == "2023-06-01"
    body = sent(server)
    assert body["system"] == [{"type": "text", "text": "Be brief."}]
    assert body["max_tokens"] == 50
    assert body.get("stream", False) is streamed


@MODES
@STREAMED
async def test_offline_model_multi_turn(
    mode: str, streamed: bool, server: FakeOpenAIServer
) -> None:
    history = [
        {"role": "system", "content": "Be kind."},
        {"role": "user", "content": "First question"},
        {"role": "assistant", "content": "First answer"},
        {"role": "user", "content": "Second question"},
    ]
    r = await run(mode, streamed, server, history)
    assert r.text.startswith('[offline] You said: "Second question".')
    assert [m["role"] for m in sent(server)["messages"]] == ["user", "assistant", "user"]
    assert sent(server)["max_tokens"] == anthropic.default_max_tokens("claude-sonnet-4-5")


@MODES
@STREAMED
async def test_images(mode: str, streamed: bool, server: FakeOpenAIServer) -> None:
    message = Message.user(
        "What is this?", Image.from_bytes(b"\x89PNG"), Image("https://example.com/cat.jpg")
    )
    r = await run(mode, streamed, server, [message])
    assert "You also sent 2 non-text part(s)" in r.text
    sources = [b["source"]["type"] for b in sent(server)["messages"][0]["content"][1:]]
    assert sources == ["base64", "url"]


@MODES
@STREAMED
async def test_tool_call_and_result_round_trip(
    mode: str, streamed: bool, server: FakeOpenAIServer
) -> None:
    question = Message.user("What is the weather in Paris?")
    first_events, first = await run_events(
        mode, streamed, server, [question], tools=[WEATHER], tool_choice="auto"
    )
    assert first.finish_reason == "tool_calls"
    [call] = first.tool_calls
    assert (call.name, dict(call.arguments)) == ("weather", {"city": "Paris"})
    assert call.id.startswith("toolu_")
    if streamed:
        assert [e.tool_call for e in first_events if e.type == "tool_call"] == [call]
        deltas = [e for e in first_events if e.type == "tool_call_delta"]
        assert "".join(d.arguments for d in deltas) == call.raw_arguments
    assert sent(server)["tools"][0]["input_schema"] == WEATHER.parameters
    history = [question, first.to_message(), Message.tool(call.id, "sunny, 21 C")]
    second = await run(mode, streamed, server, history, tools=[WEATHER])
    assert second.text == "[offline] Tool weather returned: sunny, 21 C"
    assert second.finish_reason == "stop"
    result = sent(server)["messages"][2]["content"][0]
    assert result == {"type": "tool_result", "tool_use_id": call.id, "content": "sunny, 21 C"}


@MODES
@STREAMED
async def test_forced_tool_choice(mode: str, streamed: bool, server: FakeOpenAIServer) -> None:
    r = await run(mode, streamed, server, "Hi there Rome", tools=[WEATHER], tool_choice="weather")
    assert [c.name for c in r.tool_calls] == ["weather"]
    assert sent(server)["tool_choice"] == {"type": "tool", "name": "weather"}


@MODES
@STREAMED
async def test_thinking_round_trip(mode: str, streamed: bool, server: FakeOpenAIServer) -> None:
    thinking = {"thinking": {"type": "enabled", "budget_tokens": 1024}}
    events, first = await run_events(mode, streamed, server, "Ponder this", extra_body=thinking)
    assert first.reasoning is not None and first.reasoning.startswith("[offline]")
    [reasoning] = [p for p in first.content if isinstance(p, Reasoning)]
    assert reasoning.signature is not None and reasoning.signature.startswith("fakesig_")
    if streamed:
        assert "".join(e.text for e in events if e.type == "reasoning") == first.reasoning
    history = [Message.user("Ponder this"), first.to_message(), Message.user("And?")]
    await run(mode, streamed, server, history, extra_body=thinking)
    echoed = sent(server)["messages"][1]["content"][0]
    assert echoed == {
        "type": "thinking",
        "thinking": reasoning.text,
        "signature": reasoning.signature,
    }


@MODES
@STREAMED
async def test_stop_sequence(mode: str, streamed: bool, server: FakeOpenAIServer) -> None:
    r = await run(mode, streamed, server, "alpha beta STOP gamma", stop=["STOP"])
    assert r.text == '[offline] You said: "alpha beta '
    assert (r.finish_reason, r.native_finish_reason) == ("stop", "stop_sequence")
    assert r.raw["stop_sequence"] == "STOP"
    assert sent(server)["stop_sequences"] == ["STOP"]


@MODES
@STREAMED
async def test_max_tokens_cut_off(mode: str, streamed: bool, server: FakeOpenAIServer) -> None:
    r = await run(mode, streamed, server, "one two three four five six", max_tokens=3)
    assert r.text == "[offline] You said:"
    assert (r.finish_reason, r.native_finish_reason) == ("length", "max_tokens")
    assert r.usage.output_tokens == 3


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
    r = await run(mode, streamed, server, "Tell me about Lyon", response_format=fmt)
    assert json.loads(r.text) == {"city": "Lyon", "population": 1}
    assert sent(server)["output_config"] == {"format": {"type": "json_schema", "schema": schema}}


@MODES
@STREAMED
async def test_scripted_refusal(mode: str, streamed: bool, server: FakeOpenAIServer) -> None:
    server.queue(Reply(refusal="I can't help with that."))
    r = await run(mode, streamed, server, "Something bad")
    assert (r.finish_reason, r.native_finish_reason) == ("refusal", "refusal")
    assert r.text == "I can't help with that."


# --- errors -------------------------------------------------------------------------------


@MODES
@STREAMED
async def test_wrong_key(mode: str, streamed: bool, server: FakeOpenAIServer) -> None:
    with pytest.raises(callm.AuthenticationError) as info:
        await run(mode, streamed, server, "Hi", client={"key": "sk-wrong"})
    assert info.value.code == "authentication_error"
    assert "invalid x-api-key" in str(info.value)
    assert "ANTHROPIC_API_KEY" in str(info.value)


@MODES
@STREAMED
@pytest.mark.parametrize(
    "case",
    [
        (Fault.not_found("claude-nope"), callm.NotFoundError, "not_found_error"),
        (
            Fault.status(413, "Request exceeds the maximum size"),
            callm.BadRequestError,
            "request_too_large",
        ),
        (
            Fault.status(400, "prompt is too long: 210000 tokens > 200000 maximum"),
            callm.ContextWindowExceededError,
            "invalid_request_error",
        ),
        (Fault.status(403, "No access"), callm.PermissionDeniedError, "permission_error"),
    ],
    ids=["404", "413", "context", "403"],
)
async def test_error_statuses(
    mode: str, streamed: bool, server: FakeOpenAIServer, case: tuple[Fault, type[Exception], str]
) -> None:
    fault, cls, code = case
    server.queue(fault)
    with pytest.raises(cls) as info:
        await run(mode, streamed, server, "Hi")
    exc = info.value
    assert type(exc) is cls
    assert (exc.status_code, exc.code) == (fault.status_code, code)
    assert exc.request_id is not None and exc.request_id.startswith("req_")
    assert fault.error is not None and fault.error["message"] in str(exc)


@MODES
@STREAMED
async def test_rate_limit_is_retried_after_the_hint(
    mode: str, streamed: bool, server: FakeOpenAIServer
) -> None:
    server.queue(Fault.rate_limit(retry_after=0.05), Reply("Made it."))
    r = await run(mode, streamed, server, "Hi", client={"max_retries": 1})
    assert r.text == "Made it."
    assert len(server.requests) == 2


@MODES
@STREAMED
async def test_overloaded_is_retried_then_raised(
    mode: str, streamed: bool, server: FakeOpenAIServer
) -> None:
    overloaded = Fault.status(529, "Overloaded", retry_after=0.01)
    server.queue(overloaded, overloaded, overloaded)
    with pytest.raises(callm.OverloadedError) as info:
        await run(mode, streamed, server, "Hi", client={"max_retries": 2})
    assert (info.value.status_code, info.value.code) == (529, "overloaded_error")
    assert len(server.requests) == 3


@MODES
async def test_mid_stream_error_keeps_the_partial_reply(
    mode: str, server: FakeOpenAIServer
) -> None:
    server.queue(
        Fault.stream_error(after_chunks=5, message="Overloaded", reply=Reply("one two three four"))
    )
    with pytest.raises(callm.InternalServerError) as info:
        await run(mode, True, server, "Hi")
    exc = info.value
    assert "Overloaded" in str(exc)
    assert exc.code == "api_error"
    assert exc.partial is not None
    # message_start, content_block_start, ping, then two text deltas arrived.
    assert exc.partial.text == "one two"


@MODES
async def test_stream_error_fault_without_streaming_is_a_500(
    mode: str, server: FakeOpenAIServer
) -> None:
    server.queue(Fault.stream_error(after_chunks=2, message="Internal trouble"))
    with pytest.raises(callm.InternalServerError) as info:
        await run(mode, False, server, "Hi")
    assert info.value.code == "api_error"


@MODES
async def test_dropped_stream_is_interrupted(mode: str, server: FakeOpenAIServer) -> None:
    server.queue(Fault.drop_mid_stream(after_chunks=4, reply=Reply("one two three four")))
    with pytest.raises(callm.StreamInterruptedError) as info:
        await run(mode, True, server, "Hi")
    assert info.value.partial is not None
    assert info.value.partial.text == "one"


@MODES
@STREAMED
async def test_malformed_answers(mode: str, streamed: bool, server: FakeOpenAIServer) -> None:
    server.queue(Fault.malformed_json(after_chunks=3))
    with pytest.raises(callm.APIError):
        await run(mode, streamed, server, "Hi")


@MODES
@STREAMED
async def test_stall_then_finish(mode: str, streamed: bool, server: FakeOpenAIServer) -> None:
    server.queue(Fault.stall(after_chunks=3, seconds=0.05, reply=Reply("slow but sure")))
    r = await run(mode, streamed, server, "Hi")
    assert r.text == "slow but sure"


# --- models, token counting and the fake's own checks ---------------------------------------


def test_models(server: FakeOpenAIServer) -> None:
    with callm.Client(**client_kwargs(server)) as c:
        models = c.models("anthropic")
    assert [m.id for m in models] == list(server._state.models)
    assert all(m.provider == "anthropic" for m in models)
    # Anthropic's list shape: typed objects with an RFC 3339 creation time.
    assert all(m.raw["type"] == "model" and m.created == 1735689600 for m in models)
    assert server.requests[-1].headers["anthropic-version"] == "2023-06-01"


def send(http: HttpRequest) -> HttpResponse:
    """Send one request with the standard library, whatever its status."""
    request = urllib.request.Request(http.url, http.body, dict(http.headers), method=http.method)
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return HttpResponse(answer.status, dict(answer.headers.items()), answer.read())
    except urllib.error.HTTPError as error:
        headers = {k.lower(): v for k, v in error.headers.items()}
        return HttpResponse(error.code, headers, error.read())


def endpoint(server: FakeOpenAIServer, key: str = KEY) -> Endpoint:
    return build_endpoint(BUILTIN["anthropic"], server.url, key)


def test_count_tokens_over_loopback(server: FakeOpenAIServer) -> None:
    request = Request(
        "claude-sonnet-4-5",
        (Message.system("Be brief."), Message.user("one two three")),
        max_tokens=10,
        temperature=0.3,
    )
    answer = send(anthropic.encode_count_tokens(endpoint(server), request))
    assert anthropic.decode_count_tokens(endpoint(server), answer) == 5
    assert server.pending == 0  # counting takes no scripted reply


@pytest.mark.parametrize(
    ("path", "body", "headers", "message"),
    [
        (
            "/v1/messages",
            {"model": "m", "max_tokens": 5, "messages": []},
            {"anthropic-version": ""},
            "anthropic-version: header is required",
        ),
        ("/v1/messages", {"model": "m", "messages": []}, {}, "max_tokens: Field required"),
        (
            "/v1/messages",
            {"model": "m", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]},
            {},
            "Unexpected role",
        ),
        (
            "/v1/messages/count_tokens",
            {"model": "m", "max_tokens": 5, "messages": []},
            {},
            "max_tokens: Extra inputs are not permitted",
        ),
    ],
    ids=["no-version", "no-max-tokens", "system-role", "count-extra-field"],
)
def test_the_fake_refuses_like_the_real_api(
    server: FakeOpenAIServer, path: str, body: Any, headers: dict[str, str], message: str
) -> None:
    answer = send_raw(server, path, body, headers)
    assert answer.status == 400
    error = json.loads(answer.body)
    assert error["type"] == "error"
    assert error["error"]["type"] == "invalid_request_error"
    assert message in error["error"]["message"]
    assert error["request_id"] == answer.headers["request-id"]


def send_raw(
    server: FakeOpenAIServer, path: str, body: Any, headers: dict[str, str]
) -> HttpResponse:
    base = {"content-type": "application/json", "x-api-key": KEY, "anthropic-version": "2023-06-01"}
    merged = {k: v for k, v in {**base, **headers}.items() if v}
    return send(HttpRequest("POST", server.url + path, merged, json.dumps(body).encode()))


def test_stream_frames_are_named_events(server: FakeOpenAIServer) -> None:
    server.queue(Reply("Hi there", tool_calls=[FakeToolCall("f", {"a": 1})]))
    body = {
        "model": "m",
        "max_tokens": 5,
        "stream": True,
        "messages": [{"role": "user", "content": "x"}],
    }
    answer = send_raw(server, "/v1/messages", body, {})
    text = answer.body.decode()
    names = [line[7:] for line in text.splitlines() if line.startswith("event: ")]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-2:] == ["message_delta", "message_stop"]
    assert "[DONE]" not in text
    for block in text.strip().split("\n\n"):
        name, data = block.split("\n")
        assert json.loads(data[len("data: ") :])["type"] == name[len("event: ") :]


# --- the official SDK against the fake ------------------------------------------------------


def test_official_sdk_creates_and_streams(server: FakeOpenAIServer) -> None:
    try:
        import anthropic as sdk
    except ImportError:
        pytest.skip("the anthropic SDK is not installed (it is a dev dependency)")
    client = sdk.Anthropic(base_url=server.url, api_key=KEY, max_retries=0)
    server.queue(Reply("Hello from the fake."))
    message = client.messages.create(
        model="claude-fake-1", max_tokens=64, messages=[{"role": "user", "content": "Hi"}]
    )
    assert message.content[0].text == "Hello from the fake."  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"
    server.queue(Reply("Streamed words arrive.", tool_calls=[FakeToolCall("f", {"x": "y"})]))
    with client.messages.stream(
        model="claude-fake-1", max_tokens=64, messages=[{"role": "user", "content": "Hi"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Streamed words arrive."
    assert final.stop_reason == "tool_use"
    assert final.content[1].input == {"x": "y"}  # type: ignore[union-attr]
    count = client.messages.count_tokens(
        model="claude-fake-1", messages=[{"role": "user", "content": "one two"}]
    )
    assert count.input_tokens == 2


def test_official_sdk_sees_errors(server: FakeOpenAIServer) -> None:
    try:
        import anthropic as sdk
    except ImportError:
        pytest.skip("the anthropic SDK is not installed (it is a dev dependency)")
    client = sdk.Anthropic(base_url=server.url, api_key=KEY, max_retries=0)
    server.queue(Fault.status(529, "Overloaded"))
    with pytest.raises(sdk.OverloadedError):
        client.messages.create(
            model="m", max_tokens=5, messages=[{"role": "user", "content": "Hi"}]
        )
    server.queue(Fault.stream_error(after_chunks=3, message="Overloaded"))
    with (
        pytest.raises(sdk.APIStatusError, match="Overloaded"),
        client.messages.stream(
            model="m", max_tokens=5, messages=[{"role": "user", "content": "Hi"}]
        ) as stream,
    ):
        stream.get_final_message()
    with pytest.raises(sdk.AuthenticationError):
        sdk.Anthropic(base_url=server.url, api_key="nope", max_retries=0).messages.create(
            model="m", max_tokens=5, messages=[{"role": "user", "content": "Hi"}]
        )
