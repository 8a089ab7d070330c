"""Decoding Gemini replies, streams, errors, model lists and token counts."""

from __future__ import annotations

import json
from typing import Any

import pytest

import callm
from callm._config.providers import BUILTIN, build_endpoint
from callm._core.endpoint import Endpoint
from callm._core.http import HttpResponse
from callm._core.types import (
    FinishEvent,
    Image,
    Message,
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
from callm.protocols.gemini import client as gemini


@pytest.fixture
def ep() -> Endpoint:
    spec = BUILTIN["gemini"]
    return build_endpoint(spec, spec.base_url or "", "g-key")


def reply(parts: list[Any], **candidate: Any) -> dict[str, Any]:
    candidate.setdefault("finishReason", "STOP")
    return {
        "candidates": [{"content": {"parts": parts, "role": "model"}, "index": 0, **candidate}],
        "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 5, "totalTokenCount": 15},
        "modelVersion": "gemini-2.5-flash",
        "responseId": "resp-1",
    }


def decode(ep: Endpoint, data: Any, status: int = 200) -> callm.Response:
    return gemini.decode(ep, HttpResponse(status, {}, json.dumps(data).encode()))


def failure(ep: Endpoint, status: int, data: Any, headers: dict[str, str] | None = None) -> Any:
    body = data if isinstance(data, bytes) else json.dumps(data).encode()
    return gemini.decode_failure(ep, HttpResponse(status, headers or {}, body))


# --- whole replies ----------------------------------------------------------------------


def test_text_reply(ep: Endpoint) -> None:
    resp = decode(ep, reply([{"text": "Hello"}, {"text": " world"}]))
    assert resp.content == (Text("Hello world"),)
    assert resp.id == "resp-1"
    assert resp.model == "gemini-2.5-flash"
    assert resp.provider == "gemini"
    assert resp.finish_reason == "stop"
    assert resp.native_finish_reason == "STOP"
    assert resp.usage == Usage(10, 5)
    assert resp.raw["responseId"] == "resp-1"


def test_usage_counts_thoughts_as_output_and_tool_prompts_as_input(ep: Endpoint) -> None:
    data = reply([{"text": "x"}])
    data["usageMetadata"] = {
        "promptTokenCount": 100,
        "candidatesTokenCount": 20,
        "thoughtsTokenCount": 30,
        "toolUsePromptTokenCount": 7,
        "cachedContentTokenCount": 64,
        "totalTokenCount": 157,
    }
    usage = decode(ep, data).usage
    assert usage == Usage(
        input_tokens=107, output_tokens=50, cached_input_tokens=64, reasoning_tokens=30
    )
    assert usage.total_tokens == 157


def test_thoughts_become_reasoning(ep: Endpoint) -> None:
    resp = decode(ep, reply([{"text": "hmm", "thought": True}, {"text": "Paris"}]))
    assert resp.content == (Reasoning("hmm", protocol="gemini"), Text("Paris"))
    assert resp.reasoning == "hmm"
    assert resp.text == "Paris"


def test_function_calls_get_stable_ids_and_keep_signatures(ep: Endpoint) -> None:
    parts = [
        {"functionCall": {"name": "f", "args": {"a": 1}}, "thoughtSignature": "SIG"},
        {"functionCall": {"name": "g", "args": {}, "id": "given"}},
    ]
    first, again = decode(ep, reply(parts)), decode(ep, reply(parts))
    assert first.finish_reason == "tool_calls"
    assert first.content[0] == Reasoning("", signature="SIG", protocol="gemini")
    calls = first.tool_calls
    assert [(c.name, dict(c.arguments)) for c in calls] == [("f", {"a": 1}), ("g", {})]
    assert calls[0].id.startswith("call_")
    assert calls[1].id == "given"
    assert [c.id for c in again.tool_calls] == [c.id for c in calls]
    assert calls[0].raw_arguments == '{"a":1}'


def test_a_decoded_reply_encodes_back_to_the_same_parts(ep: Endpoint) -> None:
    parts = [
        {"text": "plan", "thought": True},
        {"text": "Let me check.", "thoughtSignature": "S1"},
        {
            "functionCall": {"id": "c1", "name": "f", "args": {"x": [1, 2]}},
            "thoughtSignature": "S2",
        },
        {"executableCode": {"language": "PYTHON", "code": "print(1)"}, "thoughtSignature": "S3"},
        {"codeExecutionResult": {"outcome": "OUTCOME_OK", "output": "1"}},
        {"text": "", "thoughtSignature": "S4"},
    ]
    resp = decode(ep, reply(parts))
    contents, _ = gemini.encode_messages([Message.user("q"), resp.to_message()])
    expected = [{**p, "thought": True} if p.get("thought") else p for p in parts]
    assert contents[1] == {"role": "model", "parts": expected}


def test_unknown_parts_and_candidate_metadata_are_kept(ep: Endpoint) -> None:
    grounding = {"webSearchQueries": ["weather"], "groundingChunks": [{"web": {"uri": "u"}}]}
    citations = {"citationSources": [{"uri": "https://a"}]}
    data = reply(
        [{"text": "Sunny"}, {"toolCall": {"toolType": "GOOGLE_SEARCH_WEB", "args": {}}}],
        groundingMetadata=grounding,
        citationMetadata=citations,
        safetyRatings=[],
    )
    resp = decode(ep, data)
    raws = {p.type: p for p in resp.content if isinstance(p, RawPart)}
    assert raws["toolCall"].data == {"toolCall": {"toolType": "GOOGLE_SEARCH_WEB", "args": {}}}
    assert raws["groundingMetadata"] == RawPart("gemini", "groundingMetadata", grounding)
    assert raws["citationMetadata"].data == citations
    assert resp.text == "Sunny"


def test_inline_images_are_decoded(ep: Endpoint) -> None:
    resp = decode(ep, reply([{"inlineData": {"mimeType": "image/png", "data": "AAAA"}}]))
    assert resp.content == (Image("data:image/png;base64,AAAA"),)


@pytest.mark.parametrize(
    ("native", "expected"),
    [
        ("STOP", "stop"),
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("BLOCKLIST", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("SPII", "content_filter"),
        ("IMAGE_SAFETY", "content_filter"),
        ("MODEL_ARMOR", "content_filter"),
        ("MALFORMED_FUNCTION_CALL", "error"),
        ("SOME_NEW_SAFETY_REASON", "content_filter"),
        ("SOMETHING_ELSE", None),
    ],
)
def test_finish_reasons(ep: Endpoint, native: str, expected: str | None) -> None:
    resp = decode(ep, reply([{"text": "x"}], finishReason=native))
    assert resp.finish_reason == expected
    assert resp.native_finish_reason == native


def test_filtered_candidate_shows_its_finish_message(ep: Endpoint) -> None:
    data = reply([], finishReason="SAFETY", finishMessage="violated the hate speech filter")
    resp = decode(ep, data)
    assert resp.finish_reason == "content_filter"
    assert resp.refusal == "violated the hate speech filter"


def test_blocked_prompt(ep: Endpoint) -> None:
    data = {
        "promptFeedback": {"blockReason": "PROHIBITED_CONTENT", "blockReasonMessage": "nope"},
        "usageMetadata": {"promptTokenCount": 8, "totalTokenCount": 8},
        "modelVersion": "gemini-2.5-flash",
        "responseId": "r",
    }
    resp = decode(ep, data)
    assert resp.finish_reason == "content_filter"
    assert resp.native_finish_reason == "PROHIBITED_CONTENT"
    assert resp.refusal == "the prompt was blocked (PROHIBITED_CONTENT): nope"
    assert resp.usage.input_tokens == 8


def test_several_candidates_become_choices(ep: Endpoint) -> None:
    data = reply([{"text": "one"}])
    data["candidates"].append(
        {"content": {"parts": [{"text": "two"}]}, "finishReason": "MAX_TOKENS", "index": 1}
    )
    resp = decode(ep, data)
    assert resp.text == "one"
    assert [(c.text, c.finish_reason) for c in resp.choices] == [("two", "length")]


def test_unreadable_bodies(ep: Endpoint) -> None:
    with pytest.raises(callm.APIResponseError, match="not valid JSON"):
        gemini.decode(ep, HttpResponse(200, {}, b"{oops"))
    with pytest.raises(callm.APIResponseError, match="without a reply"):
        decode(ep, {"hello": "world"})
    with pytest.raises(callm.InternalServerError):
        decode(ep, {"error": {"code": 500, "message": "boom", "status": "INTERNAL"}})


# --- errors -----------------------------------------------------------------------------


def google(code: int, status: str, message: str, *details: dict[str, Any]) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = list(details)
    return {"error": error}


def test_bad_key_is_an_authentication_error(ep: Endpoint) -> None:
    info = {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}
    body = google(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.", info)
    exc = failure(ep, 400, body)
    assert type(exc) is callm.AuthenticationError
    assert exc.status_code == 400
    assert exc.code == "API_KEY_INVALID"
    assert "GEMINI_API_KEY" in str(exc)
    assert "`callm keys set gemini`" in str(exc)
    assert exc.body == body


def test_rate_limit_reads_retry_info(ep: Endpoint) -> None:
    retry = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37s"}
    exc = failure(ep, 429, google(429, "RESOURCE_EXHAUSTED", "Quota exceeded", retry))
    assert type(exc) is callm.RateLimitError
    assert exc.retry_after == 37.0
    assert exc.code == "RESOURCE_EXHAUSTED"
    hinted = failure(ep, 429, google(429, "RESOURCE_EXHAUSTED", "q", retry), {"retry-after": "2"})
    assert hinted.retry_after == 2.0  # a header wins over the body


@pytest.mark.parametrize(
    ("status", "name", "message", "cls"),
    [
        (400, "INVALID_ARGUMENT", "Invalid value at 'contents'", callm.BadRequestError),
        (
            400,
            "INVALID_ARGUMENT",
            "The input token count (1200000) exceeds the maximum number of tokens allowed "
            "(1048576).",
            callm.ContextWindowExceededError,
        ),
        (403, "PERMISSION_DENIED", "Permission denied", callm.PermissionDeniedError),
        (404, "NOT_FOUND", "models/gemini-x is not found", callm.NotFoundError),
        (500, "INTERNAL", "An internal error has occurred.", callm.InternalServerError),
        (503, "UNAVAILABLE", "The model is overloaded.", callm.OverloadedError),
        (504, "DEADLINE_EXCEEDED", "Deadline expired", callm.InternalServerError),
    ],
)
def test_error_statuses(ep: Endpoint, status: int, name: str, message: str, cls: type) -> None:
    exc = failure(ep, status, google(status, name, message))
    assert type(exc) is cls
    assert exc.status_code == status
    assert exc.code == name
    assert message in str(exc)


def test_error_bodies_that_are_odd(ep: Endpoint) -> None:
    wrapped = failure(ep, 429, [google(429, "RESOURCE_EXHAUSTED", "slow down")])
    assert type(wrapped) is callm.RateLimitError
    text = failure(ep, 502, b"<html>Bad Gateway</html>")
    assert type(text) is callm.InternalServerError
    assert "Bad Gateway" in str(text)


# --- streams ----------------------------------------------------------------------------


def sse(*chunks: dict[str, Any]) -> bytes:
    return "".join(f"data: {json.dumps(c)}\r\n\r\n" for c in chunks).encode()


def chunk(parts: list[Any], finish: str | None = None, tokens: int = 1) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    usage = {"promptTokenCount": 4, "candidatesTokenCount": tokens, "thoughtsTokenCount": 2}
    return {
        "candidates": [candidate],
        "usageMetadata": usage,
        "responseId": "rid",
        "modelVersion": "m",
    }


def replay(ep: Endpoint, body: bytes, size: int) -> tuple[Any, list[Any]]:
    decoder = gemini.stream_decoder(ep, "req-1")
    sse_decoder, events = SSEDecoder(), []
    for start in range(0, len(body), size):
        for event in sse_decoder.feed(body[start : start + size]):
            events += decoder.feed(event)
    return decoder, events


STREAM = sse(
    chunk([{"text": "thinking", "thought": True}]),
    chunk([{"text": "Hel", "thoughtSignature": "SIG"}], tokens=1),
    chunk([{"text": "lo"}], tokens=2),
    chunk([{"functionCall": {"name": "f", "args": {"k": "v"}}}], tokens=3),
    chunk([{"text": ""}], finish="STOP", tokens=4),
)


@pytest.mark.parametrize("size", [1, 5, 64, len(STREAM)])
def test_stream_events(ep: Endpoint, size: int) -> None:
    decoder, events = replay(ep, STREAM, size)
    call = decoder.response().tool_calls[0]
    assert events == [
        ReasoningDelta("thinking"),
        TextDelta("Hel"),
        TextDelta("lo"),
        ToolCallDelta(0, call.id, "f", '{"k":"v"}'),
        ToolCallEvent(call),
        UsageEvent(Usage(4, 6, reasoning_tokens=2)),
        FinishEvent("tool_calls"),
    ]
    assert decoder.finished
    resp = decoder.response()
    assert resp.content == (
        Reasoning("thinking", protocol="gemini"),
        Reasoning("", signature="SIG", protocol="gemini"),
        Text("Hello"),
        call,
    )
    assert resp.usage == Usage(4, 6, reasoning_tokens=2)  # the last running total, not a sum
    assert (resp.id, resp.model, resp.request_id) == ("rid", "m", "req-1")


def test_stream_and_whole_reply_decode_alike(ep: Endpoint) -> None:
    decoder, _ = replay(ep, STREAM, len(STREAM))
    parts = [
        {"text": "thinking", "thought": True},
        {"text": "Hello", "thoughtSignature": "SIG"},
        {"functionCall": {"name": "f", "args": {"k": "v"}}},
    ]
    whole = {**chunk(parts, finish="STOP", tokens=4)}
    assert decode(ep, whole).content == decoder.response().content


def test_stream_is_unfinished_until_a_finish_reason(ep: Endpoint) -> None:
    decoder, events = replay(ep, sse(chunk([{"text": "a"}]), chunk([{"text": "b"}])), 7)
    assert not decoder.finished
    assert events == [TextDelta("a"), TextDelta("b")]
    assert decoder.response().finish_reason is None
    assert decoder.response().text == "ab"


def test_error_inside_the_stream_carries_the_partial(ep: Endpoint) -> None:
    decoder = gemini.stream_decoder(ep, None)
    decoder.feed(SSEEvent(json.dumps(chunk([{"text": "par"}]))))
    error = {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}
    with pytest.raises(callm.OverloadedError, match="overloaded") as info:
        decoder.feed(SSEEvent(json.dumps(error)))
    assert info.value.partial is not None
    assert info.value.partial.text == "par"
    assert info.value.code == "UNAVAILABLE"
    with pytest.raises(callm.APIResponseError, match="not JSON") as bad:
        decoder.feed(SSEEvent("{nope"))
    assert bad.value.partial is not None


def test_blocked_prompt_in_a_stream_finishes_it(ep: Endpoint) -> None:
    decoder = gemini.stream_decoder(ep, None)
    blocked = {
        "promptFeedback": {"blockReason": "SAFETY"},
        "usageMetadata": {"promptTokenCount": 3},
    }
    events = decoder.feed(SSEEvent(json.dumps(blocked)))
    assert events == [
        RefusalDelta("the prompt was blocked (SAFETY)"),
        UsageEvent(Usage(3, 0)),
        FinishEvent("content_filter"),
    ]
    assert decoder.finished
    assert decoder.response().refusal == "the prompt was blocked (SAFETY)"


def test_stream_keeps_the_latest_grounding_metadata(ep: Endpoint) -> None:
    first = chunk([{"text": "a"}])
    first["candidates"][0]["groundingMetadata"] = {}
    last = chunk([{"text": "b"}], finish="STOP")
    last["candidates"][0]["groundingMetadata"] = {"groundingChunks": [{"web": {"uri": "u"}}]}
    decoder, _ = replay(ep, sse(first, last), 100)
    raws = [p for p in decoder.response().content if isinstance(p, RawPart)]
    assert raws == [
        RawPart("gemini", "groundingMetadata", {"groundingChunks": [{"web": {"uri": "u"}}]})
    ]


def test_only_the_first_candidate_emits_events(ep: Endpoint) -> None:
    two = chunk([{"text": "a"}], finish="STOP")
    two["candidates"].append(
        {"content": {"parts": [{"text": "b"}]}, "index": 1, "finishReason": "STOP"}
    )
    decoder, events = replay(ep, sse(two), 1000)
    assert [e for e in events if isinstance(e, TextDelta)] == [TextDelta("a")]
    assert decoder.response().choices[0].text == "b"
    assert not [e for e in events if isinstance(e, Refusal)]


# --- models and countTokens -------------------------------------------------------------


def test_decode_models(ep: Endpoint) -> None:
    body = {"models": [{"name": "models/gemini-2.5-flash", "displayName": "Gemini 2.5 Flash"}]}
    models = gemini.decode_models(ep, HttpResponse(200, {}, json.dumps(body).encode()))
    assert [(m.id, m.provider) for m in models] == [("gemini-2.5-flash", "gemini")]
    assert models[0].raw["displayName"] == "Gemini 2.5 Flash"
    with pytest.raises(callm.APIResponseError):
        gemini.decode_models(ep, HttpResponse(200, {}, b"{}"))


def test_decode_count_tokens(ep: Endpoint) -> None:
    assert gemini.decode_count_tokens(ep, HttpResponse(200, {}, b'{"totalTokens": 12}')) == 12
    assert gemini.decode_count_tokens(ep, HttpResponse(200, {}, b"{}")) == 0  # proto omits 0
    with pytest.raises(callm.APIResponseError):
        gemini.decode_count_tokens(ep, HttpResponse(200, {}, b'{"totalTokens": "x"}'))


def test_malformed_function_call(ep: Endpoint) -> None:
    resp = decode(ep, reply([], finishReason="MALFORMED_FUNCTION_CALL", finishMessage="bad"))
    assert resp.finish_reason == "error"
    assert resp.refusal is None
    assert resp.raw["candidates"][0]["finishMessage"] == "bad"


def test_non_object_function_args_are_flagged(ep: Endpoint) -> None:
    resp = decode(ep, reply([{"functionCall": {"name": "f", "args": "oops"}}]))
    call = resp.tool_calls[0]
    assert call == ToolCall(call.id, "f", {}, '"oops"', invalid_arguments=True)
