"""Encoding callm requests into OpenAI Chat Completions HTTP requests (PROTOCOLS §1, §5, §6)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

import callm
from callm import Quirks
from callm._config.providers import BUILTIN, ProviderSpec, build_endpoint
from callm._core.endpoint import Endpoint
from callm._core.types import (
    Image,
    Message,
    Reasoning,
    Refusal,
    Request,
    Text,
    Tool,
    ToolCall,
    ToolResult,
)
from callm.protocols.openai_chat.client import (
    LEGACY_MAX_TOKENS,
    NO_STREAM_OPTIONS,
    RANDOM_SEED,
    SHORT_TOOL_IDS,
    encode,
    encode_body,
    encode_models,
    encode_text_completion,
)

HEADERS = {
    "content-type": "application/json",
    "accept": "application/json",
    "authorization": "Bearer sk-test",
}


# OpenAI's own quirks (the built-in "openai" entry's, minus prompt_cache_key).
OPENAI = Quirks(max_tokens_field="max_completion_tokens")


def flags(*names: str) -> Quirks:
    """Quirks from the older flag names, as a config's ``quirks = [...]`` list gives them."""
    return Quirks.of(list(names), Quirks())


def endpoint(quirks: Quirks = OPENAI, **kw: Any) -> Endpoint:
    values: dict[str, Any] = {
        "provider": "openai",
        "protocol": "openai_chat",
        "base_url": "https://api.openai.com/v1",
        "headers": HEADERS,
        "secret_headers": frozenset({"authorization"}),
        "quirks": quirks,
    }
    values.update(kw)
    return Endpoint(**values)


def request(*messages: Message, **kw: Any) -> Request:
    return Request(
        model=kw.pop("model", "gpt-4o-mini"), messages=messages or (Message.user("hi"),), **kw
    )


def body_of(req: Request, ep: Endpoint | None = None) -> dict[str, Any]:
    return encode_body(ep or endpoint(), req)


# --- the HTTP request -------------------------------------------------------------------


def test_encode_builds_post_to_chat_completions() -> None:
    http = encode(endpoint(), request(Message.user("Hello")))
    assert http.method == "POST"
    assert http.url == "https://api.openai.com/v1/chat/completions"
    assert http.headers["authorization"] == "Bearer sk-test"
    assert http.headers["content-type"] == "application/json"
    assert "authorization" in http.secret_headers
    assert json.loads(http.body) == {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "Hello"}],
    }


def test_body_is_utf8_json_without_ascii_escapes() -> None:
    http = encode(endpoint(), request(Message.user("日本 é 🎉")))
    assert "日本 é 🎉".encode() in http.body
    assert json.loads(http.body.decode("utf-8"))["messages"][0]["content"] == "日本 é 🎉"


def test_repr_of_http_request_hides_headers() -> None:
    http = encode(endpoint(), request())
    assert "sk-test" not in repr(http)


def test_extra_headers_are_merged_into_the_request_only() -> None:
    ep = endpoint()
    http = encode(ep, request(extra_headers={"x-trace": "abc", "openai-project": "proj_1"}))
    assert http.headers["x-trace"] == "abc"
    assert http.headers["openai-project"] == "proj_1"
    assert http.headers["authorization"] == "Bearer sk-test"
    assert "x-trace" not in ep.headers  # the shared endpoint headers are untouched


def test_token_provider_is_called_per_request() -> None:
    tokens = iter(["t1", "t2"])
    ep = endpoint(token_provider=lambda: next(tokens))
    assert encode(ep, request()).headers["authorization"] == "Bearer t1"
    assert encode(ep, request()).headers["authorization"] == "Bearer t2"


# --- roles ------------------------------------------------------------------------------


