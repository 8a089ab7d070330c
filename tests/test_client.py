"""Client and AsyncClient against the fake server over real loopback HTTP."""

from __future__ import annotations

import json
import time

import pytest

import callm
import drive
from callm.testing import FakeOpenAIServer, FakeToolCall, Fault, Reply
from helpers import FAKE_KEY, sync_client

pytestmark = pytest.mark.parametrize("mode", drive.MODES)
STREAMED = pytest.mark.parametrize("streamed", [False, True], ids=["json", "sse"])


@STREAMED
async def test_reply_text_usage_and_ids(
    mode: str, streamed: bool, fake_openai: FakeOpenAIServer
) -> None:
    fake_openai.queue(
        Reply(
            "Hello there, friend.",
            usage={
                "prompt_tokens": 11,
                "completion_tokens": 4,
                "total_tokens": 15,
                "prompt_tokens_details": {"cached_tokens": 3},
                "completion_tokens_details": {"reasoning_tokens": 2},
            },
        )
    )
    r = await drive.run(mode, streamed, fake_openai.base_url, "fake/gpt-4o-mini", "Say hello")
    assert r.text == "Hello there, friend."
    assert r.finish_reason == "stop"
    assert r.provider == "fake"
    assert r.model == "gpt-4o-mini"
    assert r.id.startswith("chatcmpl-")
    assert r.request_id and r.request_id.startswith("req_")
    assert (r.usage.input_tokens, r.usage.output_tokens, r.usage.total_tokens) == (11, 4, 15)
    assert (r.usage.cached_input_tokens, r.usage.reasoning_tokens) == (3, 2)
    assert r.latency_s is not None and r.latency_s > 0
    if streamed:
        assert r.ttft_s is not None and 0 < r.ttft_s <= r.latency_s


@STREAMED
async def test_request_body_on_the_wire(
    mode: str, streamed: bool, fake_openai: FakeOpenAIServer
) -> None:
    await drive.run(
        mode,
        streamed,
        fake_openai.base_url,
        "fake/gpt-4o-mini",
        [{"role": "user", "content": "Hi"}],
        system="Be brief.",
        max_tokens=50,
        temperature=0.2,
        top_p=0.9,
        stop="END",
        seed=7,
        user="u-1",
        extra_body={"service_tier": "flex"},
        extra_headers={"x-trace": "abc"},
    )
    (seen,) = fake_openai.requests
    body = seen.json
    assert seen.path == "/v1/chat/completions"
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
    ]
    assert body["max_tokens"] == 50  # an entry of your own: what compatible servers take
    assert (body["temperature"], body["top_p"], body["stop"], body["seed"]) == (
        0.2,
        0.9,
        ["END"],
        7,
    )
    assert body["user"] == "u-1" and body["service_tier"] == "flex"
    assert seen.headers["authorization"] == f"Bearer {FAKE_KEY}"
    assert seen.headers["x-trace"] == "abc"
    assert body.get("stream", False) is streamed
    if streamed:
        assert body["stream_options"] == {"include_usage": True}


@STREAMED
async def test_tool_calls_with_parsed_arguments(
    mode: str, streamed: bool, fake_openai: FakeOpenAIServer
) -> None:
    fake_openai.queue(
        Reply(
            tool_calls=[
                FakeToolCall("get_weather", {"city": "Paris", "days": 2}, id="call_1"),
                FakeToolCall("get_time", {"tz": "CET"}, id="call_2"),
            ]
        )
    )
    tools = [
        {"type": "function", "function": {"name": "get_weather", "parameters": {}}},
        callm.Tool("get_time"),
    ]
    r = await drive.run(
        mode, streamed, fake_openai.base_url, "fake/m", "weather?", tools=tools, tool_choice="auto"
    )
    assert r.finish_reason == "tool_calls"
    assert [(c.id, c.name, dict(c.arguments)) for c in r.tool_calls] == [
        ("call_1", "get_weather", {"city": "Paris", "days": 2}),
        ("call_2", "get_time", {"tz": "CET"}),
    ]
    sent = fake_openai.requests[0].json
    assert [t["function"]["name"] for t in sent["tools"]] == ["get_weather", "get_time"]
    assert sent["tool_choice"] == "auto"


@STREAMED
async def test_malformed_tool_arguments_are_kept_raw(
    mode: str, streamed: bool, fake_openai: FakeOpenAIServer
) -> None:
    fake_openai.queue(Reply(tool_calls=[FakeToolCall("f", '{"city": "Par', id="call_x")]))
    r = await drive.run(
        mode, streamed, fake_openai.base_url, "fake/m", "go", tools=[callm.Tool("f")]
    )
    (call,) = r.tool_calls
    assert call.invalid_arguments is True
    assert call.raw_arguments == '{"city": "Par'
    assert dict(call.arguments) == {}


@STREAMED
async def test_refusal_and_reasoning(
    mode: str, streamed: bool, fake_openai: FakeOpenAIServer
) -> None:
    fake_openai.queue(Reply(reasoning="thinking hard", refusal="I can't help with that."))
    r = await drive.run(mode, streamed, fake_openai.base_url, "fake/m", "bad request")
    assert r.refusal == "I can't help with that."
    assert r.reasoning == "thinking hard"
    assert r.finish_reason == "refusal"


