"""The Chat Completions server codec: round trips with the client codec, the openai SDK's own
types as the judge of every body and chunk, recorded real requests, and bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from callm import (
    APITimeoutError,
    AuthenticationError,
    InvalidRequestError,
    RateLimitError,
)
from callm._config.providers import BUILTIN, build_endpoint
from callm._core.http import HttpResponse
from callm._core.types import (
    FinishEvent,
    Image,
    Message,
    Reasoning,
    ReasoningDelta,
    Request,
    Response,
    StreamEvent,
    Text,
    TextDelta,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolCallEvent,
    ToolResult,
    Usage,
    UsageEvent,
)
from callm.protocols import server_codec_for
from callm.protocols._shared.sse import SSEDecoder
from callm.protocols.openai_chat import client as chat_client
from callm.protocols.openai_chat import server

ENDPOINT = build_endpoint(BUILTIN["openai"], "http://127.0.0.1:1/v1", "sk-" + "x" * 20)
WEATHER = Tool(
    "get_weather",
    "The weather in a city.",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
RECORDED = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "recorded"


def full_request(**changes: Any) -> Request:
    fields: dict[str, Any] = {
        "model": "gpt-4o-mini",
        "messages": (
            Message.system("Be brief."),
            Message("user", (Text("What is in this picture?"), Image("https://x.test/a.png"))),
            Message(
                "assistant",
                (Text("Let me check."), ToolCall("call_1", "get_weather", {"city": "Paris"})),
            ),
            Message("tool", (ToolResult("call_1", "sunny"),)),
            Message.user("Thanks"),
        ),
        "max_tokens": 50,
        "temperature": 0.5,
        "top_p": 0.9,
        "stop": ("END",),
        "seed": 7,
        "user": "u1",
        "tools": (WEATHER,),
        "tool_choice": "get_weather",
        "response_format": {"type": "json_schema", "name": "out", "schema": {"type": "object"}},
    }
    fields.update(changes)
    return Request(**fields)


def client_body(request: Request) -> dict[str, Any]:
    return json.loads(json.dumps(chat_client.encode_body(ENDPOINT, request)))


def test_the_registry_gives_this_module() -> None:
    assert server_codec_for("openai_chat") is server


def test_the_registry_names_what_it_knows() -> None:
    with pytest.raises(Exception, match="openai_chat"):
        server_codec_for("no-such-protocol")


def test_a_client_encoded_request_decodes_to_the_same_request() -> None:
    original = full_request()
    decoded = server.decode_request(client_body(original))
    assert decoded.model == original.model
    assert [m.role for m in decoded.messages] == [m.role for m in original.messages]
    assert decoded.messages[1].content == original.messages[1].content
    call = decoded.messages[2].content[1]
    assert isinstance(call, ToolCall)
    assert (call.id, call.name, dict(call.arguments)) == (
        "call_1",
        "get_weather",
        {"city": "Paris"},
    )
    assert decoded.messages[3].content == (ToolResult("call_1", "sunny"),)
    for name in ("max_tokens", "temperature", "top_p", "stop", "seed", "user", "tool_choice"):
        assert getattr(decoded, name) == getattr(original, name), name
    assert decoded.tools == original.tools
    assert decoded.response_format is not None
    assert decoded.response_format.schema == {"type": "object"}
    assert not decoded.stream
    # And once more around: the decoded request encodes to the very same body.
    assert client_body(decoded) == client_body(original)


def test_stream_and_unknown_fields_are_kept() -> None:
    body = client_body(full_request(stream=True))
    body["logprobs"] = True
    body["reasoning_effort"] = "low"
    decoded = server.decode_request(body)
    assert decoded.stream
    assert decoded.extra_body == {"logprobs": True, "reasoning_effort": "low"}


def test_the_model_from_the_caller_wins() -> None:
    body = client_body(full_request())
    assert server.decode_request(body, model="other").model == "other"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"messages": "hi"}, "messages"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": 3}]}, "messages[0].content"),
        ({"messages": [{"role": "user", "content": [{"type": "audio"}]}]}, "messages[0]"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id"),
        ({"max_tokens": "ten"}, "max_tokens"),
        ({"max_tokens": -1}, "max_tokens"),
        ({"temperature": True}, "temperature"),
        ({"stream": "yes"}, "stream"),
        ({"tools": [{"type": "function"}]}, "tools[0].function"),
        ({"tool_choice": 5}, "tool_choice"),
        ({"response_format": {"type": "xml"}}, "response_format"),
        ({"model": ""}, "model"),
        ({"functions": [{"name": "f"}]}, "tools"),
    ],
)
def test_bad_input_names_the_field(change: dict[str, Any], field: str) -> None:
    body: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    body.update(change)
    with pytest.raises(InvalidRequestError, match=field.replace("[", r"\[").replace("]", r"\]")):
        server.decode_request(body)


def reply(**changes: Any) -> Response:
    fields: dict[str, Any] = {
        "id": "chatcmpl-abc",
        "model": "claude-x",
        "provider": "anthropic",
        "content": (
            Reasoning("Think first."),
            Text("It is sunny."),
            ToolCall("toolu_1", "get_weather", {"city": "Paris"}),
        ),
        "finish_reason": "tool_calls",
        "usage": Usage(12, 7, cached_input_tokens=4, reasoning_tokens=2),
    }
    fields.update(changes)
    return Response(**fields)


def client_decoded(body: dict[str, Any]) -> Response:
    http = HttpResponse(200, {}, json.dumps(body).encode())
    return chat_client.decode(ENDPOINT, http)


def test_an_encoded_reply_is_a_valid_completion_that_decodes_back() -> None:
    original = reply()
    body = server.encode_response(original, model="fast")
    completion = ChatCompletion.model_validate(body)
    assert completion.model == "fast"
    assert completion.choices[0].finish_reason == "tool_calls"
    decoded = client_decoded(body)
    assert decoded.text == "It is sunny."
    assert decoded.reasoning == "Think first."
    assert [(c.id, c.name, dict(c.arguments)) for c in decoded.tool_calls] == [
        ("toolu_1", "get_weather", {"city": "Paris"})
    ]
    assert decoded.usage == original.usage
    assert decoded.finish_reason == "tool_calls"


def test_invalid_tool_arguments_go_out_as_they_came() -> None:
    call = ToolCall("c", "f", {}, raw_arguments='{"a": 1', invalid_arguments=True)
    body = server.encode_response(reply(content=(call,)), model="m")
    assert body["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] == '{"a": 1'


def test_every_choice_is_encoded() -> None:
    extra = reply(content=(Text("second"),), finish_reason="stop")
    body = server.encode_response(reply(choices=(extra,)), model="m")
    assert [c["index"] for c in body["choices"]] == [0, 1]
    assert client_decoded(body).choices[0].text == "second"


@pytest.mark.parametrize(("reason", "wire"), [("length", "length"), ("refusal", "stop")])
def test_finish_reasons_map(reason: Any, wire: str) -> None:
    body = server.encode_response(reply(finish_reason=reason), model="m")
    assert body["choices"][0]["finish_reason"] == wire


def stream_frames(events: list[StreamEvent], final: Response, include_usage: bool = True) -> bytes:
    encoder = server.StreamEncoder(model="fast", include_usage=include_usage)
    out = encoder.start()
    for event in events:
        out += encoder.encode(event)
    return out + encoder.finish(final)


def client_stream(frames: bytes) -> tuple[list[StreamEvent], Response, list[Any]]:
    decoder = chat_client.stream_decoder(ENDPOINT, None)
    events: list[StreamEvent] = []
    chunks = []
    for sse in SSEDecoder().feed(frames):
        if sse.data != "[DONE]":
            chunks.append(ChatCompletionChunk.model_validate_json(sse.data))
        events += decoder.feed(sse)
    assert decoder.finished
    return events, decoder.response(), chunks


def test_a_stream_with_fragmented_tool_calls_decodes_to_the_same_reply() -> None:
    final = reply()
    events: list[StreamEvent] = [
        ReasoningDelta("Think first."),
        TextDelta("It is "),
        TextDelta("sunny."),
        # Anthropic counts content blocks: the tool call is block 2, not tool 0.
        ToolCallDelta(2, "toolu_1", "get_weather", '{"city"'),
        ToolCallDelta(2, None, None, ': "Paris"}'),
        ToolCallEvent(final.tool_calls[0]),
        FinishEvent("tool_calls"),
        UsageEvent(final.usage),
    ]
    decoded_events, response, chunks = client_stream(stream_frames(events, final))
    assert response.text == "It is sunny."
    assert response.reasoning == "Think first."
    assert [(c.id, dict(c.arguments)) for c in response.tool_calls] == [
        ("toolu_1", {"city": "Paris"})
    ]
    assert response.finish_reason == "tool_calls"
    assert response.usage == final.usage
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices == []  # the usage chunk
    assert [e.type for e in decoded_events].count("tool_call") == 1


def test_tool_calls_that_arrive_whole_go_out_whole() -> None:
    calls = (ToolCall("a", "f", {"x": 1}), ToolCall("b", "g", {}))
    final = reply(content=calls)
    events: list[StreamEvent] = [ToolCallEvent(c) for c in calls] + [FinishEvent("tool_calls")]
    _, response, _ = client_stream(stream_frames(events, final))
    assert [(c.id, c.name, dict(c.arguments)) for c in response.tool_calls] == [
        ("a", "f", {"x": 1}),
        ("b", "g", {}),
    ]


def test_no_usage_chunk_unless_asked() -> None:
    final = reply(content=(Text("hi"),), finish_reason="stop")
    frames = stream_frames([TextDelta("hi")], final, include_usage=False)
    _, response, chunks = client_stream(frames)
    assert all(chunk.choices for chunk in chunks)
    assert not response.usage.reported  # no usage chunk: the usage is unknown, not zero
    assert response.finish_reason == "stop"


def test_an_error_mid_stream_reaches_the_client_as_one() -> None:
    encoder = server.StreamEncoder(model="m")
    frames = encoder.start() + encoder.encode(TextDelta("par"))
    frames += encoder.error(RateLimitError("slow down", code="rate_limit_exceeded"))
    decoder = chat_client.stream_decoder(ENDPOINT, None)
    sse = list(SSEDecoder().feed(frames))
    decoder.feed(sse[0])
    decoder.feed(sse[1])
    with pytest.raises(Exception, match="slow down") as caught:
        decoder.feed(sse[2])
    assert caught.value.partial.text == "par"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("error", "status", "kind"),
    [
        (InvalidRequestError("bad"), 400, "invalid_request_error"),
        (RateLimitError("slow", code="budget_exceeded"), 429, "rate_limit_error"),
        (APITimeoutError("late"), 504, "server_error"),
        (AuthenticationError("no", status_code=401), 401, "authentication_error"),
    ],
)
def test_errors_take_the_openai_shape(error: Any, status: int, kind: str) -> None:
    got_status, body = server.encode_error(error)
    assert got_status == status
    assert body["error"]["type"] == kind
    assert body["error"]["message"]
    assert set(body["error"]) == {"message", "type", "param", "code"}


def test_the_gateway_can_choose_the_status() -> None:
    status, body = server.encode_error(RateLimitError("x", code="budget_exceeded"), status=403)
    assert status == 403
    assert body["error"]["code"] == "budget_exceeded"


def recorded_requests() -> list[Any]:
    yaml = pytest.importorskip("yaml")
    if not RECORDED.is_dir():
        return []
    found = []
    for folder in ("openai", "groq", "mistral"):
        for path in sorted((RECORDED / folder).glob("*.yaml")):
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            for i, interaction in enumerate(data.get("interactions") or []):
                request = interaction["request"]
                if request["uri"].split("?")[0].endswith("/chat/completions"):
                    found.append(pytest.param(request["parsed_body"], id=f"{path.stem}-{i}"))
    return found


@pytest.mark.parametrize("body", recorded_requests() or [None])
def test_recorded_requests_decode_and_encode_back(body: Any) -> None:
    if body is None:
        pytest.skip(f"recorded fixtures not found at {RECORDED}")
    decoded = server.decode_request(body)
    again = client_body(decoded)
    assert len(again["messages"]) == len(body["messages"])
    for sent, resent in zip(body["messages"], again["messages"], strict=True):
        assert resent["role"] == sent["role"]
        if isinstance(sent.get("content"), str) and sent["content"]:
            assert resent["content"] == sent["content"]
        assert len(resent.get("tool_calls") or []) == len(sent.get("tool_calls") or [])
    assert [t["function"]["name"] for t in again.get("tools", [])] == [
        t["function"]["name"] for t in body.get("tools", [])
    ]
