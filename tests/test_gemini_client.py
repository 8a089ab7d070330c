"""The built-in ``gemini`` provider end to end: callm clients against the fake over loopback.

Every scenario runs through ``callm.Client`` and ``callm.AsyncClient``, streamed and not;
the fake speaks Gemini's wire format (``/v1beta/models/{m}:generateContent``, SSE with CRLF
framing, Google's error shape) and records what callm sent.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

import callm
from callm._core.http import HttpResponse
from callm._core.types import Message, Request
from callm.protocols.gemini import client as gemini
from callm.testing import FakeOpenAIServer, FakeToolCall, Fault, RecordedRequest, Reply

KEY = "gemini-test-key"
MODEL = "gemini/gemini-2.5-flash"
MODES = ["sync", "async"]
STREAMED = [False, True]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(api_key=KEY) as fake:
        monkeypatch.setenv("GEMINI_BASE_URL", fake.url + "/v1beta")
        monkeypatch.setenv("GEMINI_API_KEY", KEY)
        yield fake


async def run(mode: str, streamed: bool, *args: Any, **params: Any) -> callm.Response:
    """The Response of one call, made the chosen way."""
    return (await run_events(mode, streamed, *args, **params))[1]


async def run_events(
    mode: str, streamed: bool, *args: Any, **params: Any
) -> tuple[list[callm.StreamEvent], callm.Response]:
    if mode == "sync":
        with callm.Client(max_retries=params.pop("max_retries", 2)) as client:
            if not streamed:
                return [], client.complete(*args, **params)
            with client.stream(*args, **params) as s:
                return list(s), s.response
    async with callm.AsyncClient(max_retries=params.pop("max_retries", 2)) as aclient:
        if not streamed:
            return [], await aclient.complete(*args, **params)
        s = await aclient.stream(*args, **params)
        async with s:
            events = [ev async for ev in s]
        return events, s.response


def last(server: FakeOpenAIServer) -> RecordedRequest:
    return server.requests[-1]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("streamed", STREAMED)
async def test_text(server: FakeOpenAIServer, mode: str, streamed: bool) -> None:
    events, resp = await run_events(mode, streamed, MODEL, "Hello Gemini")
    assert resp.text.startswith('[offline] You said: "Hello Gemini".')
    assert resp.finish_reason == "stop"
    assert resp.native_finish_reason == "STOP"
    assert resp.provider == "gemini"
    assert resp.model == "gemini-2.5-flash"
    assert resp.id.startswith("resp-")
    assert resp.usage.input_tokens == 2
    assert resp.usage.output_tokens > 5
    sent = last(server)
    assert sent.headers["x-goog-api-key"] == KEY
    if streamed:
        assert sent.path == "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
        assert sent.query == {"alt": "sse"}
        assert "".join(e.text for e in events if e.type == "text") == resp.text
        assert [e.type for e in events][-2:] == ["usage", "finish"]
    else:
        assert sent.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert sent.json == {"contents": [{"role": "user", "parts": [{"text": "Hello Gemini"}]}]}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("streamed", STREAMED)
async def test_system_and_multi_turn(server: FakeOpenAIServer, mode: str, streamed: bool) -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Tell me more"},
    ]
    resp = await run(mode, streamed, MODEL, messages, temperature=0.3, top_k=5)
    assert '"Tell me more"' in resp.text
    body = last(server).json
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert [c["role"] for c in body["contents"]] == ["user", "model", "user"]
    assert body["generationConfig"] == {"temperature": 0.3, "topK": 5}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("streamed", STREAMED)
async def test_image(server: FakeOpenAIServer, mode: str, streamed: bool) -> None:
    image = callm.Image.from_bytes(b"\x89PNG fake", "image/png")
    resp = await run(mode, streamed, MODEL, [Message.user("What is this?", image)])
    assert "1 non-text part(s)" in resp.text
    parts = last(server).json["contents"][0]["parts"]
    assert parts[1]["inlineData"]["mimeType"] == "image/png"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("streamed", STREAMED)
async def test_tool_call_round_trip(server: FakeOpenAIServer, mode: str, streamed: bool) -> None:
    question = {"role": "user", "content": "Use get_weather for Paris"}
    first = await run(mode, streamed, MODEL, [question], tools=[WEATHER])
    assert first.finish_reason == "tool_calls"
    (call,) = first.tool_calls
    assert (call.name, dict(call.arguments)) == ("get_weather", {"city": "Paris"})
    assert call.id.startswith("call_")  # Gemini sent none: callm made one up
    history = [question, first.to_message(), Message.tool(call.id, "sunny, 21 C")]
    second = await run(mode, streamed, MODEL, history, tools=[WEATHER])
    assert second.text == "[offline] Tool get_weather returned: sunny, 21 C"
    body = last(server).json
    model_turn, result_turn = body["contents"][1], body["contents"][2]
    # The thought signature went back on the very part it came with; the name was recovered.
    assert model_turn["parts"][0]["thoughtSignature"]
    assert model_turn["parts"][0]["functionCall"]["name"] == "get_weather"
    assert result_turn["parts"] == [
        {
            "functionResponse": {
                "id": call.id,
                "name": "get_weather",
                "response": {"output": "sunny, 21 C"},
            }
        }
    ]
    tools = body["tools"][0]["functionDeclarations"]
    assert tools[0]["parametersJsonSchema"] == WEATHER["function"]["parameters"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("streamed", STREAMED)
async def test_forced_tool_choice(server: FakeOpenAIServer, mode: str, streamed: bool) -> None:
    resp = await run(mode, streamed, MODEL, "Hi there", tools=[WEATHER], tool_choice="get_weather")
    assert [c.name for c in resp.tool_calls] == ["get_weather"]
    assert last(server).json["toolConfig"] == {
        "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}
    }


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("streamed", STREAMED)
async def test_stop_sequence(server: FakeOpenAIServer, mode: str, streamed: bool) -> None:
    resp = await run(mode, streamed, MODEL, "one two three", stop=["two"])
    assert resp.text == '[offline] You said: "one '
    assert resp.finish_reason == "stop"
    assert last(server).json["generationConfig"] == {"stopSequences": ["two"]}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("streamed", STREAMED)
async def test_max_tokens_cut_off(server: FakeOpenAIServer, mode: str, streamed: bool) -> None:
    resp = await run(mode, streamed, MODEL, "a b c d e f g h", max_tokens=3)
    assert resp.finish_reason == "length"
    assert resp.native_finish_reason == "MAX_TOKENS"
    assert resp.text == "[offline] You said:"  # three word fragments
    assert resp.usage.output_tokens == 3


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("streamed", STREAMED)
async def test_structured_output(server: FakeOpenAIServer, mode: str, streamed: bool) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
        "required": ["city", "population"],
    }
    fmt = {"type": "json_schema", "name": "city", "schema": schema}
    resp = await run(mode, streamed, MODEL, "Tell me about Rome", response_format=fmt)
    assert json.loads(resp.text) == {"city": "Rome", "population": 1}
    config = last(server).json["generationConfig"]
    assert config == {"responseMimeType": "application/json", "responseJsonSchema": schema}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("streamed", STREAMED)
async def test_reasoning_and_scripted_usage(
    server: FakeOpenAIServer, mode: str, streamed: bool
) -> None:
    usage = {
        "promptTokenCount": 10,
        "candidatesTokenCount": 4,
        "thoughtsTokenCount": 6,
        "cachedContentTokenCount": 8,
        "totalTokenCount": 20,
    }
    server.queue(Reply("The answer.", reasoning="Let me think.", usage=usage))
    resp = await run(mode, streamed, MODEL, "q")
    assert resp.reasoning == "Let me think."
    assert resp.text == "The answer."
    assert resp.usage == callm.Usage(10, 10, cached_input_tokens=8, reasoning_tokens=6)


# --- errors -----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("streamed", STREAMED)
async def test_bad_key(
    server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch, mode: str, streamed: bool
) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "wrong")
    with pytest.raises(callm.AuthenticationError) as info:
        await run(mode, streamed, MODEL, "hi")
    assert info.value.status_code == 400
    assert info.value.code == "API_KEY_INVALID"
    assert "GEMINI_API_KEY" in str(info.value)
    assert "callm keys set gemini" in str(info.value)
    assert len(server.requests) == 1  # not retried


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("streamed", STREAMED)
async def test_not_found(server: FakeOpenAIServer, mode: str, streamed: bool) -> None:
    message = "models/gemini-9 is not found for API version v1beta"
    server.queue(Fault.status(404, message))
    with pytest.raises(callm.NotFoundError, match="is not found") as info:
        await run(mode, streamed, MODEL, "hi")
    assert info.value.code == "NOT_FOUND"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("streamed", STREAMED)
async def test_rate_limit_is_retried(server: FakeOpenAIServer, mode: str, streamed: bool) -> None:
    server.queue(Fault.rate_limit(retry_after=0.01))
    resp = await run(mode, streamed, MODEL, "hi")
    assert resp.text.startswith("[offline]")
    assert len(server.requests) == 2


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("streamed", STREAMED)
async def test_overloaded_retried_then_raised(
    server: FakeOpenAIServer, mode: str, streamed: bool
) -> None:
    server.queue(Fault.overloaded(retry_after=0.01), Fault.overloaded(retry_after=0.01))
    with pytest.raises(callm.OverloadedError) as info:
        await run(mode, streamed, MODEL, "hi", max_retries=1)
    assert info.value.code == "UNAVAILABLE"
    assert info.value.status_code == 503
    assert len(server.requests) == 2


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("streamed", STREAMED)
async def test_context_length(server: FakeOpenAIServer, mode: str, streamed: bool) -> None:
    message = (
        "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576)."
    )
    server.queue(Fault.status(400, message))
    with pytest.raises(callm.ContextWindowExceededError, match="input token count"):
        await run(mode, streamed, MODEL, "hi")
    assert len(server.requests) == 1


@pytest.mark.parametrize("mode", MODES)
async def test_error_mid_stream_keeps_the_partial(server: FakeOpenAIServer, mode: str) -> None:
    server.queue(Fault.stream_error(2, "Internal error encountered.", reply=Reply("a b c d")))
    with pytest.raises(callm.InternalServerError, match="Internal error encountered") as info:
        await run(mode, True, MODEL, "hi")
    assert info.value.partial is not None
    assert info.value.partial.text == "a b"
    assert info.value.code == "INTERNAL"


@pytest.mark.parametrize("mode", MODES)
async def test_dropped_stream(server: FakeOpenAIServer, mode: str) -> None:
    server.queue(Fault.drop_mid_stream(3, reply=Reply("one two three four five")))
    with pytest.raises(callm.StreamInterruptedError) as info:
        await run(mode, True, MODEL, "hi", max_retries=0)
    assert info.value.partial is not None
    assert info.value.partial.text == "one two three"


@pytest.mark.parametrize("mode", MODES)
async def test_stalled_stream_still_finishes(server: FakeOpenAIServer, mode: str) -> None:
    # A pause mid-stream is not an end: the last chunk, with finishReason, still arrives.
    server.queue(Fault.stall(1, 0.05, reply=Reply("x y")))
    resp = await run(mode, True, MODEL, "hi")
    assert resp.text == "x y"
    assert resp.finish_reason == "stop"


@pytest.mark.parametrize("mode", MODES)
async def test_models(server: FakeOpenAIServer, mode: str) -> None:
    if mode == "sync":
        with callm.Client() as client:
            models = client.models("gemini")
    else:
        async with callm.AsyncClient() as aclient:
            models = await aclient.models("gemini")
    assert "gemini-2.5-flash" in [m.id for m in models]
    assert all(not m.id.startswith("models/") for m in models)
    assert last(server).path == "/v1beta/models"


# --- the fake's own wire details ----------------------------------------------------------


def post(url: str, body: Any, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"content-type": "application/json", **headers}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_sse_framing_is_crlf(server: FakeOpenAIServer) -> None:
    url = f"{server.url}/v1beta/models/m:streamGenerateContent?alt=sse"
    contents = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    status, headers, body = post(url, contents, {"x-goog-api-key": KEY})
    assert status == 200
    assert headers["Content-Type"] == "text/event-stream"
    events = body.decode().split("\r\n\r\n")
    assert events[-1] == ""
    assert all(e.startswith("data: {") for e in events[:-1])
    assert "[DONE]" not in body.decode()
    assert json.loads(events[-2][6:])["candidates"][0]["finishReason"] == "STOP"


def test_stream_without_alt_sse_is_a_json_array(server: FakeOpenAIServer) -> None:
    url = f"{server.url}/v1beta/models/m:streamGenerateContent?key={KEY}"
    contents = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    status, _, body = post(url, contents, {})
    assert status == 200
    chunks = json.loads(body)
    assert isinstance(chunks, list)
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"


def test_missing_key_and_unknown_method(server: FakeOpenAIServer) -> None:
    contents = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    status, _, body = post(f"{server.url}/v1beta/models/m:generateContent", contents, {})
    assert status == 403
    assert json.loads(body)["error"]["status"] == "PERMISSION_DENIED"
    status, _, body = post(
        f"{server.url}/v1beta/models/m:embedContent", contents, {"x-goog-api-key": KEY}
    )
    assert status == 404
    assert json.loads(body)["error"]["status"] == "NOT_FOUND"


def test_rate_limit_body_has_retry_info(server: FakeOpenAIServer) -> None:
    server.queue(Fault.rate_limit(retry_after=7))
    contents = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    status, headers, body = post(
        f"{server.url}/v1beta/models/m:generateContent", contents, {"x-goog-api-key": KEY}
    )
    assert status == 429
    error = json.loads(body)["error"]
    assert error["status"] == "RESOURCE_EXHAUSTED"
    delays = [d["retryDelay"] for d in error["details"] if "retryDelay" in d]
    assert delays == ["7s"]
    exc = gemini.decode_failure(
        callm.Client().resolve_model(MODEL)[0],
        HttpResponse(status, {k.lower(): v for k, v in headers.items()}, body),
    )
    assert isinstance(exc, callm.RateLimitError)
    assert exc.retry_after == 7.0


def test_count_tokens(server: FakeOpenAIServer) -> None:
    endpoint, model = callm.Client().resolve_model(MODEL)
    request = Request(model, (Message.system("Be brief."), Message.user("one two three")))
    http = gemini.encode_count_tokens(endpoint, request)
    status, _, body = post(http.url, json.loads(http.body or b""), dict(http.headers))
    assert status == 200
    assert gemini.decode_count_tokens(endpoint, HttpResponse(status, {}, body)) == 5
    assert last(server).path == "/v1beta/models/gemini-2.5-flash:countTokens"


def test_scripted_tool_calls_and_filters(server: FakeOpenAIServer) -> None:
    server.queue(
        Reply(tool_calls=[FakeToolCall("a", {"x": 1}), FakeToolCall("b")]),
        Reply(refusal="blocked by the fake's safety filter"),
    )
    with callm.Client() as client:
        calls = client.complete(MODEL, "go").tool_calls
        filtered = client.complete(MODEL, "go")
    assert [(c.name, dict(c.arguments)) for c in calls] == [("a", {"x": 1}), ("b", {})]
    assert len({c.id for c in calls}) == 2
    assert filtered.finish_reason == "content_filter"
    assert filtered.refusal == "blocked by the fake's safety filter"
