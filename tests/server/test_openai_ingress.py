"""The official openai SDK as a caller of the gateway, with OpenAI and Anthropic upstreams."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from gateway_process import UPSTREAM_KEY, GatewayProcess

from callm.testing import FakeOpenAIServer, FakeToolCall, Fault, Reply

UPSTREAMS = ["openai/gpt-4o-mini", "anthropic/claude-sonnet-4-5", "gemini/gemini-2.5-flash"]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def post(gateway: GatewayProcess, path: str, body: Any) -> tuple[int, Any]:
    """A raw POST without any key."""
    request = urllib.request.Request(
        gateway.url + path, json.dumps(body).encode(), {"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


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
def test_a_reply_from_any_upstream(
    gateway: GatewayProcess, upstream: FakeOpenAIServer, model: str
) -> None:
    upstream.queue(Reply("Hello from upstream."))
    client = sdk(gateway, gateway.new_key())
    reply = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Hi"}], max_tokens=20
    )
    assert reply.choices[0].message.content == "Hello from upstream."
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None
    assert reply.usage.prompt_tokens > 0
    assert reply.usage.completion_tokens > 0
    assert reply.model == model
    # The upstream got the gateway's key, never the caller's.
    sent = upstream.requests[-1]
    assert UPSTREAM_KEY in json.dumps(sent.headers)


@pytest.mark.parametrize("model", UPSTREAMS)
def test_a_stream_from_any_upstream(
    gateway: GatewayProcess, upstream: FakeOpenAIServer, model: str
) -> None:
    upstream.queue(Reply("One two three four."))
    client = sdk(gateway, gateway.new_key())
    chunks = list(
        client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": "Count"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "One two three four."
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens > 0


@pytest.mark.parametrize("model", UPSTREAMS)
@pytest.mark.parametrize("stream", [False, True])
def test_tool_calls_survive(
    gateway: GatewayProcess, upstream: FakeOpenAIServer, model: str, stream: bool
) -> None:
    upstream.queue(Reply(tool_calls=[FakeToolCall("get_weather", {"city": "Paris"})]))
    client = sdk(gateway, gateway.new_key())
    messages: Any = [{"role": "user", "content": "Weather in Paris?"}]
    if stream:
        with client.chat.completions.stream(model=model, messages=messages, tools=[WEATHER]) as s:
            for _ in s:
                pass
            completion = s.get_final_completion()
    else:
        completion = client.chat.completions.create(model=model, messages=messages, tools=[WEATHER])
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls or []
    assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        ("get_weather", {"city": "Paris"})
    ]
    # The tool result goes back through the gateway to the same upstream.
    upstream.queue(Reply("Sunny."))
    again = client.chat.completions.create(
        model=model,
        messages=[
            *messages,
            completion.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": calls[0].id, "content": "sunny"},
        ],
        tools=[WEATHER],
    )
    assert again.choices[0].message.content == "Sunny."


def test_an_alias_reaches_its_model(gateway: GatewayProcess, upstream: FakeOpenAIServer) -> None:
    upstream.queue(Reply("via alias"))
    reply = sdk(gateway, gateway.new_key()).chat.completions.create(
        model="fast", messages=[{"role": "user", "content": "Hi"}]
    )
    assert reply.choices[0].message.content == "via alias"
    assert upstream.requests[-1].json["model"] == "gpt-4o-mini"


def test_a_bare_model_name_goes_to_openai(
    gateway: GatewayProcess, upstream: FakeOpenAIServer
) -> None:
    upstream.queue(Reply("bare"))
    reply = sdk(gateway, gateway.new_key()).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}]
    )
    assert reply.choices[0].message.content == "bare"
    assert upstream.requests[-1].path.endswith("/chat/completions")


def test_models_are_listed(gateway: GatewayProcess) -> None:
    names = [m.id for m in sdk(gateway, gateway.new_key()).models.list()]
    assert {"fast", "claude"} <= set(names)


def test_no_key_wrong_key_revoked_key_are_401(gateway: GatewayProcess) -> None:
    good = gateway.new_key()
    status, body = post(gateway, "/v1/chat/completions", {"model": "fast", "messages": []})
    assert status == 401
    assert body["error"]["code"] == "missing_api_key"
    with pytest.raises(openai.AuthenticationError):
        sdk(gateway, "sk-callm-" + "x" * 32).chat.completions.create(
            model="fast", messages=[{"role": "user", "content": "Hi"}]
        )
    status, keys = gateway.admin("GET", "/admin/keys")
    key_id = next(k["id"] for k in keys["data"] if good.startswith(k["prefix"]))
    assert gateway.admin("DELETE", f"/admin/keys/{key_id}")[0] == 200
    with pytest.raises(openai.AuthenticationError) as caught:
        sdk(gateway, good).chat.completions.create(
            model="fast", messages=[{"role": "user", "content": "Hi"}]
        )
    assert caught.value.code == "invalid_api_key"


def test_a_model_outside_the_key_is_403(gateway: GatewayProcess) -> None:
    key = gateway.new_key(models=["anthropic/*"])
    with pytest.raises(openai.PermissionDeniedError) as caught:
        sdk(gateway, key).chat.completions.create(
            model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}]
        )
    assert caught.value.code == "model_not_allowed"


def test_an_unknown_model_is_404(gateway: GatewayProcess) -> None:
    with pytest.raises(openai.NotFoundError):
        sdk(gateway, gateway.new_key()).chat.completions.create(
            model="nosuch/model", messages=[{"role": "user", "content": "Hi"}]
        )


@pytest.mark.parametrize("name", ["openai/../../admin", "http://evil.test/x", "a?b=c", "x%2f"])
def test_model_names_cannot_steer_the_upstream_url(gateway: GatewayProcess, name: str) -> None:
    with pytest.raises(openai.BadRequestError):
        sdk(gateway, gateway.new_key()).chat.completions.create(
            model=name, messages=[{"role": "user", "content": "Hi"}]
        )


def test_bad_input_is_400_naming_the_field(gateway: GatewayProcess) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk(gateway, gateway.new_key()).chat.completions.create(
            model="fast", messages=[{"role": "robot", "content": "Hi"}]
        )
    assert "messages[0].role" in caught.value.message


def test_a_body_over_the_limit_is_413(gateway: GatewayProcess) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        sdk(gateway, gateway.new_key()).chat.completions.create(
            model="fast", messages=[{"role": "user", "content": "x" * 300_000}]
        )
    assert caught.value.status_code == 413


def test_an_upstream_429_is_a_429_with_retry_after(
    gateway: GatewayProcess, upstream: FakeOpenAIServer
) -> None:
    upstream.queue(*[Fault.rate_limit(retry_after=7)] * 3)
    with pytest.raises(openai.RateLimitError) as caught:
        sdk(gateway, gateway.new_key()).chat.completions.create(
            model="openai/gpt-4o-mini",
            messages=[{"role": "user", "content": "Hi"}],
        )
    assert caught.value.response.headers["retry-after"] == "7"


def test_an_upstream_401_is_the_gateways_problem(
    gateway: GatewayProcess, upstream: FakeOpenAIServer
) -> None:
    upstream.queue(Fault.unauthorized())
    with pytest.raises(openai.APIStatusError) as caught:
        sdk(gateway, gateway.new_key()).chat.completions.create(
            model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}]
        )
    assert caught.value.status_code == 502
    assert "gateway" in caught.value.message
    assert "Incorrect API key" not in caught.value.message


def test_a_failing_model_falls_back(gateway: GatewayProcess, upstream: FakeOpenAIServer) -> None:
    upstream.queue(*[Fault.server_error()] * 3, Reply("from the fallback"))
    reply = sdk(gateway, gateway.new_key()).chat.completions.create(
        model="openai/gpt-4o", messages=[{"role": "user", "content": "Hi"}]
    )
    assert reply.choices[0].message.content == "from the fallback"
    assert upstream.requests[-1].path == "/v1/messages"


def test_an_error_mid_stream_reaches_the_sdk(
    gateway: GatewayProcess, upstream: FakeOpenAIServer
) -> None:
    upstream.queue(Fault.stream_error(after_chunks=2, reply=Reply("a b c d e f")))
    stream = sdk(gateway, gateway.new_key()).chat.completions.create(
        model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}], stream=True
    )
    with pytest.raises(openai.APIError):
        for _ in stream:
            pass


def test_no_key_reaches_the_log(gateway: GatewayProcess, upstream: FakeOpenAIServer) -> None:
    key = gateway.new_key()
    upstream.queue(Reply("hi"))
    sdk(gateway, key).chat.completions.create(
        model="fast", messages=[{"role": "user", "content": "Hi"}]
    )
    log = gateway.log.read_text()
    assert '"status":200' in log
    for secret in (key, UPSTREAM_KEY, gateway.master_key or "unset"):
        assert secret not in log
