"""Decoding Anthropic Messages answers: bodies, event streams, errors, models, token counts."""

from __future__ import annotations

import json
from typing import Any

import pytest

import callm
from callm._config.providers import BUILTIN, build_endpoint
from callm._core.http import HttpResponse
from callm._core.types import (
    FinishEvent,
    RawPart,
    Reasoning,
    ReasoningDelta,
    Text,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    ToolCallEvent,
    Usage,
    UsageEvent,
)
from callm.protocols._shared.sse import SSEEvent
from callm.protocols.anthropic import client as anthropic

EP = build_endpoint(BUILTIN["anthropic"], "https://api.anthropic.com", "sk-ant-test")
USAGE = {
    "input_tokens": 10,
    "cache_creation_input_tokens": 5,
    "cache_read_input_tokens": 100,
    "output_tokens": 7,
    "output_tokens_details": {"thinking_tokens": 3},
}


def message(*content: dict[str, Any], stop: str = "end_turn", **extra: Any) -> dict[str, Any]:
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": list(content),
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": USAGE,
        **extra,
    }


def decode(data: Any, headers: dict[str, str] | None = None) -> callm.Response:
    return anthropic.decode(EP, HttpResponse(200, headers or {}, json.dumps(data).encode()))


def test_text_usage_ids_and_finish() -> None:
    r = decode(message({"type": "text", "text": "Hello"}), {"request-id": "req_9"})
    assert (r.text, r.id, r.model, r.provider) == ("Hello", "msg_1", r.model, "anthropic")
    assert r.model == "claude-sonnet-4-5-20250929"
    assert r.request_id == "req_9"
    assert r.finish_reason == "stop"
    # input_tokens is the whole prompt: fresh + cache writes + cache reads.
    assert r.usage == Usage(
        115, 7, cached_input_tokens=100, cache_write_tokens=5, reasoning_tokens=3
    )


@pytest.mark.parametrize(
    ("native", "expected"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("pause_turn", "length"),
        ("refusal", "refusal"),
        ("model_context_window_exceeded", "length"),
        ("something_new", None),
    ],
)
def test_stop_reasons(native: str, expected: str | None) -> None:
    r = decode(message({"type": "text", "text": "x"}, stop=native))
    assert (r.finish_reason, r.native_finish_reason) == (expected, native)


