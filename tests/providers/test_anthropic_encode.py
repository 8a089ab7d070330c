"""Encoding callm Requests as Anthropic Messages requests (pure: no network)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

import callm
from callm._config.providers import BUILTIN, build_endpoint
from callm._core.types import (
    Document,
    Image,
    Message,
    RawPart,
    Reasoning,
    Refusal,
    Request,
    Text,
    Tool,
    ToolCall,
    ToolResult,
)
from callm.protocols.anthropic import client as anthropic

EP = build_endpoint(BUILTIN["anthropic"], "https://api.anthropic.com", "sk-ant-test")


def body(*messages: Message, **fields: Any) -> dict[str, Any]:
    fields.setdefault("model", "claude-sonnet-4-5")
    return anthropic.encode_body(Request(messages=messages, **fields))


def test_http_request_headers_and_url() -> None:
    http = anthropic.encode(EP, Request("claude-haiku-4-5", (Message.user("Hi"),)))
    assert http.method == "POST"
    assert http.url == "https://api.anthropic.com/v1/messages"
    assert http.headers["x-api-key"] == "sk-ant-test"
    assert http.headers["anthropic-version"] == "2023-06-01"
    assert "x-api-key" in http.secret_headers
    assert json.loads(http.body or b"") == {
        "model": "claude-haiku-4-5",
        "max_tokens": 16384,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
    }


def test_extra_headers_such_as_anthropic_beta_are_sent() -> None:
    beta = {"anthropic-beta": "context-1m-2025-08-07"}
    request = Request("claude-sonnet-4-5", (Message.user("Hi"),), extra_headers=beta)
    assert anthropic.encode(EP, request).headers["anthropic-beta"] == "context-1m-2025-08-07"


def test_system_messages_are_lifted_in_order_with_cache_marks() -> None:
    out = body(
        Message.system("Be brief."),
        Message.user("Hi"),
        Message("developer", (Text("One"), Text("Two")), cache=True),
    )
    assert out["system"] == [
        {"type": "text", "text": "Be brief."},
        {"type": "text", "text": "One"},
        {"type": "text", "text": "Two", "cache_control": {"type": "ephemeral"}},
    ]
    assert [m["role"] for m in out["messages"]] == ["user"]


def test_cache_mark_goes_on_the_last_block_of_any_message() -> None:
    out = body(
        Message("user", (Text("a"), Text("b")), cache=True),
        Message("assistant", (Text("c"), ToolCall("t1", "f", {})), cache=True),
        Message("tool", (ToolResult("t1", "r"),), cache=True),
    )
    marks = [[("cache_control" in b) for b in m["content"]] for m in out["messages"]]
    assert marks == [[False, True], [False, True], [True]]


def test_system_message_refuses_an_image() -> None:
    with pytest.raises(callm.InvalidRequestError, match="system prompt holds text only"):
        body(Message("system", (Image("https://x/y.png"),)), Message.user("Hi"))


def test_images_base64_and_url() -> None:
    png = Image.from_bytes(b"\x89PNG", "image/png")
    out = body(Message.user("Look", png, Image("https://example.com/a.jpg", detail="high")))
    assert out["messages"][0]["content"][1:] == [
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw=="},
        },
        {"type": "image", "source": {"type": "url", "url": "https://example.com/a.jpg"}},
    ]


@pytest.mark.parametrize("url", ["ftp://x/y.png", "data:image/svg+xml,<svg/>"])
def test_unusable_image_urls_are_refused(url: str) -> None:
    with pytest.raises(callm.InvalidRequestError):
        body(Message.user(Image(url)))


def test_documents_pdf_url_and_plain_text() -> None:
    pdf = Document.from_bytes(b"%PDF-1.4", title="Spec")
    text = Document.from_bytes("héllo\n".encode(), "text/plain")
    url = Document("https://example.com/a.pdf")
    blocks = body(Message.user(pdf, text, url))["messages"][0]["content"]
    assert blocks == [
        {
            "type": "document",
            "source": {
                "type": "base64",
                "media_type": "application/pdf",
                "data": base64.b64encode(b"%PDF-1.4").decode(),
            },
            "title": "Spec",
        },
        {
            "type": "document",
            "source": {"type": "text", "media_type": "text/plain", "data": "héllo\n"},
        },
        {"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"}},
    ]


def test_tool_round_trip_shapes_and_merged_results() -> None:
    out = body(
        Message.user("Weather in Paris and Rome?"),
        Message.assistant(
            Text("Checking."),
            ToolCall("toolu_1", "weather", {"city": "Paris"}),
            ToolCall("toolu_2", "weather", {"city": "Rome"}),
        ),
        Message.tool("toolu_1", "sunny"),
        Message.tool("toolu_2", "boom", is_error=True),
        Message.user("Thanks"),
    )
    assert out["messages"][1]["content"][1:] == [
        {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "toolu_2", "name": "weather", "input": {"city": "Rome"}},
    ]
    assert out["messages"][2] == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"},
            {"type": "tool_result", "tool_use_id": "toolu_2", "content": "boom", "is_error": True},
        ],
    }
    assert [m["role"] for m in out["messages"]] == ["user", "assistant", "user", "user"]


def test_malformed_tool_arguments_go_back_as_an_empty_object() -> None:
    call = ToolCall("toolu_1", "f", {}, raw_arguments='{"a":', invalid_arguments=True)
    out = body(Message.user("x"), Message.assistant(call))
    assert out["messages"][1]["content"] == [
        {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}
    ]


def test_misplaced_parts_are_refused() -> None:
    with pytest.raises(callm.InvalidRequestError, match="user message cannot carry"):
        body(Message("user", (ToolCall("t", "f", {}),)))
    with pytest.raises(callm.InvalidRequestError, match="assistant message cannot carry"):
        body(Message.user("x"), Message.assistant(Image("https://x/y.png")))
    with pytest.raises(callm.InvalidRequestError, match="only tool results"):
        body(Message("tool", (Text("x"),)))


def test_thinking_and_redacted_thinking_go_back_intact() -> None:
    out = body(
        Message.user("x"),
        Message.assistant(
            Reasoning("Let me think.", signature="sig=="),
            Reasoning("", data="opaque"),
            Reasoning("foreign reasoning"),  # from another protocol: no signature
            Reasoning("", id="rs_1", data="openai-encrypted"),
            Text("Answer"),
        ),
    )
    assert out["messages"][1]["content"] == [
        {"type": "thinking", "thinking": "Let me think.", "signature": "sig=="},
        {"type": "redacted_thinking", "data": "opaque"},
        {"type": "text", "text": "Answer"},
    ]


def test_refusal_and_empty_text_in_assistant_history() -> None:
    out = body(Message.user("x"), Message.assistant(Text(""), Refusal("I can't help.")))
    assert out["messages"][1]["content"] == [{"type": "text", "text": "I can't help."}]


def test_raw_parts_go_back_verbatim_and_citations_fold_into_their_text() -> None:
    server = {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}}
    cites = [{"type": "web_search_result_location", "url": "https://a", "cited_text": "x"}]
    out = body(
        Message.user("x"),
        Message.assistant(
            RawPart("anthropic", "server_tool_use", server),
            Text("Claim."),
            RawPart("anthropic", "citations", {"citations": cites}),
        ),
    )
    assert out["messages"][1]["content"] == [
        server,
        {"type": "text", "text": "Claim.", "citations": cites},
    ]


def test_raw_parts_of_other_protocols_are_refused() -> None:
    part = RawPart("openai_responses", "web_search_call", {"type": "web_search_call"})
    with pytest.raises(callm.InvalidRequestError, match="cannot be sent over anthropic"):
        body(Message.user("x"), Message.assistant(part))


def test_sampling_fields() -> None:
    out = body(
        Message.user("x"),
        max_tokens=77,
        temperature=0.2,
        top_p=0.9,
        top_k=40,
        stop=("END", "STOP"),
        user="user-123",
    )
    assert out["max_tokens"] == 77
    assert (out["temperature"], out["top_p"], out["top_k"]) == (0.2, 0.9, 40)
    assert out["stop_sequences"] == ["END", "STOP"]
    assert out["metadata"] == {"user_id": "user-123"}


@pytest.mark.parametrize(("field", "value"), [("seed", 3), ("n", 2)], ids=["seed", "n"])
def test_parameters_anthropic_lacks_are_refused(field: str, value: int) -> None:
    with pytest.raises(callm.InvalidRequestError, match=field):
        body(Message.user("x"), **{field: value})


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("claude-3-haiku-20240307", 4096),
        ("claude-3-opus-latest", 4096),
        ("claude-3-5-sonnet-20241022", 8192),
        ("claude-3-7-sonnet-latest", 16384),
        ("claude-sonnet-4-5", 16384),
        ("claude-opus-4-1-20250805", 16384),
        ("us.anthropic.claude-3-5-haiku-20241022-v1:0", 8192),
        ("my-proxy-alias", 4096),
    ],
)
def test_default_max_tokens_by_family(model: str, expected: int) -> None:
    assert anthropic.default_max_tokens(model) == expected
    assert body(Message.user("x"), model=model)["max_tokens"] == expected


def test_default_max_tokens_makes_room_for_a_thinking_budget() -> None:
    thinking = {"thinking": {"type": "enabled", "budget_tokens": 20000}}
    out = body(Message.user("x"), extra_body=thinking)
    assert out["max_tokens"] > 20000
    assert out["thinking"] == thinking["thinking"]


def test_tools_and_every_tool_choice_form() -> None:
    tool = Tool("weather", "Get weather.", {"type": "object", "properties": {}}, strict=True)
    out = body(Message.user("x"), tools=(tool, Tool("bare")))
    assert out["tools"] == [
        {
            "name": "weather",
            "description": "Get weather.",
            "input_schema": {"type": "object", "properties": {}},
            "strict": True,
        },
        {"name": "bare", "input_schema": {"type": "object", "properties": {}}},
    ]
    forms = {
        "auto": {"type": "auto"},
        "none": {"type": "none"},
        "required": {"type": "any"},
        "weather": {"type": "tool", "name": "weather"},
    }
    for given, wire in forms.items():
        assert body(Message.user("x"), tool_choice=given)["tool_choice"] == wire
    custom = {"type": "auto", "disable_parallel_tool_use": True}
    assert body(Message.user("x"), tool_choice=custom)["tool_choice"] == custom


def test_json_schema_becomes_native_structured_output() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "number"}}, "required": ["a"]}
    flat = {"type": "json_schema", "name": "Out", "schema": schema, "strict": True}
    nested = {"type": "json_schema", "json_schema": {"name": "Out", "schema": schema}}
    for fmt in (flat, nested):
        out = body(Message.user("x"), response_format=fmt)
        assert out["output_config"] == {"format": {"type": "json_schema", "schema": schema}}
    assert "output_config" not in body(Message.user("x"), response_format={"type": "text"})


def test_json_object_mode_is_refused() -> None:
    with pytest.raises(callm.InvalidRequestError, match="no JSON mode without a schema"):
        body(Message.user("x"), response_format={"type": "json_object"})


def test_stream_flag_and_extra_body_wins() -> None:
    out = body(Message.user("x"), stream=True, extra_body={"max_tokens": 5, "service_tier": "auto"})
    assert out["stream"] is True
    assert (out["max_tokens"], out["service_tier"]) == (5, "auto")
    assert "stream" not in body(Message.user("x"))


def test_count_tokens_request_drops_generation_fields() -> None:
    request = Request(
        "claude-sonnet-4-5",
        (Message.system("S"), Message.user("x")),
        max_tokens=10,
        temperature=0.5,
        stop=("z",),
        user="u",
        stream=True,
        tools=(Tool("f"),),
    )
    http = anthropic.encode_count_tokens(EP, request)
    assert http.url == "https://api.anthropic.com/v1/messages/count_tokens"
    sent = json.loads(http.body or b"")
    assert set(sent) == {"model", "messages", "system", "tools"}


def test_models_request() -> None:
    http = anthropic.encode_models(EP)
    assert (http.method, http.url) == ("GET", "https://api.anthropic.com/v1/models?limit=1000")
    assert http.body is None
    assert http.headers["anthropic-version"] == "2023-06-01"