def test_every_role() -> None:
    call = ToolCall("call_1", "get_capital", {"country": "UK"})
    messages = (
        Message.system("Be terse."),
        Message("developer", (Text("Dev rules."),)),
        Message.user("What is the capital?"),
        Message.assistant("Let me check.", call),
        Message.tool("call_1", "London"),
    )
    body = body_of(request(*messages))
    assert body["messages"] == [
        {"role": "system", "content": "Be terse."},
        {"role": "developer", "content": "Dev rules."},
        {"role": "user", "content": "What is the capital?"},
        {
            "role": "assistant",
            "content": "Let me check.",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_capital", "arguments": '{"country":"UK"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "London"},
    ]


def test_assistant_with_only_tool_calls_has_null_content() -> None:
    calls = (ToolCall("a", "f", {"x": 1}), ToolCall("b", "g", {}))
    body = body_of(request(Message.user("go"), Message("assistant", calls)))
    entry = body["messages"][1]
    assert entry["content"] is None
    assert [c["id"] for c in entry["tool_calls"]] == ["a", "b"]
    assert [json.loads(c["function"]["arguments"]) for c in entry["tool_calls"]] == [{"x": 1}, {}]


def test_assistant_text_parts_are_joined_and_reasoning_dropped() -> None:
    msg = Message("assistant", (Reasoning("hmm"), Text("Hel"), Text("lo")))
    entry = body_of(request(Message.user("x"), msg))["messages"][1]
    assert entry == {"role": "assistant", "content": "Hello"}


def test_assistant_refusal_is_sent_back() -> None:
    msg = Message("assistant", (Refusal("I can't help with that."),))
    entry = body_of(request(Message.user("x"), msg))["messages"][1]
    assert entry["refusal"] == "I can't help with that."


def test_invalid_tool_call_arguments_are_replayed_raw() -> None:
    call = ToolCall("c1", "f", {}, raw_arguments='{"broken": ', invalid_arguments=True)
    entry = body_of(request(Message.user("x"), Message("assistant", (call,))))["messages"][1]
    assert entry["tool_calls"][0]["function"]["arguments"] == '{"broken": '


def test_tool_message_with_several_results_becomes_one_message_each() -> None:
    msg = Message("tool", (ToolResult("c1", "one"), ToolResult("c2", "two", is_error=True)))
    body = body_of(request(Message.user("x"), msg))
    assert body["messages"][1:] == [
        {"role": "tool", "tool_call_id": "c1", "content": "one"},
        {"role": "tool", "tool_call_id": "c2", "content": "two"},
    ]


def test_message_name_is_sent() -> None:
    msg = Message("user", (Text("hi"),), name="alice")
    assert body_of(request(msg))["messages"][0] == {
        "role": "user",
        "content": "hi",
        "name": "alice",
    }


def test_system_with_several_text_parts_uses_part_array() -> None:
    msg = Message("system", (Text("a"), Text("b")))
    assert body_of(request(msg))["messages"][0]["content"] == [
        {"type": "text", "text": "a"},
        {"type": "text", "text": "b"},
    ]


# --- content parts ----------------------------------------------------------------------


def test_user_images_data_url_and_https_with_detail() -> None:
    png = Image.from_bytes(b"\x89PNG\r\n", "image/png", detail="low")
    remote = Image("https://example.com/cat.jpg")
    high = Image("https://example.com/dog.jpg", detail="high")
    body = body_of(request(Message.user("What is this?", png, remote, high)))
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": png.url, "detail": "low"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
        {
            "type": "image_url",
            "image_url": {"url": "https://example.com/dog.jpg", "detail": "high"},
        },
    ]
    assert png.url.startswith("data:image/png;base64,")


def test_user_message_with_only_an_image_uses_part_array() -> None:
    body = body_of(request(Message.user(Image("https://x/y.png"))))
    assert body["messages"][0]["content"] == [
        {"type": "image_url", "image_url": {"url": "https://x/y.png"}}
    ]


@pytest.mark.parametrize(
    ("message", "words"),
    [
        (Message("system", (Text("x"), Image("https://x/y.png"))), ["system", "image"]),
        (Message("developer", (Image("https://x/y.png"),)), ["developer", "image"]),
        (Message("assistant", (Image("https://x/y.png"),)), ["assistant", "image"]),
        (Message("user", (ToolCall("c", "f", {}),)), ["user", "tool_call"]),
        (Message("user", (ToolResult("c", "r"),)), ["user", "tool_result"]),
        (Message("system", (ToolCall("c", "f", {}),)), ["system", "tool_call"]),
        (Message("assistant", (ToolResult("c", "r"),)), ["assistant", "tool_result"]),
        (Message("tool", (Text("loose text"),)), ["tool", "text"]),
    ],
)
def test_invalid_content_raises_clear_error(message: Message, words: list[str]) -> None:
    with pytest.raises(callm.InvalidRequestError) as info:
        body_of(request(message))
    text = str(info.value)
    for word in words:
        assert word in text
    assert isinstance(info.value, callm.CallmError)


