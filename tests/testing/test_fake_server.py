"""FakeOpenAIServer over real HTTP: endpoints, wire shapes, streaming, scripting, recording."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx2
import pytest

from callm.testing import FakeOpenAIServer, FakeToolCall, Fault, RecordedRequest, Reply
from callm.testing._wire import SYSTEM_FINGERPRINT

USAGE_KEYS = {
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "prompt_tokens_details",
    "completion_tokens_details",
}


def test_public_namespace_is_curated():
    import callm.testing

    assert sorted(callm.testing.__all__) == sorted(
        ["FakeOpenAIServer", "Reply", "FakeToolCall", "Fault", "RecordedRequest"]
    )


def test_importing_callm_testing_imports_no_aiohttp_or_asyncio(subprocess_env):
    code = (
        "import sys, callm; before = set(sys.modules); import callm.testing; "
        "new = set(sys.modules) - before; "
        "print(sorted(m for m in new if m.split('.')[0] in ('aiohttp', 'asyncio')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=subprocess_env
    )
    assert out.stdout.strip() == "[]"


# --- chat completions, JSON --------------------------------------------------------------


def test_chat_json_response_is_openai_shaped(api):
    api.server.queue(Reply("Hi there!"))
    response = api.chat(model="gpt-4o-mini")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-request-id"].startswith("req_")
    body = response.json()
    assert body["id"].startswith("chatcmpl-")
    assert body["object"] == "chat.completion"
    assert isinstance(body["created"], int)
    assert body["model"] == "gpt-4o-mini"
    assert body["system_fingerprint"] == SYSTEM_FINGERPRINT
    assert body["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hi there!", "refusal": None},
            "finish_reason": "stop",
            "logprobs": None,
        }
    ]
    usage = body["usage"]
    assert set(usage) == USAGE_KEYS
    assert usage["prompt_tokens"] == 2  # "hello there"
    assert usage["completion_tokens"] == 2  # "Hi", " there!"
    assert usage["total_tokens"] == 4
    assert usage["prompt_tokens_details"] == {"cached_tokens": 0}
    assert usage["completion_tokens_details"] == {"reasoning_tokens": 0}


def test_request_and_completion_ids_are_unique(api):
    first, second = api.chat(), api.chat()
    assert first.headers["x-request-id"] != second.headers["x-request-id"]
    assert first.json()["id"] != second.json()["id"]


def test_tool_calls_in_json_reply(api):
    calls = [
        FakeToolCall("get_weather", {"city": "Paris"}, id="call_1"),
        FakeToolCall("broken", '{"city": "Par'),
    ]
    api.server.queue(Reply(tool_calls=calls))
    choice = api.chat().json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    first, second = choice["message"]["tool_calls"]
    assert first == {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
    }
    # A str is sent verbatim, malformed JSON included; a missing id gets a generated one.
    assert second["function"]["arguments"] == '{"city": "Par'
    assert second["id"]
    assert second["id"] != first["id"]


def test_reply_overrides_are_sent(api):
    usage = {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
    reply = Reply(
        "x",
        model="gpt-4o-2024-08-06",
        finish_reason="length",
        usage=usage,
        reasoning="thinking hard",
        headers={"x-ratelimit-remaining-requests": "9"},
    )
    api.server.queue(reply)
    response = api.chat()
    body = response.json()
    assert response.headers["x-ratelimit-remaining-requests"] == "9"
    assert body["model"] == "gpt-4o-2024-08-06"
    assert body["usage"] == usage
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["choices"][0]["message"]["reasoning_content"] == "thinking hard"


def test_refusal_has_null_content(api):
    api.server.queue(Reply(refusal="I can't help with that."))
    message = api.chat().json()["choices"][0]["message"]
    assert message["content"] is None
    assert message["refusal"] == "I can't help with that."


def test_n_gives_n_identical_choices(api):
    api.server.queue(Reply("same words"))
    body = api.chat(n=3).json()
    assert [c["index"] for c in body["choices"]] == [0, 1, 2]
    assert {c["message"]["content"] for c in body["choices"]} == {"same words"}
    assert body["usage"]["completion_tokens"] == 6


# --- chat completions, streaming ---------------------------------------------------------


def test_stream_headers_and_framing(api):
    api.server.queue(Reply("Hello big world"))
    response = api.post(
        "/v1/chat/completions",
        {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True},
    )
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["transfer-encoding"] == "chunked"
    assert response.headers["x-request-id"].startswith("req_")
    raw = response.content.decode()
    assert raw.endswith("data: [DONE]\n\n")
    assert "event:" not in raw
    assert "\nid:" not in raw
    payloads = api.sse_data(response.content)
    assert payloads[-1] == "[DONE]"
    chunks = [json.loads(p) for p in payloads[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    pieces = [c["choices"][0]["delta"].get("content") for c in chunks[1:-1]]
    assert pieces == ["Hello", " big", " world"]
    last = chunks[-1]["choices"][0]
    assert last["delta"] == {}
    assert last["finish_reason"] == "stop"
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])
    assert all("usage" not in c for c in chunks)
    assert {(c["id"], c["created"], c["model"], c["object"]) for c in chunks} == {
        (chunks[0]["id"], chunks[0]["created"], "m", "chat.completion.chunk")
    }


def test_explicit_chunks_are_sent_as_given(api):
    api.server.queue(Reply(chunks=["Hél", "lo", " ✓"]))
    chunks = api.chunks()
    assert [c["choices"][0]["delta"].get("content") for c in chunks[1:-1]] == ["Hél", "lo", " ✓"]


def test_include_usage_adds_a_final_usage_chunk(api):
    api.server.queue(Reply("one two"))
    chunks = api.chunks(stream_options={"include_usage": True})
    *body, usage_chunk = chunks
    assert all(c["usage"] is None for c in body)
    assert body[-1]["choices"][0]["finish_reason"] == "stop"
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"]["completion_tokens"] == 2
    assert usage_chunk["usage"]["total_tokens"] == usage_chunk["usage"]["prompt_tokens"] + 2


def test_usage_on_finish_chunk_deepseek_style(api):
    api.server.queue(Reply("one two", usage_on_finish_chunk=True))
    chunks = api.chunks(stream_options={"include_usage": True})
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["usage"]["completion_tokens"] == 2
    assert all(c["choices"] for c in chunks)
    assert all(c["usage"] is None for c in chunks[:-1])


def test_streamed_tool_calls_follow_openai_fragments(api):
    calls = [
        FakeToolCall("get_weather", {"city": "Paris", "unit": "celsius"}, id="call_a"),
        FakeToolCall("get_time", {"zone": "Europe/Paris"}, id="call_b"),
    ]
    api.server.queue(Reply(tool_calls=calls))
    chunks = api.chunks()
    first = chunks[0]["choices"][0]["delta"]
    # Opening with tool calls: null content and the first call's header in the role chunk.
    assert first["role"] == "assistant"
    assert first["content"] is None
    assert first["tool_calls"] == [
        {
            "index": 0,
            "id": "call_a",
            "type": "function",
            "function": {"name": "get_weather", "arguments": ""},
        }
    ]
    fragments = [f for c in chunks for f in c["choices"][0]["delta"].get("tool_calls", [])]
    headers = [f for f in fragments if "id" in f]
    assert [(h["index"], h["id"], h["function"]["name"]) for h in headers] == [
        (0, "call_a", "get_weather"),
        (1, "call_b", "get_time"),
    ]
    later = [f for f in fragments if "id" not in f]
    assert all(set(f) == {"index", "function"} for f in later)
    assert len(later) > 2  # arguments really are split into pieces
    for index, call in enumerate(calls):
        joined = "".join(f["function"]["arguments"] for f in fragments if f["index"] == index)
        assert json.loads(joined) == call.arguments
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_stream_text_then_tool_call(api):
    api.server.queue(Reply("Let me check.", tool_calls=[FakeToolCall("f", "{}")]))
    chunks = api.chunks()
    assert chunks[0]["choices"][0]["delta"]["content"] == ""
    assert "tool_calls" not in chunks[0]["choices"][0]["delta"]
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert "".join(d.get("content") or "" for d in deltas) == "Let me check."
    assert any("tool_calls" in d for d in deltas)


def test_stream_reasoning_and_refusal_deltas(api):
    api.server.queue(Reply("Answer", reasoning="Think first"))
    deltas = [c["choices"][0]["delta"] for c in api.chunks()]
    assert "".join(d.get("reasoning_content", "") for d in deltas) == "Think first"
    reasoning_at = [i for i, d in enumerate(deltas) if "reasoning_content" in d]
    content_at = [i for i, d in enumerate(deltas) if d.get("content")]
    assert max(reasoning_at) < min(content_at)
    api.server.queue(Reply(refusal="No can do"))
    deltas = [c["choices"][0]["delta"] for c in api.chunks()]
    assert "".join(d.get("refusal") or "" for d in deltas) == "No can do"


def test_stream_with_n_choices(api):
    api.server.queue(Reply("a b"))
    chunks = api.chunks(n=2)
    for index in (0, 1):
        mine = [c["choices"][0] for c in chunks if c["choices"][0]["index"] == index]
        assert mine[0]["delta"]["role"] == "assistant"
        assert "".join(c["delta"].get("content", "") for c in mine) == "a b"
        assert mine[-1]["finish_reason"] == "stop"


# --- legacy completions, models, Azure ---------------------------------------------------


def test_legacy_text_completion(api):
    api.server.queue(Reply("Once upon"))
    body = api.post("/v1/completions", {"model": "gpt-3.5-turbo-instruct", "prompt": "Hi"}).json()
    assert body["object"] == "text_completion"
    assert body["id"].startswith("cmpl-")
    assert body["choices"] == [
        {"index": 0, "text": "Once upon", "logprobs": None, "finish_reason": "stop"}
    ]
    assert body["usage"]["prompt_tokens"] == 1


def test_legacy_text_completion_streams(api):
    chunks = api.chunks(
        "/v1/completions",
        model="m",
        prompt="say hi",
        max_tokens=3,
        stream_options={"include_usage": True},
    )
    assert all(c["object"] == "text_completion" for c in chunks)
    texts = [c["choices"][0]["text"] for c in chunks[:-1]]
    assert "".join(texts) == "[offline] You said:"
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == 3


def test_models_list_and_lookup(client):
    with FakeOpenAIServer(models=["offline", "vendor/model-x"]) as server:
        listing = client.get(server.base_url + "/models").json()
        assert listing["object"] == "list"
        assert [m["id"] for m in listing["data"]] == ["offline", "vendor/model-x"]
        assert all(m["object"] == "model" and m["owned_by"] for m in listing["data"])
        one = client.get(server.base_url + "/models/vendor/model-x")
        assert one.status_code == 200
        assert one.json()["id"] == "vendor/model-x"
        missing = client.get(server.base_url + "/models/gpt-9")
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "model_not_found"
        assert "`gpt-9` does not exist" in missing.json()["error"]["message"]


def test_default_models_include_offline(api):
    ids = [m["id"] for m in api.client.get(api.server.base_url + "/models").json()["data"]]
    assert "offline" in ids
    assert len(ids) > 1


def test_azure_deployment_path(api):
    path = "/openai/deployments/my-gpt4o/chat/completions"
    body = {"messages": [{"role": "user", "content": "hi"}], "model": "ignored"}
    missing = api.post(path, body)
    assert missing.status_code == 400
    assert "api-version" in missing.json()["error"]["message"]
    ok = api.post(path, body, params={"api-version": "2024-10-21"})
    assert ok.status_code == 200
    assert ok.json()["model"] == "my-gpt4o"
    assert api.server.requests[-1].query == {"api-version": "2024-10-21"}
    payloads = api.stream(f"{path}?api-version=2024-10-21", messages=body["messages"])
    assert payloads[-1] == "[DONE]"


def test_azure_v1_paths(api):
    chat = api.post("/openai/v1/chat/completions", {"model": "dep", "messages": []})
    assert chat.status_code == 200
    assert chat.json()["model"] == "dep"
    models = api.client.get(api.server.url + "/openai/v1/models")
    assert "offline" in [m["id"] for m in models.json()["data"]]


# --- validation and auth -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"{not json", "could not parse the JSON body"),
        (b"[1, 2]", "could not parse the JSON body"),
        (b"", "could not parse the JSON body"),
        (b'{"messages": []}', "must provide a model"),
        (b'{"model": "m"}', "'messages'"),
        (b'{"model": "m", "messages": [], "n": 0}', "'n'"),
    ],
)
def test_bad_bodies_get_openai_errors(api, content, expected):
    api.server.queue(Reply("unused"))
    response = api.client.post(api.server.base_url + "/chat/completions", content=content)
    assert response.status_code == 400
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert expected in error["message"]
    assert api.server.pending == 1  # a refused request does not use up the script


def test_unknown_route_is_an_openai_404(api):
    response = api.client.get(api.server.url + "/v1/nope")
    assert response.status_code == 404
    assert response.json()["error"]["message"] == "Invalid URL (GET /v1/nope)"
    assert response.headers["x-request-id"].startswith("req_")


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer wrong"}, 401),
        ({"api-key": "wrong"}, 401),
        ({"Authorization": "Bearer sk-test"}, 200),
        ({"api-key": "sk-test"}, 200),
    ],
)
def test_api_key_is_enforced(client, headers, status):
    with FakeOpenAIServer(api_key="sk-test") as server:
        body = {"model": "m", "messages": []}
        response = client.post(server.base_url + "/chat/completions", json=body, headers=headers)
        models = client.get(server.base_url + "/models", headers=headers)
    assert response.status_code == status
    assert models.status_code == status
    if status == 401:
        assert response.json()["error"] == {
            "message": response.json()["error"]["message"],
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        }
        assert len(server.requests) == 2  # refused requests are still recorded


# --- scripting and recording -------------------------------------------------------------


def test_queue_is_fifo_then_falls_back_to_offline(api):
    api.server.queue(Reply("first"), Reply("second"))
    assert api.server.pending == 2
    texts = [api.chat().json()["choices"][0]["message"]["content"] for _ in range(3)]
    assert texts[:2] == ["first", "second"]
    assert texts[2].startswith("[offline] ")
    assert api.server.pending == 0


def test_models_requests_do_not_consume_the_queue(api):
    api.server.queue(Reply("kept"))
    api.client.get(api.server.base_url + "/models")
    assert api.chat().json()["choices"][0]["message"]["content"] == "kept"


def test_queue_rejects_other_values(fake_openai):
    with pytest.raises(TypeError, match="Reply or Fault"):
        fake_openai.queue("hello")  # type: ignore[arg-type]


def test_requests_are_recorded_in_order(api):
    api.server.queue(Fault.server_error())
    api.client.post(
        api.server.base_url + "/chat/completions",
        params={"trace": "1"},
        json={"model": "m", "messages": []},
        headers={"X-Custom": "Yes"},
    )
    api.client.post(api.server.base_url + "/chat/completions", content=b"raw bytes")
    first, second = api.server.requests
    assert isinstance(first, RecordedRequest)
    assert (first.method, first.path, first.query) == (
        "POST",
        "/v1/chat/completions",
        {"trace": "1"},
    )
    assert first.headers["x-custom"] == "Yes"
    assert all(name == name.lower() for name in first.headers)
    assert first.json == {"model": "m", "messages": []}
    assert json.loads(first.body) == first.json
    assert (second.body, second.json) == (b"raw bytes", None)
    api.server.queue(Reply("x"))
    api.server.clear()
    assert api.server.requests == []
    assert api.server.pending == 0


def test_requests_is_a_snapshot(api):
    snapshot = api.server.requests
    api.chat()
    assert snapshot == []
    assert len(api.server.requests) == 1


# --- lifecycle ---------------------------------------------------------------------------


def test_explicit_start_and_stop(client):
    server = FakeOpenAIServer()
    assert "stopped" in repr(server)
    assert server.start() is server
    try:
        assert server.url.startswith("http://127.0.0.1:")
        assert server.port > 0
        assert server.base_url == server.url + "/v1"
        assert client.get(server.base_url + "/models").status_code == 200
        with pytest.raises(RuntimeError, match="already running"):
            server.start()
    finally:
        server.stop()
    server.stop()  # a second stop is harmless
    with pytest.raises(httpx2.ConnectError):
        client.get(server.base_url + "/models")


def test_two_servers_get_different_ports():
    with FakeOpenAIServer() as one, FakeOpenAIServer() as two:
        assert one.port != two.port


def test_start_fails_cleanly_when_the_port_is_taken(fake_openai):
    clash = FakeOpenAIServer(port=fake_openai.port)
    with pytest.raises(OSError):  # noqa: PT011 — the errno varies by platform
        clash.start()
    assert "stopped" in repr(clash)


def test_explicit_chunks_are_the_json_content_too(api):
    api.server.queue(Reply(chunks=["a", "b"]))
    assert api.chat().json()["choices"][0]["message"]["content"] == "ab"


async def test_serves_concurrent_async_clients(fake_openai):
    import asyncio

    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    async with httpx2.AsyncClient(timeout=5.0) as client:
        calls = [
            client.post(fake_openai.base_url + "/chat/completions", json=body) for _ in range(64)
        ]
        responses = await asyncio.gather(*calls)
    assert {r.status_code for r in responses} == {200}
    assert len({r.headers["x-request-id"] for r in responses}) == 64
    assert len(fake_openai.requests) == 64


def test_a_server_told_not_to_record_keeps_no_request() -> None:
    """The ``local`` provider's server lives as long as its process: it keeps nothing."""
    with FakeOpenAIServer(record=False) as server:
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        answer = httpx2.post(f"{server.base_url}/chat/completions", json=body)
        assert answer.status_code == 200
        assert server.requests == []
