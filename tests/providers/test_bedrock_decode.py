"""Bedrock Converse replies decoded: reasoning, redacted reasoning, blocks callm keeps raw,
stop reasons — and the same reply streamed decodes to the same Response."""

from __future__ import annotations

import json
from typing import Any

import pytest

import callm
from callm._core.endpoint import Endpoint
from callm._core.http import HttpResponse
from callm.protocols.bedrock import client as bedrock
from callm.protocols.bedrock.eventstream import EventStreamDecoder
from callm.testing._aws_wire import event_frame

ENDPOINT = Endpoint("bedrock", "bedrock", "https://bedrock-runtime.us-east-1.amazonaws.com", {})
CITATIONS = {"citationsContent": {"content": [{"text": "cited"}], "citations": []}}
REPLY: dict[str, Any] = {
    "output": {
        "message": {
            "role": "assistant",
            "content": [
                {"reasoningContent": {"reasoningText": {"text": "Think.", "signature": "sig1"}}},
                {"reasoningContent": {"redactedContent": "ZW5jcnlwdGVk"}},
                {"text": "Hello"},
                CITATIONS,
                {"toolUse": {"toolUseId": "tu1", "name": "f", "input": {"a": 1}}},
            ],
        }
    },
    "stopReason": "tool_use",
    "usage": {"inputTokens": 3, "outputTokens": 4, "totalTokens": 7},
    "metrics": {"latencyMs": 10},
}


def decode(data: dict[str, Any]) -> callm.Response:
    body = json.dumps(data).encode()
    return bedrock.decode(ENDPOINT, HttpResponse(200, {"x-amzn-requestid": "rid"}, body))


def test_every_block_kind_is_decoded_or_kept() -> None:
    r = decode(REPLY)
    thought, redacted, text, raw, call = r.content
    assert thought == callm.Reasoning("Think.", signature="sig1", protocol="bedrock")
    assert redacted == callm.Reasoning("", data="ZW5jcnlwdGVk", protocol="bedrock")
    assert text == callm.Text("Hello")
    assert raw == callm.RawPart("bedrock", "citationsContent", CITATIONS)
    assert isinstance(call, callm.ToolCall) and dict(call.arguments) == {"a": 1}
    assert (r.finish_reason, r.request_id, r.usage.total_tokens) == ("tool_calls", "rid", 7)


def test_the_reply_goes_back_as_it_came() -> None:
    history = [callm.Message.user("q"), decode(REPLY).to_message()]
    request = callm.Request("m", tuple(history), tools=(callm.Tool("f"),))
    body = bedrock.encode_body(request)
    assert body["messages"][1]["content"] == REPLY["output"]["message"]["content"]


def test_reasoning_from_another_protocol_stays_out() -> None:
    other = callm.Message.assistant(callm.Reasoning("x", signature="s", protocol="anthropic"), "a")
    body = bedrock.encode_body(callm.Request("m", (callm.Message.user("q"), other)))
    assert body["messages"][1]["content"] == [{"text": "a"}]


@pytest.mark.parametrize(
    ("native", "reason"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("tool_use", "tool_calls"),
        ("guardrail_intervened", "content_filter"),
        ("content_filtered", "content_filter"),
        ("malformed_tool_use", "error"),
    ],
)
def test_stop_reasons(native: str, reason: str) -> None:
    assert decode({**REPLY, "stopReason": native}).finish_reason == reason


TOOL_START = {"toolUseId": "tu1", "name": "f"}


def delta(index: int, value: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return "contentBlockDelta", {"contentBlockIndex": index, "delta": value}


def test_a_stream_decodes_to_the_same_response() -> None:
    events = [
        ("messageStart", {"role": "assistant"}),
        delta(0, {"reasoningContent": {"text": "Th"}}),
        delta(0, {"reasoningContent": {"text": "ink."}}),
        delta(0, {"reasoningContent": {"signature": "sig1"}}),
        ("contentBlockStop", {"contentBlockIndex": 0}),
        delta(1, {"reasoningContent": {"redactedContent": "ZW5jcnlwdGVk"}}),
        delta(2, {"text": "Hel"}),
        delta(2, {"text": "lo"}),
        ("contentBlockStart", {"contentBlockIndex": 3, "start": {"toolUse": TOOL_START}}),
        delta(3, {"toolUse": {"input": '{"a"'}}),
        delta(3, {"toolUse": {"input": ": 1}"}}),
        ("contentBlockStop", {"contentBlockIndex": 3}),
        ("messageStop", {"stopReason": "tool_use"}),
        ("metadata", {"usage": REPLY["usage"], "metrics": {}}),
    ]
    framing = EventStreamDecoder()
    decoder = bedrock.stream_decoder(ENDPOINT, "rid")
    kinds = []
    for frame in framing.feed(b"".join(event_frame(name, data) for name, data in events)):
        kinds += [e.type for e in decoder.feed(frame)]
    assert decoder.finished
    assert kinds.count("reasoning") == 2 and kinds.count("text") == 2
    assert kinds[-3:] == ["tool_call", "finish", "usage"]
    streamed, whole = decoder.response(), decode({**REPLY})
    without_citations = tuple(p for p in whole.content if not isinstance(p, callm.RawPart))
    assert streamed.content[:3] == without_citations[:3]
    assert streamed.tool_calls[0].arguments == {"a": 1}
    assert streamed.usage == whole.usage and streamed.finish_reason == whole.finish_reason
