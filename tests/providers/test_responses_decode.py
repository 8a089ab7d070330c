"""Decoding OpenAI Responses bodies and event streams."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

import callm
from callm._core.endpoint import Endpoint
from callm._core.http import HttpResponse
from callm._core.types import (
    FinishEvent,
    RawPart,
    Reasoning,
    ReasoningDelta,
    Refusal,
    RefusalDelta,
    Text,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    ToolCallEvent,
    Usage,
    UsageEvent,
)
from callm.protocols._shared.sse import SSEDecoder, SSEEvent
from callm.protocols.openai_responses import client as wire
from callm.protocols.openai_responses.stream import stream_decoder

EP = Endpoint("openai-responses", "openai_responses", "https://api.openai.com/v1", {})
USAGE = {
    "input_tokens": 53,
    "input_tokens_details": {"cached_tokens": 7, "cache_write_tokens": 2},
    "output_tokens": 469,
    "output_tokens_details": {"reasoning_tokens": 448},
    "total_tokens": 522,
}


def resp(output: list[Any], **fields: Any) -> dict[str, Any]:
    return {
        "id": "resp_1",
        "object": "response",
        "status": "completed",
        "model": "gpt-5-2025-08-07",
        "output": output,
        "usage": USAGE,
        "error": None,
        "incomplete_details": None,
        **fields,
    }


def decode(data: Any, headers: dict[str, str] | None = None) -> callm.Response:
    http = HttpResponse(200, headers or {"x-request-id": "req_9"}, json.dumps(data).encode())
    return wire.decode(EP, http, latency_s=0.5)


def message(*content: dict[str, Any], item_id: str = "msg_1") -> dict[str, Any]:
    return {"type": "message", "id": item_id, "role": "assistant", "content": list(content)}


def text(value: str, annotations: list[Any] | None = None) -> dict[str, Any]:
    return {"type": "output_text", "text": value, "annotations": annotations or []}


def call(call_id: str, name: str, arguments: str, item_id: str = "fc_1") -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": item_id,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
    }


def reasoning(*summaries: str, item_id: str = "rs_1", enc: str | None = "ENC") -> dict[str, Any]:
    return {
        "type": "reasoning",
        "id": item_id,
        "summary": [{"type": "summary_text", "text": s} for s in summaries],
        "encrypted_content": enc,
    }


# --- whole responses --------------------------------------------------------------------


def test_text_usage_and_metadata() -> None:
    r = decode(resp([message(text("Hello "), text("world"))]))
    assert r.text == "Hello world"
    assert r.content == (Text("Hello "), Text("world"))
    assert r.finish_reason == "stop"
    assert r.native_finish_reason == "completed"
    assert r.usage == Usage(
        53, 469, cached_input_tokens=7, cache_write_tokens=2, reasoning_tokens=448
    )
    assert (r.id, r.model, r.provider) == ("resp_1", "gpt-5-2025-08-07", "openai-responses")
    assert r.request_id == "req_9"
    assert r.latency_s == 0.5
    assert r.raw["id"] == "resp_1"


def test_function_calls_use_call_id_and_make_tool_calls() -> None:
    r = decode(resp([call("call_A", "get", '{"x":1}'), call("call_B", "bad", '{"x":', "fc_2")]))
    good, bad = r.tool_calls
    assert good == ToolCall("call_A", "get", {"x": 1}, '{"x":1}')
    assert bad.invalid_arguments and bad.raw_arguments == '{"x":' and bad.arguments == {}
    assert r.finish_reason == "tool_calls"


def test_reasoning_keeps_id_encrypted_content_and_the_next_item_id() -> None:
    r = decode(resp([reasoning("First.", "Second."), call("call_A", "f", "{}", "fc_7")]))
    assert r.content[0] == Reasoning(
        "First.\n\nSecond.", signature="fc_7", id="rs_1", data="ENC", protocol="openai_responses"
    )
    assert r.reasoning == "First.\n\nSecond."


def test_raw_chain_of_thought_is_reasoning_text_when_there_is_no_summary() -> None:
    item = {
        "type": "reasoning",
        "id": "rs_1",
        "summary": [],
        "content": [{"type": "reasoning_text", "text": "2+2=4"}],
    }
    r = decode(resp([item, message(text("4"))]))
    assert r.content[0] == Reasoning(
        "2+2=4", signature="msg_1", id="rs_1", protocol="openai_responses"
    )


def test_refusal_only_finishes_with_refusal() -> None:
    r = decode(resp([message({"type": "refusal", "refusal": "No."})]))
    assert r.content == (Refusal("No."),)
    assert r.finish_reason == "refusal"


def test_annotations_and_server_tool_items_are_kept_in_order() -> None:
    search = {"type": "web_search_call", "id": "ws_1", "status": "completed", "action": {}}
    citation = {"type": "url_citation", "url": "https://x", "title": "X"}
    mcp = {"type": "mcp_list_tools", "id": "mcpl_1", "tools": []}
    r = decode(resp([search, message(text("Paris.", [citation])), mcp]))
    assert r.content == (
        RawPart("openai_responses", "web_search_call", search),
        Text("Paris."),
        RawPart("openai_responses", "annotations", {"annotations": [citation]}),
        RawPart("openai_responses", "mcp_list_tools", mcp),
    )
    assert r.text == "Paris."
    assert r.finish_reason == "stop"


def test_history_round_trip_reproduces_the_output_items() -> None:
    output = [
        reasoning("Plan.", item_id="rs_1"),
        call("call_A", "get", '{"q":"x"}', "fc_1"),
        {"type": "web_search_call", "id": "ws_1", "status": "completed"},
        message(text("Done.", [{"type": "url_citation", "url": "u"}]), item_id="msg_2"),
    ]
    r = decode(resp(output))
    body = wire.encode_body(
        callm.Request("m", (callm.Message.user("q"), r.to_message(), callm.Message.user("more")))
    )
    sent = body["input"][1:-1]
    assert sent[0] == {
        "type": "reasoning",
        "id": "rs_1",
        "summary": [{"type": "summary_text", "text": "Plan."}],
        "encrypted_content": "ENC",
    }
    assert sent[1] == {
        "type": "function_call",
        "call_id": "call_A",
        "name": "get",
        "arguments": '{"q":"x"}',
        "id": "fc_1",
    }
    assert sent[2] == output[2]
    assert sent[3]["content"] == [
        {
            "type": "output_text",
            "text": "Done.",
            "annotations": [{"type": "url_citation", "url": "u"}],
        }
    ]


@pytest.mark.parametrize(
    ("status", "details", "finish", "native"),
    [
        ("incomplete", {"reason": "max_output_tokens"}, "length", "max_output_tokens"),
        ("incomplete", {"reason": "content_filter"}, "content_filter", "content_filter"),
        ("cancelled", None, "error", "cancelled"),
        ("queued", None, None, "queued"),
        ("in_progress", None, None, "in_progress"),
    ],
)
def test_status_maps_to_finish_reason(
    status: str, details: Any, finish: str | None, native: str
) -> None:
    r = decode(resp([message(text("Par"))], status=status, incomplete_details=details))
    assert r.finish_reason == finish
    assert r.native_finish_reason == native
    assert r.text == "Par"


def test_failed_response_raises_with_the_error_and_the_partial() -> None:
    data = resp(
        [message(text("half"))],
        status="failed",
        error={"code": "server_error", "message": "The model crashed."},
    )
    with pytest.raises(callm.InternalServerError, match="The model crashed") as info:
        decode(data)
    err = info.value
    assert err.code == "server_error"
    assert err.request_id == "req_9"
    assert err.partial is not None and err.partial.text == "half"
    assert err.partial.finish_reason == "error"


@pytest.mark.parametrize(
    "payload",
    [b"{not json", b"[1,2]", b'{"id":"x"}', b'{"error":{"message":"boom","code":"x"}}'],
)
def test_unreadable_bodies(payload: bytes) -> None:
    with pytest.raises(callm.APIResponseError):
        wire.decode(EP, HttpResponse(200, {}, payload))


def test_failure_uses_the_openai_error_envelope() -> None:
    body = {
        "error": {
            "message": "The requested model 'x' does not exist.",
            "type": "invalid_request_error",
            "param": "model",
            "code": "model_not_found",
        }
    }
    err = wire.decode_failure(
        EP, HttpResponse(400, {"x-request-id": "r"}, json.dumps(body).encode())
    )
    assert isinstance(err, callm.BadRequestError)
    assert err.code == "model_not_found" and err.request_id == "r" and err.status_code == 400


def test_models() -> None:
    body = {"object": "list", "data": [{"id": "gpt-4o", "object": "model", "created": 1}]}
    models = wire.decode_models(EP, HttpResponse(200, {}, json.dumps(body).encode()))
    assert [m.id for m in models] == ["gpt-4o"]


# --- streams ----------------------------------------------------------------------------


def sse(kind: str, seq: int, **fields: Any) -> str:
    return (
        f"event: {kind}\ndata: {json.dumps({'type': kind, 'sequence_number': seq, **fields})}\n\n"
    )


def feed_text(decoder: Any, raw: str, size: int = 0) -> list[Any]:
    parser = SSEDecoder()
    data = raw.encode()
    step = size or len(data)
    events: list[Any] = []
    for start in range(0, len(data), step):
        for event in parser.feed(data[start : start + step]):
            events += decoder.feed(event)
    return events


def stream_of(items: list[Any], terminal: str = "response.completed", **final: Any) -> str:
    """A stream that builds ``output`` item by item, then ends with ``terminal``."""
    start = resp([], status="in_progress", usage=None)
    frames = [
        sse("response.created", 0, response=start),
        sse("response.in_progress", 1, response=start),
    ]
    seq = 2
    for index, item in enumerate(items):
        frames.append(
            sse(
                "response.output_item.added",
                seq,
                output_index=index,
                item={**item, "content": [], "summary": [], "arguments": ""},
            )
        )
        seq += 1
        if item["type"] == "message":
            for c, part in enumerate(item["content"]):
                if part["type"] == "output_text":
                    for piece in (part["text"][:3], part["text"][3:]):
                        frames.append(
                            sse(
                                "response.output_text.delta",
                                seq,
                                item_id=item["id"],
                                output_index=index,
                                content_index=c,
                                delta=piece,
                            )
                        )
                        seq += 1
                else:
                    frames.append(
                        sse(
                            "response.refusal.delta",
                            seq,
                            item_id=item["id"],
                            output_index=index,
                            content_index=c,
                            delta=part["refusal"],
                        )
                    )
                    seq += 1
        elif item["type"] == "function_call":
            for piece in (item["arguments"][:4], item["arguments"][4:]):
                frames.append(
                    sse(
                        "response.function_call_arguments.delta",
                        seq,
                        item_id=item["id"],
                        output_index=index,
                        delta=piece,
                    )
                )
                seq += 1
        elif item["type"] == "reasoning":
            for s, summary in enumerate(item["summary"]):
                frames.append(
                    sse(
                        "response.reasoning_summary_text.delta",
                        seq,
                        item_id=item["id"],
                        output_index=index,
                        summary_index=s,
                        delta=summary["text"],
                    )
                )
                seq += 1
        frames.append(sse("response.output_item.done", seq, output_index=index, item=item))
        seq += 1
    frames.append(sse(terminal, seq, response=resp(final.pop("output", items), **final)))
    return "".join(frames)


OUTPUT = [
    reasoning("Think.", "More."),
    message(text("Hello world"), {"type": "refusal", "refusal": "Nope"}),
    call("call_A", "get", '{"city":"Paris"}', "fc_2"),
]


@pytest.mark.parametrize("size", [0, 1, 9])
def test_stream_events_and_response(size: int) -> None:
    decoder = stream_decoder(EP, "req_s")
    events = feed_text(decoder, stream_of(OUTPUT), size)
    assert decoder.finished
    assert events == [
        ReasoningDelta("Think."),
        ReasoningDelta("\n\nMore."),
        TextDelta("Hel"),
        TextDelta("lo world"),
        RefusalDelta("Nope"),
        ToolCallDelta(0, "call_A", "get", ""),
        ToolCallDelta(0, None, None, '{"ci'),
        ToolCallDelta(0, None, None, 'ty":"Paris"}'),
        ToolCallEvent(ToolCall("call_A", "get", {"city": "Paris"}, '{"city":"Paris"}')),
        UsageEvent(Usage(53, 469, 7, 2, 448)),
        FinishEvent("tool_calls"),
    ]
    r = decoder.response()
    whole = decode(resp(OUTPUT), {"x-request-id": "req_s"})
    assert r == dataclasses.replace(whole, latency_s=None)  # one parser for both paths
    assert r.reasoning == "Think.\n\nMore."
    assert r.request_id == "req_s"


def test_partial_response_before_completion_has_the_open_fragments() -> None:
    raw = stream_of(OUTPUT)
    cut = raw.index("event: response.function_call_arguments.delta")
    cut = raw.index("event:", cut + 1)  # after the first argument fragment
    decoder = stream_decoder(EP, None)
    feed_text(decoder, raw[:cut])
    assert not decoder.finished
    r = decoder.response()
    assert r.text == "Hello world"
    assert r.refusal == "Nope"
    assert r.reasoning == "Think.\n\nMore."
    assert r.tool_calls[0].raw_arguments == '{"ci'
    assert r.tool_calls[0].invalid_arguments
    assert r.finish_reason is None


def test_incomplete_stream_finishes_with_length() -> None:
    output = [message(text("Hello wor"))]
    decoder = stream_decoder(EP, None)
    events = feed_text(
        decoder,
        stream_of(
            output,
            "response.incomplete",
            status="incomplete",
            incomplete_details={"reason": "max_output_tokens"},
        ),
    )
    assert events[-1] == FinishEvent("length")
    assert decoder.finished
    assert decoder.response().native_finish_reason == "max_output_tokens"


def test_failed_event_raises_with_partial() -> None:
    raw = stream_of(
        [message(text("Hello world"))],
        "response.failed",
        status="failed",
        output=[],
        error={"code": "server_error", "message": "Boom."},
    )
    decoder = stream_decoder(EP, "req_f")
    with pytest.raises(callm.InternalServerError, match="Boom") as info:
        feed_text(decoder, raw)
    err = info.value
    assert err.code == "server_error" and err.request_id == "req_f"
    assert err.partial is not None
    assert err.partial.text == "Hello world"  # the streamed items, as the failed copy had none
    assert err.partial.finish_reason == "error"


@pytest.mark.parametrize(
    "data",
    [
        {"type": "error", "code": "rate_limit_exceeded", "message": "Slow down.", "param": None},
        {"type": "error", "error": {"code": "rate_limit_exceeded", "message": "Slow down."}},
    ],
)
def test_error_event_raises_with_partial(data: dict[str, Any]) -> None:
    decoder = stream_decoder(EP, "req_e")
    feed_text(decoder, stream_of(OUTPUT).split("event: response.output_item.added")[0])
    decoder.feed(
        SSEEvent(
            json.dumps({"type": "response.output_item.added", "output_index": 0, "item": message()})
        )
    )
    decoder.feed(
        SSEEvent(
            json.dumps(
                {
                    "type": "response.output_text.delta",
                    "output_index": 0,
                    "content_index": 0,
                    "delta": "Hi",
                }
            )
        )
    )
    with pytest.raises(callm.RateLimitError, match="Slow down") as info:
        decoder.feed(SSEEvent(json.dumps(data), event="error"))
    assert info.value.code == "rate_limit_exceeded"
    assert info.value.status_code is None
    assert info.value.partial is not None and info.value.partial.text == "Hi"
    assert info.value.request_id == "req_e"


def test_an_error_object_in_the_stream_is_typed_by_its_status_code() -> None:
    decoder = stream_decoder(EP, None)
    with pytest.raises(callm.InternalServerError, match="upstream failed"):
        decoder.feed(SSEEvent('{"error":{"message":"upstream failed","code":502}}'))


def test_an_error_nothing_identifies_stays_an_api_response_error() -> None:
    decoder = stream_decoder(EP, None)
    with pytest.raises(callm.APIResponseError, match="odd") as info:
        decoder.feed(SSEEvent('{"error":{"message":"odd","code":"x_unknown"}}'))
    assert type(info.value) is callm.APIResponseError


def test_context_window_error_in_stream_is_typed() -> None:
    decoder = stream_decoder(EP, None)
    data = {
        "type": "error",
        "code": "context_length_exceeded",
        "message": "Your input exceeds the context window of this model.",
    }
    with pytest.raises(callm.ContextWindowExceededError):
        decoder.feed(SSEEvent(json.dumps(data), event="error"))


@pytest.mark.parametrize("payload", ["{not json", "[1]"])
def test_malformed_events_raise(payload: str) -> None:
    decoder = stream_decoder(EP, None)
    with pytest.raises(callm.APIResponseError):
        decoder.feed(SSEEvent(payload, event="response.output_text.delta"))


def test_unknown_events_and_done_marker_are_ignored() -> None:
    decoder = stream_decoder(EP, None)
    assert (
        decoder.feed(SSEEvent('{"type":"response.web_search_call.searching","output_index":0}'))
        == []
    )
    assert decoder.feed(SSEEvent("[DONE]")) == []
    assert not decoder.finished


def test_tool_call_without_item_done_is_emitted_on_completion() -> None:
    item = call("call_Z", "f", '{"a":1}', "fc_1")
    frames = [
        sse("response.output_item.added", 0, output_index=0, item={**item, "arguments": ""}),
        sse("response.function_call_arguments.delta", 1, output_index=0, delta='{"a":1}'),
        sse("response.completed", 2, response=resp([item])),
    ]
    decoder = stream_decoder(EP, None)
    events = feed_text(decoder, "".join(frames))
    calls = [e for e in events if isinstance(e, ToolCallEvent)]
    assert calls == [ToolCallEvent(ToolCall("call_Z", "f", {"a": 1}, '{"a":1}'))]
    assert events[-1] == FinishEvent("tool_calls")