@STREAMED
async def test_history_with_tool_results_round_trips(
    mode: str, streamed: bool, fake_openai: FakeOpenAIServer
) -> None:
    history = [
        callm.Message.user("weather in Paris?"),
        callm.Message.assistant(callm.ToolCall("call_9", "get_weather", {"city": "Paris"})),
        callm.Message.tool("call_9", "18C"),
    ]
    r = await drive.run(
        mode, streamed, fake_openai.base_url, "fake/m", history, tools=[callm.Tool("get_weather")]
    )
    assert "get_weather returned: 18C" in r.text
    sent = fake_openai.requests[0].json["messages"]
    assert sent[1]["tool_calls"][0]["function"] == {
        "name": "get_weather",
        "arguments": '{"city":"Paris"}',
    }
    assert sent[2] == {"role": "tool", "tool_call_id": "call_9", "content": "18C"}


async def test_stream_events_in_order(mode: str, fake_openai: FakeOpenAIServer) -> None:
    fake_openai.queue(Reply(chunks=["Hel", "lo", " wor", "ld"]))
    events, response = await drive.stream(mode, fake_openai.base_url, "fake/m", "hi")
    kinds = [e.type for e in events]
    assert [e.text for e in events if e.type == "text"] == ["Hel", "lo", " wor", "ld"]
    assert kinds[-2:] == ["finish", "usage"]
    assert response.text == "Hello world"
    assert response.usage.output_tokens > 0


async def test_stream_tool_call_fragments_then_complete_call(
    mode: str, fake_openai: FakeOpenAIServer
) -> None:
    fake_openai.queue(Reply(tool_calls=[FakeToolCall("lookup", {"q": "a long query string"})]))
    events, response = await drive.stream(
        mode, fake_openai.base_url, "fake/m", "x", tools=[callm.Tool("lookup")]
    )
    deltas = [e for e in events if e.type == "tool_call_delta"]
    complete = [e for e in events if e.type == "tool_call"]
    assert deltas and deltas[0].name == "lookup"
    assert json.loads("".join(d.arguments for d in deltas)) == {"q": "a long query string"}
    assert len(complete) == 1 and dict(complete[0].tool_call.arguments) == {
        "q": "a long query string"
    }
    assert response.tool_calls == [complete[0].tool_call]


@STREAMED
async def test_legacy_text_completions(
    mode: str, streamed: bool, fake_openai: FakeOpenAIServer
) -> None:
    fake_openai.queue(Reply("four"))
    if mode == "sync":
        with sync_client(fake_openai.base_url) as c:
            if streamed:
                with c.stream_text_completion("fake/davinci", "2+2=", max_tokens=3) as s:
                    r = s.response
            else:
                r = c.text_completion("fake/davinci", "2+2=", max_tokens=3)
    else:
        async with drive.async_client(fake_openai.base_url) as ac:
            if streamed:
                s = await ac.stream_text_completion("fake/davinci", "2+2=", max_tokens=3)
                async with s:
                    r = await s.get_response()
            else:
                r = await ac.text_completion("fake/davinci", "2+2=", max_tokens=3)
    assert r.text == "four"
    seen = fake_openai.requests[0]
    assert seen.path == "/v1/completions"
    assert seen.json["prompt"] == "2+2=" and seen.json["max_tokens"] == 3


async def test_models_lists_ids(mode: str, fake_openai: FakeOpenAIServer) -> None:
    if mode == "sync":
        with sync_client(fake_openai.base_url) as c:
            models = c.models("fake")
    else:
        async with drive.async_client(fake_openai.base_url) as ac:
            models = await ac.models("fake")
    ids = [m.id for m in models]
    assert "offline" in ids
    assert all(m.provider == "fake" for m in models)
    assert fake_openai.requests[0].method == "GET"
    assert fake_openai.requests[0].path == "/v1/models"


async def test_n_choices(mode: str, fake_openai: FakeOpenAIServer) -> None:
    r = await drive.complete(mode, fake_openai.base_url, "fake/m", "hi", n=3)
    assert len(r.choices) == 2
    assert all(c.text for c in r.choices)
    assert fake_openai.requests[0].json["n"] == 3


async def test_early_close_drops_the_connection(mode: str, fake_openai: FakeOpenAIServer) -> None:
    # The server would stall for 5 s after two chunks: closing must not wait for it.
    fake_openai.queue(Fault.stall(after_chunks=2, seconds=5))
    started = time.monotonic()
    if mode == "sync":
        with sync_client(fake_openai.base_url) as c:
            with c.stream("fake/m", "one two three four five") as s:
                first = next(iter(s))
            r = c.complete("fake/m", "again")
    else:
        async with drive.async_client(fake_openai.base_url) as ac:
            s = await ac.stream("fake/m", "one two three four five")
            async with s:
                first = await anext(aiter(s))
            r = await ac.complete("fake/m", "again")
    assert first.type == "text"
    assert r.text
    assert time.monotonic() - started < 3


async def test_module_level_functions(
    mode: str, fake_openai: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    del mode
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    monkeypatch.setattr(callm, "_default_client", None)
    fake_openai.queue(Reply("one"), Reply("two"))
    assert callm.complete("openai/gpt-4o-mini", "x").text == "one"
    with callm.stream("openai/gpt-4o-mini", "y") as s:
        assert "".join(s.text_stream) == "two"
    monkeypatch.setattr(callm, "_default_client", None)


async def test_text_stream_yields_only_text(mode: str, fake_openai: FakeOpenAIServer) -> None:
    fake_openai.queue(Reply(chunks=["a", "b", "c"], reasoning="hmm"))
    if mode == "sync":
        with sync_client(fake_openai.base_url) as c, c.stream("fake/m", "x") as s:
            texts = list(s.text_stream)
    else:
        async with drive.async_client(fake_openai.base_url) as ac:
            s2 = await ac.stream("fake/m", "x")
            async with s2:
                texts = [t async for t in s2.text_stream]
    assert texts == ["a", "b", "c"]
