"""Encoding callm requests for the OpenAI Responses API (``POST /responses``)."""

from __future__ import annotations

import json
from typing import Any

import pytest

import callm
from callm._core.endpoint import Endpoint
from callm._core.options import response_format_of, tool_choice_of
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
from callm.protocols.openai_responses import client as wire

EP = Endpoint(
    "openai-responses",
    "openai_responses",
    "https://api.openai.com/v1",
    {"authorization": "Bearer sk-x", "content-type": "application/json"},
    secret_headers=frozenset({"authorization"}),
)


def body(*messages: Message, **fields: Any) -> dict[str, Any]:
    request = Request("gpt-4o-mini", messages or (Message.user("hi"),), **fields)
    http = wire.encode(EP, request)
    return json.loads(http.body or b"")


def test_url_headers_and_minimal_body() -> None:
    http = wire.encode(EP, Request("gpt-4o-mini", (Message.user("hi"),)))
    assert http.method == "POST"
    assert http.url == "https://api.openai.com/v1/responses"
    assert http.headers["authorization"] == "Bearer sk-x"
    assert http.secret_headers == frozenset({"authorization"})
    assert json.loads(http.body or b"") == {
        "model": "gpt-4o-mini",
        "input": [{"role": "user", "content": "hi"}],
    }


def test_azure_query_is_kept_and_the_path_is_not_deployment_scoped() -> None:
    azure = Endpoint(
        "azure",
        "openai_responses",
        "https://r.openai.azure.com/openai",
        {"api-key": "k"},
        query="?api-version=2025-04-01-preview",
        deployment_urls=True,
    )
    http = wire.encode(azure, Request("my-deployment", (Message.user("hi"),)))
    assert http.url == "https://r.openai.azure.com/openai/responses?api-version=2025-04-01-preview"


def test_extra_headers_are_added() -> None:
    request = Request("m", (Message.user("hi"),), extra_headers={"OpenAI-Project": "p"})
    assert wire.encode(EP, request).headers["OpenAI-Project"] == "p"


def test_leading_system_and_developer_messages_become_instructions() -> None:
    b = body(
        Message.system("Be brief."),
        Message("developer", (Text("Use French."),)),
        Message.user("hi"),
        Message.system("Now be verbose."),
    )
    assert b["instructions"] == "Be brief.\n\nUse French."
    # A later system message keeps its place (and its role) in the conversation.
    assert b["input"] == [
        {"role": "user", "content": "hi"},
        {"role": "system", "content": "Now be verbose."},
    ]


def test_system_message_with_an_image_is_refused() -> None:
    with pytest.raises(callm.InvalidRequestError, match="system"):
        body(Message("system", (Image("https://x/y.png"),)), Message.user("hi"))


def test_user_parts_images_and_documents() -> None:
    pdf = Document.from_bytes(b"%PDF-1.4", title="report.pdf")
    b = body(
        Message.user(
            "look",
            Image("https://x/cat.png"),
            Image("data:image/png;base64,AAAA", detail="low"),
            pdf,
            Document("https://x/doc.pdf"),
            Document.from_bytes(b"plain", media_type="text/plain"),
        )
    )
    assert b["input"][0]["content"] == [
        {"type": "input_text", "text": "look"},
        {"type": "input_image", "image_url": "https://x/cat.png", "detail": "auto"},
        {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "low"},
        {"type": "input_file", "file_data": pdf.url, "filename": "report.pdf"},
        {"type": "input_file", "file_url": "https://x/doc.pdf"},
        {
            "type": "input_file",
            "file_data": "data:text/plain;base64,cGxhaW4=",
            "filename": "document.txt",
        },
    ]


def test_assistant_history_text_tool_calls_and_results() -> None:
    call = ToolCall("call_1", "get_weather", {"city": "Paris"})
    b = body(
        Message.user("weather?"),
        Message.assistant("Let me check.", call),
        Message.tool("call_1", "sunny"),
        Message.assistant(Refusal("I won't say more.")),
    )
    assert b["input"] == [
        {"role": "user", "content": "weather?"},
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Let me check."}],
        },
        {
            "type": "function_call",
            "call_id": "call_1",
            "name": "get_weather",
            "arguments": '{"city":"Paris"}',
        },
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "refusal", "refusal": "I won't say more."}],
        },
    ]


def test_malformed_tool_arguments_go_back_as_received() -> None:
    call = ToolCall("c", "f", {}, raw_arguments='{"a": ', invalid_arguments=True)
    b = body(Message.user("x"), Message.assistant(call), Message.tool("c", "err"))
    assert b["input"][1]["arguments"] == '{"a": '


def test_reasoning_is_echoed_with_the_id_of_the_item_that_followed_it() -> None:
    reasoning = Reasoning("thought", signature="fc_9", id="rs_1", data="ENC")
    call = ToolCall("call_1", "f", {})
    b = body(Message.user("x"), Message.assistant(reasoning, call), Message.tool("call_1", "ok"))
    assert b["input"][1] == {
        "type": "reasoning",
        "id": "rs_1",
        "summary": [{"type": "summary_text", "text": "thought"}],
        "encrypted_content": "ENC",
    }
    assert b["input"][2]["id"] == "fc_9"
    assert b["input"][2]["call_id"] == "call_1"


def test_reasoning_without_summary_and_before_text() -> None:
    reasoning = Reasoning("", signature="msg_2", id="rs_1")
    b = body(Message.user("x"), Message.assistant(reasoning, "answer"), Message.user("more"))
    assert b["input"][1] == {"type": "reasoning", "id": "rs_1", "summary": []}
    assert b["input"][2]["id"] == "msg_2"