# --- tools ------------------------------------------------------------------------------


def test_tools_are_wrapped_as_functions() -> None:
    schema = {
        "type": "object",
        "properties": {"country": {"type": "string"}},
        "required": ["country"],
        "additionalProperties": False,
    }
    tools = (
        Tool("get_capital", "Capital of a country.", schema, strict=True),
        Tool("noop"),
    )
    body = body_of(request(tools=tools))
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_capital",
                "description": "Capital of a country.",
                "parameters": schema,
                "strict": True,
            },
        },
        {
            "type": "function",
            "function": {"name": "noop", "parameters": {"type": "object", "properties": {}}},
        },
    ]


def test_no_tools_means_no_tools_key() -> None:
    body = body_of(request())
    assert "tools" not in body
    assert "tool_choice" not in body


@pytest.mark.parametrize(
    ("choice", "wire"),
    [
        ("auto", "auto"),
        ("none", "none"),
        ("required", "required"),
        ("get_capital", {"type": "function", "function": {"name": "get_capital"}}),
        (
            {"type": "function", "function": {"name": "x"}},
            {"type": "function", "function": {"name": "x"}},
        ),
        (
            {"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": []}},
            {"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": []}},
        ),
    ],
)
def test_tool_choice(choice: Any, wire: Any) -> None:
    assert body_of(request(tool_choice=choice))["tool_choice"] == wire


# --- response_format --------------------------------------------------------------------


def test_flat_json_schema_is_nested() -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    fmt = {"type": "json_schema", "name": "City", "schema": schema, "strict": True}
    assert body_of(request(response_format=fmt))["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "City", "schema": schema, "strict": True},
    }


def test_flat_json_schema_without_name_gets_one() -> None:
    fmt = {"type": "json_schema", "schema": {"type": "object"}}
    wire = body_of(request(response_format=fmt))["response_format"]
    assert wire["type"] == "json_schema"
    assert wire["json_schema"]["schema"] == {"type": "object"}
    assert isinstance(wire["json_schema"]["name"], str)
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,64}", wire["json_schema"]["name"])


def test_json_object_and_nested_formats_pass_through() -> None:
    assert body_of(request(response_format={"type": "json_object"}))["response_format"] == {
        "type": "json_object"
    }
    nested = {"type": "json_schema", "json_schema": {"name": "X", "schema": {"type": "object"}}}
    assert body_of(request(response_format=nested))["response_format"] == nested


# --- sampling and other parameters ------------------------------------------------------


def test_max_tokens_uses_max_completion_tokens_by_default() -> None:
    body = body_of(request(max_tokens=256))
    assert body["max_completion_tokens"] == 256
    assert "max_tokens" not in body


def test_max_tokens_legacy_quirk() -> None:
    body = body_of(request(max_tokens=256), endpoint(flags(LEGACY_MAX_TOKENS)))
    assert body["max_tokens"] == 256
    assert "max_completion_tokens" not in body


def test_sampling_parameters() -> None:
    body = body_of(
        request(temperature=0.0, top_p=0.5, stop=("END", "STOP"), seed=7, n=3, user="u-1")
    )
    assert body["temperature"] == 0.0  # zero is a value, not "unset"
    assert body["top_p"] == 0.5
    assert body["stop"] == ["END", "STOP"]
    assert body["seed"] == 7
    assert body["n"] == 3
    assert body["user"] == "u-1"


def test_seed_zero_is_sent() -> None:
    assert body_of(request(seed=0))["seed"] == 0


def test_unset_parameters_are_omitted() -> None:
    body = body_of(request())
    assert set(body) == {"model", "messages"}


def test_random_seed_quirk() -> None:
    body = body_of(request(seed=11), endpoint(flags(RANDOM_SEED)))
    assert body["random_seed"] == 11
    assert "seed" not in body


def test_stream_requests_usage() -> None:
    body = body_of(request(stream=True))
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}


def test_no_stream_options_quirk() -> None:
    body = body_of(request(stream=True), endpoint(flags(NO_STREAM_OPTIONS)))
    assert body["stream"] is True
    assert "stream_options" not in body


def test_extra_body_passes_through_and_wins() -> None:
    body = body_of(
        request(
            temperature=0.3,
            stream=True,
            extra_body={
                "temperature": 0.9,
                "reasoning_effort": "low",
                "stream_options": {"include_usage": False},
            },
        )
    )
    assert body["temperature"] == 0.9
    assert body["reasoning_effort"] == "low"
    assert body["stream_options"] == {"include_usage": False}


