"""Encoding callm requests for the Gemini API: URLs, contents, config, tools, schemas."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from typing import Any

import pytest

import callm
from callm._config.providers import BUILTIN, build_endpoint
from callm._core.endpoint import Endpoint
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
from callm.protocols.gemini import client as gemini

BASE = "https://generativelanguage.googleapis.com/v1beta"


@pytest.fixture
def ep() -> Endpoint:
    return build_endpoint(BUILTIN["gemini"], BASE, "g-key")


def body_of(ep: Endpoint, **fields: Any) -> dict[str, Any]:
    fields.setdefault("model", "gemini-2.5-flash")
    fields.setdefault("messages", (Message.user("hi"),))
    http = gemini.encode(ep, Request(**fields))
    assert http.body is not None
    return json.loads(http.body)


def test_urls_and_auth_header(ep: Endpoint) -> None:
    plain = gemini.encode(ep, Request("gemini-2.5-flash", (Message.user("hi"),)))
    assert plain.url == f"{BASE}/models/gemini-2.5-flash:generateContent"
    assert plain.method == "POST"
    assert plain.headers["x-goog-api-key"] == "g-key"
    assert "x-goog-api-key" in plain.secret_headers
    streamed = gemini.encode(ep, Request("gemini-2.5-flash", (Message.user("hi"),), stream=True))
    assert streamed.url == f"{BASE}/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    assert "stream" not in json.loads(streamed.body or b"")  # the method says it, not the body


def test_stream_url_keeps_the_endpoint_query(ep: Endpoint) -> None:
    with_query = replace(ep, query="?labels=x")
    http = gemini.encode(with_query, Request("m", (Message.user("hi"),), stream=True))
    assert http.url == f"{BASE}/models/m:streamGenerateContent?labels=x&alt=sse"


def test_full_resource_names_are_used_as_given(ep: Endpoint) -> None:
    http = gemini.encode(ep, Request("tunedModels/mine", (Message.user("hi"),)))
    assert http.url == f"{BASE}/tunedModels/mine:generateContent"


def test_system_and_developer_become_system_instruction(ep: Endpoint) -> None:
    body = body_of(
        ep,
        messages=(
            Message.system("Be brief."),
            Message("developer", (Text("Use French."),)),
            Message.user("hi"),
        ),
    )
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}, {"text": "Use French."}]}
    assert body["contents"] == [{"role": "user", "parts": [{"text": "hi"}]}]


def test_system_message_with_an_image_is_refused(ep: Endpoint) -> None:
    message = Message("system", (Image("https://x/y.png"),))
    with pytest.raises(callm.InvalidRequestError, match="systemInstruction"):
        body_of(ep, messages=(message, Message.user("hi")))


def test_roles_and_consecutive_turns_merge(ep: Endpoint) -> None:
    call = ToolCall("c1", "lookup", {"q": "x"})
    body = body_of(
        ep,
        messages=(
            Message.user("a"),
            Message.user("b"),
            Message.assistant("thinking", call),
            Message.tool("c1", "found"),
            Message.user("thanks"),
            Message.assistant("ok"),
        ),
    )
    assert [c["role"] for c in body["contents"]] == ["user", "model", "user", "model"]
    assert body["contents"][0]["parts"] == [{"text": "a"}, {"text": "b"}]
    assert body["contents"][1]["parts"] == [
        {"text": "thinking"},
        {"functionCall": {"id": "c1", "name": "lookup", "args": {"q": "x"}}},
    ]
    # The tool result and the next user text share one user turn, name recovered by id.
    assert body["contents"][2]["parts"] == [
        {"functionResponse": {"id": "c1", "name": "lookup", "response": {"output": "found"}}},
        {"text": "thanks"},
    ]


def test_tool_result_name_and_errors(ep: Endpoint) -> None:
    named = Message("tool", (ToolResult("zz", "boom", name="fn", is_error=True),))
    body = body_of(ep, messages=(Message.user("go"), named))
    response = body["contents"][0]["parts"][1]["functionResponse"]
    assert response == {"id": "zz", "name": "fn", "response": {"error": "boom"}}
    with pytest.raises(callm.InvalidRequestError, match="function name"):
        body_of(ep, messages=(Message.user("go"), Message.tool("unknown", "x")))


def test_generation_config(ep: Endpoint) -> None:
    body = body_of(
        ep,
        temperature=0.2,
        top_p=0.9,
        top_k=40,
        max_tokens=100,
        stop=("END",),
        n=2,
        seed=7,
        user="someone",
    )
    assert body["generationConfig"] == {
        "temperature": 0.2,
        "topP": 0.9,
        "topK": 40,
        "maxOutputTokens": 100,
        "stopSequences": ["END"],
        "candidateCount": 2,
        "seed": 7,
    }
    assert set(body) == {"contents", "generationConfig"}  # Gemini has no "user" field


@pytest.mark.parametrize(
    "fmt",
    [
        {"type": "json_schema", "name": "city", "schema": {"type": "object"}, "strict": True},
        {"type": "json_schema", "json_schema": {"name": "city", "schema": {"type": "object"}}},
    ],
)
def test_structured_output(ep: Endpoint, fmt: dict[str, Any]) -> None:
    config = body_of(ep, response_format=fmt)["generationConfig"]
    assert config == {
        "responseMimeType": "application/json",
        "responseJsonSchema": {"type": "object"},
    }


def test_json_object_and_bad_format(ep: Endpoint) -> None:
    config = body_of(ep, response_format={"type": "json_object"})["generationConfig"]
    assert config == {"responseMimeType": "application/json"}
    assert "generationConfig" not in body_of(ep, response_format={"type": "text"})
    with pytest.raises(callm.InvalidRequestError, match="response_format"):
        body_of(ep, response_format={"type": "yaml"})


def test_tools_are_sent_as_json_schema(ep: Endpoint) -> None:
    params = {
        "type": "object",
        "properties": {"q": {"type": "string"}},
        "additionalProperties": False,
    }
    body = body_of(ep, tools=(Tool("search", "Find things", params, strict=True),))
    assert body["tools"] == [
        {
            "functionDeclarations": [
                {"name": "search", "description": "Find things", "parametersJsonSchema": params}
            ]
        }
    ]


@pytest.mark.parametrize(
    ("choice", "config"),
    [
        ("auto", {"mode": "AUTO"}),
        ("none", {"mode": "NONE"}),
        ("required", {"mode": "ANY"}),
        ("search", {"mode": "ANY", "allowedFunctionNames": ["search"]}),
        (
            {"type": "function", "function": {"name": "search"}},
            {"mode": "ANY", "allowedFunctionNames": ["search"]},
        ),
        ({"mode": "VALIDATED"}, {"mode": "VALIDATED"}),
    ],
)
def test_tool_choice(ep: Endpoint, choice: Any, config: dict[str, Any]) -> None:
    assert body_of(ep, tool_choice=choice)["toolConfig"] == {"functionCallingConfig": config}


def test_openapi_quirk_converts_schemas(ep: Endpoint) -> None:
    quirky = replace(ep, quirks=callm.Quirks(openapi_schema=True))
    schema = {
        "$defs": {"Unit": {"enum": ["c", "f"], "type": "string"}},
        "type": "object",
        "properties": {
            "city": {"type": ["string", "null"], "description": "where"},
            "unit": {"$ref": "#/$defs/Unit"},
            "days": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
            "tags": {"type": "array", "items": {"const": "x"}},
        },
        "required": ["city"],
        "additionalProperties": False,
    }
    body = body_of(
        quirky,
        tools=(Tool("weather", "", schema),),
        response_format={"type": "json_schema", "schema": schema},
    )
    expected = {
        "type": "OBJECT",
        "required": ["city"],
        "properties": {
            "city": {"type": "STRING", "nullable": True, "description": "where"},
            "unit": {"type": "STRING", "enum": ["c", "f"]},
            "days": {"type": "INTEGER", "nullable": True},
            "tags": {"type": "ARRAY", "items": {"enum": ["x"]}},
        },
    }
    assert body["tools"][0]["functionDeclarations"][0]["parameters"] == expected
    assert body["generationConfig"]["responseSchema"] == expected


def test_openapi_quirk_refuses_recursive_schemas() -> None:
    schema = {"$defs": {"N": {"type": "object", "properties": {"next": {"$ref": "#/$defs/N"}}}}}
    schema["$ref"] = "#/$defs/N"
    with pytest.raises(callm.InvalidRequestError, match="recursive"):
        gemini.to_openapi_schema(schema)


def test_images_and_documents(ep: Endpoint) -> None:
    png = Image.from_bytes(b"\x89PNG", "image/png")
    parts = (
        Text("look"),
        png,
        Image("https://example.com/cat.jpg", detail="low"),
        Image("gs://bucket/raw"),
        Document.from_bytes(b"%PDF", "application/pdf", title="spec"),
        Document("https://example.com/a", media_type="text/plain"),
        Document("data:text/plain,hello%20there"),
    )
    body = body_of(ep, messages=(Message("user", parts),))
    assert body["contents"][0]["parts"] == [
        {"text": "look"},
        {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(b"\x89PNG").decode()}},
        {"fileData": {"fileUri": "https://example.com/cat.jpg", "mimeType": "image/jpeg"}},
        {"fileData": {"fileUri": "gs://bucket/raw"}},
        {"inlineData": {"mimeType": "application/pdf", "data": base64.b64encode(b"%PDF").decode()}},
        {"fileData": {"fileUri": "https://example.com/a", "mimeType": "text/plain"}},
        {
            "inlineData": {
                "mimeType": "text/plain",
                "data": base64.b64encode(b"hello there").decode(),
            }
        },
    ]


def test_parts_in_the_wrong_place_are_refused(ep: Endpoint) -> None:
    with pytest.raises(callm.InvalidRequestError, match="assistant"):
        body_of(ep, messages=(Message("user", (ToolCall("c", "f", {}),)),))
    with pytest.raises(callm.InvalidRequestError, match="tool message"):
        body_of(ep, messages=(Message("tool", (Text("x"),)),))
    with pytest.raises(callm.InvalidRequestError, match="tool result"):
        body_of(ep, messages=(Message("assistant", (ToolResult("c", "x", name="f"),)),))
    bad_args = ToolCall("c", "f", {}, raw_arguments="{oops", invalid_arguments=True)
    with pytest.raises(callm.InvalidRequestError, match="not a JSON object"):
        body_of(ep, messages=(Message.user("x"), Message.assistant(bad_args)))


def test_raw_parts(ep: Endpoint) -> None:
    code = RawPart("gemini", "executableCode", {"executableCode": {"code": "1+1"}})
    grounding = RawPart("gemini", "groundingMetadata", {"webSearchQueries": ["x"]})
    body = body_of(ep, messages=(Message.user("x"), Message.assistant("y", code, grounding)))
    # Executable code goes back verbatim; metadata is information only.
    assert body["contents"][1]["parts"] == [{"text": "y"}, {"executableCode": {"code": "1+1"}}]
    foreign = RawPart("anthropic", "server_tool_use", {"type": "server_tool_use"})
    with pytest.raises(callm.InvalidRequestError, match="anthropic"):
        body_of(ep, messages=(Message.user("x"), Message.assistant(foreign)))


def test_reasoning_and_signature_markers(ep: Endpoint) -> None:
    message = Message.assistant(
        Reasoning("pondering", signature="S0"),
        Reasoning("", signature="S1"),
        Text("answer"),
        Reasoning("", signature="S2"),
        ToolCall("c", "f", {}),
        Refusal("no more"),
        Reasoning("", signature="S3"),
    )
    parts = body_of(ep, messages=(Message.user("q"), message))["contents"][1]["parts"]
    assert parts == [
        {"text": "pondering", "thought": True, "thoughtSignature": "S0"},
        {"text": "answer", "thoughtSignature": "S1"},
        {"functionCall": {"id": "c", "name": "f", "args": {}}, "thoughtSignature": "S2"},
        {"text": "no more"},
        {"text": "", "thoughtSignature": "S3"},
    ]


def test_extra_body_merges_generation_config(ep: Endpoint) -> None:
    extra = {
        "generationConfig": {"thinkingConfig": {"includeThoughts": True}},
        "safetySettings": [{"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "BLOCK_NONE"}],
    }
    body = body_of(ep, temperature=0.5, extra_body=extra)
    assert body["generationConfig"] == {
        "temperature": 0.5,
        "thinkingConfig": {"includeThoughts": True},
    }
    assert body["safetySettings"][0]["threshold"] == "BLOCK_NONE"


def test_extra_headers(ep: Endpoint) -> None:
    http = gemini.encode(
        ep, Request("m", (Message.user("x"),), extra_headers={"x-goog-user-project": "p"})
    )
    assert http.headers["x-goog-user-project"] == "p"
    assert http.headers["x-goog-api-key"] == "g-key"


def test_count_tokens_request(ep: Endpoint) -> None:
    plain = gemini.encode_count_tokens(ep, Request("gemini-2.5-flash", (Message.user("hi"),)))
    assert plain.url == f"{BASE}/models/gemini-2.5-flash:countTokens"
    assert json.loads(plain.body or b"") == {
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}]
    }
    full = gemini.encode_count_tokens(
        ep, Request("gemini-2.5-flash", (Message.system("s"), Message.user("hi")))
    )
    inner = json.loads(full.body or b"")["generateContentRequest"]
    assert inner["model"] == "models/gemini-2.5-flash"
    assert inner["systemInstruction"] == {"parts": [{"text": "s"}]}


def test_models_request(ep: Endpoint) -> None:
    http = gemini.encode_models(ep)
    assert http.method == "GET"
    assert http.url == f"{BASE}/models?pageSize=1000"
    assert "content-type" not in http.headers
    assert http.headers["x-goog-api-key"] == "g-key"