def test_thinking_tool_use_and_raw_blocks_in_order() -> None:
    server = {"type": "server_tool_use", "id": "srv_1", "name": "web_search", "input": {"q": 1}}
    result = {"type": "web_search_tool_result", "tool_use_id": "srv_1", "content": []}
    cites = [{"type": "char_location", "cited_text": "c"}]
    r = decode(
        message(
            {"type": "thinking", "thinking": "Hmm.", "signature": "sig"},
            {"type": "redacted_thinking", "data": "opaque"},
            server,
            result,
            {"type": "text", "text": "Cited.", "citations": cites},
            {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": 1}},
            stop="tool_use",
        )
    )
    assert r.content == (
        Reasoning("Hmm.", signature="sig", protocol="anthropic"),
        Reasoning("", data="opaque", protocol="anthropic"),
        RawPart("anthropic", "server_tool_use", server),
        RawPart("anthropic", "web_search_tool_result", result),
        Text("Cited."),
        RawPart("anthropic", "citations", {"citations": cites}),
        ToolCall("toolu_1", "f", {"a": 1}, '{"a":1}'),
    )
    assert r.finish_reason == "tool_calls"
    # Sent back, the history is what Anthropic sent.
    again = anthropic.encode_body(
        callm.Request("claude-sonnet-4-5", (callm.Message.user("q"), r.to_message()))
    )
    assert again["messages"][1]["content"] == [
        {"type": "thinking", "thinking": "Hmm.", "signature": "sig"},
        {"type": "redacted_thinking", "data": "opaque"},
        server,
        result,
        {"type": "text", "text": "Cited.", "citations": cites},
        {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": 1}},
    ]


def test_a_body_that_is_not_a_message() -> None:
    with pytest.raises(callm.APIResponseError, match="without a message"):
        decode({"hello": 1})
    with pytest.raises(callm.APIResponseError, match="not valid JSON"):
        anthropic.decode(EP, HttpResponse(200, {}, b"{oops"))
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    with pytest.raises(callm.APIResponseError) as info:
        decode(error)
    assert info.value.code == "overloaded_error"


# --- errors -----------------------------------------------------------------------------


def failure(status: int, kind: str, message: str, **headers: str) -> callm.APIError:
    body = {"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_b"}
    return anthropic.decode_failure(EP, HttpResponse(status, headers, json.dumps(body).encode()))


@pytest.mark.parametrize(
    ("status", "kind", "cls"),
    [
        (400, "invalid_request_error", callm.BadRequestError),
        (401, "authentication_error", callm.AuthenticationError),
        (403, "permission_error", callm.PermissionDeniedError),
        (404, "not_found_error", callm.NotFoundError),
        (413, "request_too_large", callm.BadRequestError),
        (429, "rate_limit_error", callm.RateLimitError),
        (500, "api_error", callm.InternalServerError),
        (529, "overloaded_error", callm.OverloadedError),
    ],
)
def test_error_statuses(status: int, kind: str, cls: type[callm.APIError]) -> None:
    exc = failure(status, kind, "went wrong")
    assert type(exc) is cls
    assert (exc.status_code, exc.code, exc.request_id) == (status, kind, "req_b")
    assert "went wrong" in str(exc)


def test_request_id_header_wins_and_retry_after_is_read() -> None:
    exc = failure(
        429, "rate_limit_error", "slow down", **{"request-id": "req_h", "retry-after": "3"}
    )
    assert isinstance(exc, callm.RateLimitError)
    assert (exc.request_id, exc.retry_after) == ("req_h", 3.0)


def test_authentication_message_says_what_to_do() -> None:
    assert "ANTHROPIC_API_KEY" in str(failure(401, "authentication_error", "invalid x-api-key"))


@pytest.mark.parametrize(
    "message",
    [
        "prompt is too long: 210000 tokens > 200000 maximum",
        "input length and `max_tokens` exceed context limit: 197000 + 8192 > 200000, "
        "decrease input length or `max_tokens` and try again",
    ],
)
def test_context_window_errors(message: str) -> None:
    exc = failure(400, "invalid_request_error", message)
    assert isinstance(exc, callm.ContextWindowExceededError)
    assert (exc.code, exc.request_id) == ("invalid_request_error", "req_b")


def test_non_json_error_body() -> None:
    exc = anthropic.decode_failure(EP, HttpResponse(413, {}, b"<html>Request Entity Too Large"))
    assert isinstance(exc, callm.BadRequestError)
    assert exc.status_code == 413


# --- models and token counts ------------------------------------------------------------


def test_models_list() -> None:
    data = {
        "data": [
            {
                "type": "model",
                "id": "claude-sonnet-4-5-20250929",
                "display_name": "Claude Sonnet 4.5",
                "created_at": "2025-09-29T00:00:00Z",
            }
        ],
        "has_more": False,
        "first_id": "claude-sonnet-4-5-20250929",
        "last_id": "claude-sonnet-4-5-20250929",
    }
    [model] = anthropic.decode_models(EP, HttpResponse(200, {}, json.dumps(data).encode()))
    assert (model.id, model.provider, model.created) == (
        "claude-sonnet-4-5-20250929",
        "anthropic",
        1759104000,
    )
    assert model.raw["display_name"] == "Claude Sonnet 4.5"


def test_count_tokens() -> None:
    ok = HttpResponse(200, {}, b'{"input_tokens": 2095}')
    assert anthropic.decode_count_tokens(EP, ok) == 2095
    body = b'{"type":"error","error":{"type":"not_found_error","message":"model: x"}}'
    with pytest.raises(callm.NotFoundError):
        anthropic.decode_count_tokens(EP, HttpResponse(404, {}, body))
    with pytest.raises(callm.APIResponseError):
        anthropic.decode_count_tokens(EP, HttpResponse(200, {}, b"{}"))


# --- streams ----------------------------------------------------------------------------


def sse(kind: str, **data: Any) -> SSEEvent:
    return SSEEvent(json.dumps({"type": kind, **data}), kind)


def start(**usage: int) -> SSEEvent:
    body = message(usage={"input_tokens": 9, "output_tokens": 1, **usage}, stop="")
    body["content"], body["stop_reason"] = [], None
    return sse("message_start", message=body)


def block_start(index: int, block: dict[str, Any]) -> SSEEvent:
    return sse("content_block_start", index=index, content_block=block)


def delta(index: int, **d: Any) -> SSEEvent:
    return sse("content_block_delta", index=index, delta=d)


def feed(decoder: Any, events: list[SSEEvent]) -> list[Any]:
    out: list[Any] = []
    for event in events:
        out.extend(decoder.feed(event))
    return out


def test_stream_text_thinking_and_tool_call() -> None:
    decoder = anthropic.stream_decoder(EP, "req_s")
    events = feed(
        decoder,
        [
            start(cache_read_input_tokens=4),
            block_start(0, {"type": "thinking", "thinking": "", "signature": ""}),
            SSEEvent('{"type": "ping"}', "ping"),
            delta(0, type="thinking_delta", thinking="Think"),
            delta(0, type="signature_delta", signature="sig"),
            sse("content_block_stop", index=0),
            block_start(1, {"type": "text", "text": ""}),
            delta(1, type="text_delta", text="Hel"),
            delta(1, type="text_delta", text="lo"),
            sse("content_block_stop", index=1),
            block_start(2, {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}),
            delta(2, type="input_json_delta", partial_json=""),
            delta(2, type="input_json_delta", partial_json='{"a": '),
            delta(2, type="input_json_delta", partial_json="1}"),
            sse("content_block_stop", index=2),
            sse(
                "message_delta",
                delta={"stop_reason": "tool_use", "stop_sequence": None},
                usage={"output_tokens": 30},
            ),
        ],
    )
    assert not decoder.finished
    events += decoder.feed(SSEEvent('{"type":"message_stop"}     ', "message_stop"))
    assert decoder.finished
    call = ToolCall("toolu_1", "f", {"a": 1}, '{"a": 1}')
    assert events == [
        ReasoningDelta("Think"),
        TextDelta("Hel"),
        TextDelta("lo"),
        ToolCallDelta(0, "toolu_1", "f", ""),
        ToolCallDelta(0, None, None, ""),
        ToolCallDelta(0, None, None, '{"a": '),
        ToolCallDelta(0, None, None, "1}"),
        ToolCallEvent(call),
        UsageEvent(Usage(13, 30, cached_input_tokens=4)),
        FinishEvent("tool_calls"),
    ]
    r = decoder.response()
    assert r.content == (
        Reasoning("Think", signature="sig", protocol="anthropic"),
        Text("Hello"),
        call,
    )
    assert (r.id, r.request_id, r.finish_reason) == ("msg_1", "req_s", "tool_calls")
    assert r.raw["content"][2]["type"] == "tool_use"
    assert r.raw["stop_reason"] == "tool_use"


def test_stream_usage_repeated_in_message_delta_wins() -> None:
    decoder = anthropic.stream_decoder(EP, None)
    feed(
        decoder,
        [
            start(),
            sse(
                "message_delta",
                delta={"stop_reason": "end_turn"},
                usage={"input_tokens": 50, "output_tokens": 2},
            ),
        ],
    )
    assert decoder.response().usage == Usage(50, 2)


def test_stream_server_tool_input_and_citations_are_kept() -> None:
    decoder = anthropic.stream_decoder(EP, None)
    cite = {"type": "char_location", "cited_text": "x"}
    feed(
        decoder,
        [
            start(),
            block_start(
                0, {"type": "server_tool_use", "id": "s1", "name": "web_search", "input": {}}
            ),
            delta(0, type="input_json_delta", partial_json='{"query": "cats"}'),
            sse("content_block_stop", index=0),
            block_start(1, {"type": "text", "text": "", "citations": None}),
            delta(1, type="citations_delta", citation=cite),
            delta(1, type="text_delta", text="Cats."),
            sse("content_block_stop", index=1),
        ],
    )
    content = decoder.response().content
    assert content == (
        RawPart(
            "anthropic",
            "server_tool_use",
            {
                "type": "server_tool_use",
                "id": "s1",
                "name": "web_search",
                "input": {"query": "cats"},
            },
        ),
        Text("Cats."),
        RawPart("anthropic", "citations", {"citations": [cite]}),
    )


def test_stream_error_event_carries_the_partial_reply() -> None:
    decoder = anthropic.stream_decoder(EP, "req_e")
    feed(
        decoder,
        [
            start(),
            block_start(0, {"type": "text", "text": ""}),
            delta(0, type="text_delta", text="Half"),
        ],
    )
    error = {"type": "overloaded_error", "message": "Overloaded"}
    with pytest.raises(callm.OverloadedError) as info:
        decoder.feed(sse("error", error=error))
    exc = info.value
    assert exc.code == "overloaded_error"
    assert exc.status_code is None  # the HTTP status was a 200
    assert "Overloaded" in str(exc)
    assert exc.partial is not None
    assert exc.partial.text == "Half"
    assert exc.request_id == "req_e"


def test_stream_bad_json_and_partial_tool_call() -> None:
    decoder = anthropic.stream_decoder(EP, None)
    feed(
        decoder,
        [
            start(),
            block_start(0, {"type": "tool_use", "id": "t", "name": "f", "input": {}}),
            delta(0, type="input_json_delta", partial_json='{"a": '),
        ],
    )
    with pytest.raises(callm.APIResponseError, match="not JSON") as info:
        decoder.feed(SSEEvent("{not json", "content_block_delta"))
    assert info.value.partial is not None
    [call] = info.value.partial.tool_calls
    assert call.invalid_arguments
    assert call.raw_arguments == '{"a": '


def test_stream_without_message_delta_still_finishes_once() -> None:
    decoder = anthropic.stream_decoder(EP, None)
    events = feed(decoder, [start(), sse("message_stop"), sse("message_stop")])
    assert events == [FinishEvent(None)]
    assert decoder.finished


def test_unknown_events_are_ignored() -> None:
    decoder = anthropic.stream_decoder(EP, None)
    assert feed(decoder, [start(), sse("some_future_event", x=1)]) == []