# --- Mistral short tool ids -------------------------------------------------------------


def test_short_tool_ids_are_mapped_consistently() -> None:
    ep = endpoint(flags(SHORT_TOOL_IDS))
    long_id = "call_ZR5UUuTt3pf61kjwAJIYdVMj"
    other_id = "pyd_ai_cee885c699414386a7e14b7ec43cadbc"
    messages = (
        Message.user("x"),
        Message("assistant", (ToolCall(long_id, "f", {}), ToolCall(other_id, "g", {}))),
        Message("tool", (ToolResult(long_id, "r1"), ToolResult(other_id, "r2"))),
    )
    body = body_of(request(*messages), ep)
    call_ids = [c["id"] for c in body["messages"][1]["tool_calls"]]
    result_ids = [m["tool_call_id"] for m in body["messages"][2:]]
    assert call_ids == result_ids
    assert call_ids[0] != call_ids[1]
    for tid in call_ids:
        assert re.fullmatch(r"[A-Za-z0-9]{9}", tid)
    # Stable across requests: a later turn re-sends the same history with the same ids.
    again = body_of(request(*messages), ep)
    assert [c["id"] for c in again["messages"][1]["tool_calls"]] == call_ids


def test_short_tool_ids_keep_valid_ids() -> None:
    ep = endpoint(flags(SHORT_TOOL_IDS))
    messages = (
        Message.user("x"),
        Message("assistant", (ToolCall("abcDEF123", "f", {}),)),
        Message.tool("abcDEF123", "r"),
    )
    body = body_of(request(*messages), ep)
    assert body["messages"][1]["tool_calls"][0]["id"] == "abcDEF123"
    assert body["messages"][2]["tool_call_id"] == "abcDEF123"


def test_tool_ids_untouched_without_quirk() -> None:
    messages = (
        Message.user("x"),
        Message("assistant", (ToolCall("call_long_id_1", "f", {}),)),
        Message.tool("call_long_id_1", "r"),
    )
    body = body_of(request(*messages))
    assert body["messages"][1]["tool_calls"][0]["id"] == "call_long_id_1"
    assert body["messages"][2]["tool_call_id"] == "call_long_id_1"


# --- Azure, text completions, models ----------------------------------------------------


def azure_endpoint() -> Endpoint:
    return endpoint(
        provider="azure",
        base_url="https://r.openai.azure.com/openai",
        headers={"content-type": "application/json", "api-key": "k"},
        secret_headers=frozenset({"api-key"}),
        query="?api-version=2024-10-21",
        deployment_urls=True,
    )


def test_azure_deployment_url() -> None:
    http = encode(azure_endpoint(), request(model="my-gpt4o"))
    assert http.url == (
        "https://r.openai.azure.com/openai/deployments/my-gpt4o/chat/completions"
        "?api-version=2024-10-21"
    )
    assert http.headers["api-key"] == "k"
    assert "authorization" not in http.headers


def test_text_completion_request() -> None:
    http = encode_text_completion(
        endpoint(), "gpt-3.5-turbo-instruct", "Say hi", {"max_tokens": 5}, False
    )
    assert http.method == "POST"
    assert http.url == "https://api.openai.com/v1/completions"
    assert json.loads(http.body) == {
        "model": "gpt-3.5-turbo-instruct",
        "prompt": "Say hi",
        "max_tokens": 5,
    }