def test_reasoning_from_another_provider_is_left_out() -> None:
    b = body(Message.user("x"), Message.assistant(Reasoning("hmm", signature="sig"), "answer"))
    assert [item.get("type") for item in b["input"][1:]] == ["message"]
    assert "id" not in b["input"][1]


def test_raw_parts_go_back_as_items_and_annotations_onto_their_text() -> None:
    search = {"type": "web_search_call", "id": "ws_1", "status": "completed"}
    citation = {"type": "url_citation", "url": "https://x", "start_index": 0, "end_index": 1}
    b = body(
        Message.user("x"),
        Message.assistant(
            RawPart("openai_responses", "web_search_call", search),
            "Paris",
            RawPart("openai_responses", "annotations", {"annotations": [citation]}),
        ),
    )
    assert b["input"][1] == search
    assert b["input"][2]["content"] == [
        {"type": "output_text", "text": "Paris", "annotations": [citation]}
    ]


def test_raw_parts_of_another_protocol_are_refused() -> None:
    raw = RawPart("anthropic", "server_tool_use", {"type": "server_tool_use"})
    with pytest.raises(callm.InvalidRequestError, match="anthropic"):
        body(Message.user("x"), Message.assistant(raw))


@pytest.mark.parametrize(
    ("message", "match"),
    [
        (Message.assistant(Image("https://x/y.png")), "assistant message cannot carry"),
        (Message.user(ToolCall("c", "f", {})), "cannot carry a tool_call"),
        (Message("tool", (Text("x"),)), "only tool results"),
        (Message("system", (Text("a"),)), None),
    ],
)
def test_content_the_protocol_cannot_carry(message: Message, match: str | None) -> None:
    if match is None:  # a system message after the first user turn is fine
        body(Message.user("x"), message)
        return
    with pytest.raises(callm.InvalidRequestError, match=match):
        body(Message.user("x"), message)


def test_tool_result_in_a_user_message_is_refused() -> None:
    with pytest.raises(callm.InvalidRequestError):
        body(Message("user", (ToolResult("c", "x"),)))


def test_sampling_tools_and_structured_output() -> None:
    tool = Tool("get", "Get it.", {"type": "object", "properties": {}}, strict=True)
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    b = body(
        max_tokens=50,
        temperature=0.2,
        top_p=0.9,
        user="u-1",
        tools=(tool, Tool("plain")),
        tool_choice="get",
        response_format={"type": "json_schema", "name": "A", "schema": schema, "strict": True},
        stream=True,
    )
    assert b["max_output_tokens"] == 50
    assert b["temperature"] == 0.2
    assert b["top_p"] == 0.9
    assert b["user"] == "u-1"
    assert b["stream"] is True
    assert b["tools"] == [
        {
            "type": "function",
            "name": "get",
            "description": "Get it.",
            "parameters": {"type": "object", "properties": {}},
            "strict": True,
        },
        {"type": "function", "name": "plain", "parameters": {"type": "object", "properties": {}}},
    ]
    assert b["tool_choice"] == {"type": "function", "name": "get"}
    assert b["text"] == {
        "format": {"type": "json_schema", "name": "A", "schema": schema, "strict": True}
    }
    assert "stream_options" not in b


@pytest.mark.parametrize(
    ("choice", "wire_choice"),
    [
        ("auto", "auto"),
        ("none", "none"),
        ("required", "required"),
        ({"type": "function", "function": {"name": "x"}}, {"type": "function", "name": "x"}),
        ({"type": "allowed_tools", "mode": "auto"}, {"type": "allowed_tools", "mode": "auto"}),
        ({"type": "function", "name": "x"}, {"type": "function", "name": "x"}),
    ],
)
def test_tool_choice(choice: Any, wire_choice: Any) -> None:
    assert wire.encode_tool_choice(tool_choice_of(choice)) == wire_choice


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ({"type": "json_object"}, {"type": "json_object"}),
        ({"type": "text"}, {"type": "text"}),
        (
            {"type": "json_schema", "schema": {}},
            {"type": "json_schema", "schema": {}, "name": "output"},
        ),
        (
            {"type": "json_schema", "json_schema": {"name": "N", "schema": {}, "strict": True}},
            {"type": "json_schema", "name": "N", "schema": {}, "strict": True},
        ),
    ],
)
def test_text_format(fmt: dict[str, Any], expected: dict[str, Any]) -> None:
    assert wire.encode_text_format(response_format_of(fmt)) == expected


@pytest.mark.parametrize(
    "fields",
    [{"stop": ("END",)}, {"seed": 1}, {"top_k": 5}, {"n": 2}],
    ids=["stop", "seed", "top_k", "n"],
)
def test_parameters_the_api_lacks_are_refused_not_dropped(fields: dict[str, Any]) -> None:
    with pytest.raises(callm.InvalidRequestError, match="Responses API"):
        body(**fields)


def test_n_of_one_is_fine() -> None:
    assert "n" not in body(n=1)


def test_extra_body_wins() -> None:
    b = body(max_tokens=5, extra_body={"store": False, "max_output_tokens": 9, "include": ["x"]})
    assert b["store"] is False
    assert b["max_output_tokens"] == 9
    assert b["include"] == ["x"]


def test_models_endpoint() -> None:
    http = wire.encode_models(EP)
    assert (http.method, http.url) == ("GET", "https://api.openai.com/v1/models")