def test_text_completion_stream_and_quirk() -> None:
    http = encode_text_completion(endpoint(), "m", "p", {}, True)
    assert json.loads(http.body) == {
        "model": "m",
        "prompt": "p",
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    http = encode_text_completion(endpoint(flags(NO_STREAM_OPTIONS)), "m", "p", {}, True)
    assert json.loads(http.body) == {"model": "m", "prompt": "p", "stream": True}


def test_text_completion_on_azure_is_deployment_scoped() -> None:
    http = encode_text_completion(azure_endpoint(), "inst", "p", {}, False)
    assert http.url == (
        "https://r.openai.azure.com/openai/deployments/inst/completions?api-version=2024-10-21"
    )


def test_models_request() -> None:
    http = encode_models(endpoint())
    assert http.method == "GET"
    assert http.url == "https://api.openai.com/v1/models"
    assert http.body is None
    assert http.headers["authorization"] == "Bearer sk-test"
    assert "content-type" not in http.headers


# --- provider specs and endpoints -------------------------------------------------------


def test_build_endpoint_bearer() -> None:
    ep = build_endpoint(BUILTIN["openai"], "https://api.openai.com/v1/", "sk-abc")
    assert ep.base_url == "https://api.openai.com/v1"
    assert ep.headers["authorization"] == "Bearer sk-abc"
    assert "authorization" in ep.secret_headers
    assert ep.key_env == "OPENAI_API_KEY"
    assert ep.query == ""
    assert not ep.deployment_urls
    assert ep.url("/chat/completions", "gpt-4o") == "https://api.openai.com/v1/chat/completions"


def test_build_endpoint_api_key_auth() -> None:
    spec = ProviderSpec("custom", "https://x.example/v1", auth="api-key")
    ep = build_endpoint(spec, "https://x.example/v1", "secret")
    assert ep.headers["api-key"] == "secret"
    assert "authorization" not in ep.headers
    assert ep.secret_headers == frozenset({"api-key"})


def test_build_endpoint_without_key_or_auth_none() -> None:
    spec = ProviderSpec("local", "http://localhost:8080/v1", auth="none", key_required=False)
    ep = build_endpoint(spec, "http://localhost:8080/v1", "ignored")
    assert "authorization" not in ep.headers
    assert "api-key" not in ep.headers
    assert ep.secret_headers == frozenset()
    ep = build_endpoint(BUILTIN["ollama"], "http://localhost:11434/v1", None)
    assert "authorization" not in ep.headers


def test_build_endpoint_custom_headers_lowercased() -> None:
    spec = ProviderSpec("router", "https://openrouter.ai/api/v1", headers={"X-Title": "callm"})
    ep = build_endpoint(spec, "https://openrouter.ai/api/v1", "k")
    assert ep.headers["x-title"] == "callm"


def test_build_endpoint_token_provider_header_is_secret() -> None:
    spec = ProviderSpec(
        "entra", "https://r.openai.azure.com/openai/v1", token_provider=lambda: "aad"
    )
    ep = build_endpoint(spec, "https://r.openai.azure.com/openai/v1", None)
    assert "authorization" in ep.secret_headers
    assert ep.request_headers()["authorization"] == "Bearer aad"


@pytest.mark.parametrize(
    "base",
    [
        "https://r.openai.azure.com",
        "https://r.openai.azure.com/",
        "https://r.openai.azure.com/openai",
    ],
)
def test_azure_classic_addressing(base: str) -> None:
    ep = build_endpoint(BUILTIN["azure"], base, "k")
    assert ep.headers["api-key"] == "k"
    assert "authorization" not in ep.headers
    assert ep.deployment_urls
    assert ep.url("/chat/completions", "dep") == (
        "https://r.openai.azure.com/openai/deployments/dep/chat/completions?api-version=2024-10-21"
    )


def test_azure_api_version_from_spec() -> None:
    from dataclasses import replace

    spec = replace(BUILTIN["azure"], api_version="2025-01-01-preview")
    ep = build_endpoint(spec, "https://r.openai.azure.com", "k")
    assert ep.query == "?api-version=2025-01-01-preview"


def test_azure_v1_base_uses_plain_paths() -> None:
    ep = build_endpoint(BUILTIN["azure"], "https://r.openai.azure.com/openai/v1/", "k")
    assert ep.query == ""
    assert not ep.deployment_urls
    assert (
        ep.url("/chat/completions", "dep")
        == "https://r.openai.azure.com/openai/v1/chat/completions"
    )
    http = encode(ep, request(model="dep"))
    assert json.loads(http.body)["model"] == "dep"


def test_builtin_mistral_quirks_reach_the_wire() -> None:
    ep = build_endpoint(BUILTIN["mistral"], "https://api.mistral.ai/v1", "k")
    body = encode_body(ep, request(max_tokens=5, seed=1, stream=True))
    assert body["max_tokens"] == 5
    assert body["random_seed"] == 1
    assert "seed" not in body
    assert "stream_options" not in body


def test_provider_spec_repr_hides_key() -> None:
    spec = ProviderSpec("x", "https://x", api_key="sk-very-secret")
    assert "sk-very-secret" not in repr(spec)
