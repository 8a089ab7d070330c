"""Decoding OpenAI Chat Completions responses, streams and errors (PROTOCOLS §1, §5, §6, §8)."""

from __future__ import annotations

import email.utils
import json
import time
from typing import Any

import pytest

import callm
from callm._core.endpoint import Endpoint
from callm._core.http import HttpResponse
from callm._core.types import (
    FinishEvent,
    Reasoning,
    ReasoningDelta,
    Refusal,
    RefusalDelta,
    Text,
    TextDelta,
    ToolCallDelta,
    ToolCallEvent,
    Usage,
    UsageEvent,
)
from callm._policies import retry as _retry
from callm._policies.retry import retry_delay, should_retry
from callm.protocols._shared.errors import decode_error
from callm.protocols._shared.sse import SSEDecoder, SSEEvent
from callm.protocols.openai_chat.client import (
    ChatStreamDecoder,
    decode,
    decode_models,
    parse_tool_call,
)


def endpoint(provider: str = "openai", key_env: str | None = "OPENAI_API_KEY") -> Endpoint:
    return Endpoint(
        provider=provider,
        protocol="openai_chat",
        base_url="https://api.openai.com/v1",
        headers={"authorization": "Bearer sk-test"},
        key_env=key_env,
    )


def completion(
    message: dict[str, Any] | None = None,
    finish: str | None = "stop",
    usage: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1743073438,
        "model": "gpt-4o-2024-08-06",
        "choices": [
            {
                "index": 0,
                "message": message
                if message is not None
                else {"role": "assistant", "content": "Hi"},
                "logprobs": None,
                "finish_reason": finish,
            }
        ],
    }
    if usage is not None:
        body["usage"] = usage
    body.update(extra)
    return body


def respond(
    body: Any, status: int = 200, headers: dict[str, str] | None = None, ep: Endpoint | None = None
):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return decode(ep or endpoint(), HttpResponse(status, headers or {}, raw))


def chunk(
    delta: dict[str, Any] | None = None, finish: str | None = None, index: int = 0, **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "chatcmpl-s",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4o-mini",
        "choices": [
            {"index": index, "delta": delta if delta is not None else {}, "finish_reason": finish}
        ],
    }
    body.update(extra)
    return body


def run_stream(
    items: list[Any], ep: Endpoint | None = None, request_id: str | None = None
) -> tuple[ChatStreamDecoder, list[Any]]:
    """Feed chunks (dicts become data events, strings go as-is, SSEEvents pass through)."""
    decoder = ChatStreamDecoder(ep or endpoint(), request_id)
    events: list[Any] = []
    for item in items:
        if isinstance(item, SSEEvent):
            event = item
        elif isinstance(item, str):
            event = SSEEvent(item)
        else:
            event = SSEEvent(json.dumps(item))
        events.extend(decoder.feed(event))
    return decoder, events


def texts(events: list[Any]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


USAGE = {
    "prompt_tokens": 53,
    "completion_tokens": 15,
    "total_tokens": 68,
    "prompt_tokens_details": {"cached_tokens": 12, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 7, "audio_tokens": 0},
}


# --- non-streamed responses -------------------------------------------------------------


def test_text_response() -> None:
    resp = respond(completion(usage=USAGE), headers={"x-request-id": "req_abc"})
    assert resp.text == "Hi"
    assert resp.content == (Text("Hi"),)
    assert resp.finish_reason == "stop"
    assert resp.native_finish_reason == "stop"
    assert resp.id == "chatcmpl-1"
    assert resp.model == "gpt-4o-2024-08-06"
    assert resp.provider == "openai"
    assert resp.request_id == "req_abc"
    assert resp.raw["id"] == "chatcmpl-1"
    assert resp.choices == ()


def test_usage_with_cached_and_reasoning_tokens() -> None:
    resp = respond(completion(usage=USAGE))
    assert resp.usage == Usage(
        input_tokens=53, output_tokens=15, cached_input_tokens=12, reasoning_tokens=7
    )
    assert resp.usage.total_tokens == 68


def test_usage_missing_or_null_details() -> None:
    usage = {
        "prompt_tokens": 3,
        "completion_tokens": 4,
        "total_tokens": 7,
        "prompt_tokens_details": None,
        "completion_tokens_details": None,
    }
    assert respond(completion(usage=usage)).usage == Usage(3, 4)
    assert respond(completion()).usage == Usage(reported=False)  # unknown, not zero


def test_usage_cache_write_tokens() -> None:
    usage = {
        "prompt_tokens": 10,
        "completion_tokens": 1,
        "prompt_tokens_details": {"cache_write_tokens": 6},
    }
    assert respond(completion(usage=usage)).usage.cache_write_tokens == 6


def test_deepseek_prompt_cache_hit_tokens() -> None:
    usage = {
        "prompt_tokens": 100,
        "completion_tokens": 5,
        "total_tokens": 105,
        "prompt_cache_hit_tokens": 64,
        "prompt_cache_miss_tokens": 36,
    }
    resp = respond(completion(usage=usage))
    assert resp.usage == Usage(input_tokens=100, output_tokens=5, cached_input_tokens=64)


def test_deepseek_leading_blank_lines_before_json() -> None:
    raw = b"\n\n\n" + json.dumps(completion()).encode()
    assert respond(raw).text == "Hi"


def test_groq_usage_in_x_groq() -> None:
    body = completion()
    body["x_groq"] = {
        "id": "req_01",
        "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11},
    }
    assert respond(body).usage == Usage(9, 2)


@pytest.mark.parametrize(
    "header", ["x-request-id", "request-id", "apim-request-id", "mistral-correlation-id"]
)
def test_request_id_headers(header: str) -> None:
    assert respond(completion(), headers={header: "rid-1"}).request_id == "rid-1"


def test_request_id_absent() -> None:
    assert respond(completion(), headers={"content-type": "application/json"}).request_id is None


def test_tool_calls_with_parsed_arguments() -> None:
    message = {
        "role": "assistant",
        "content": None,
        "refusal": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_capital", "arguments": '{"country":"UK"}'},
            },
            {
                "id": "call_2",
                "type": "function",
                "function": {"name": "get_time", "arguments": "{}"},
            },
        ],
    }
    resp = respond(completion(message, "tool_calls"))
    assert resp.finish_reason == "tool_calls"
    assert resp.text == ""
    assert [(c.id, c.name, dict(c.arguments)) for c in resp.tool_calls] == [
        ("call_1", "get_capital", {"country": "UK"}),
        ("call_2", "get_time", {}),
    ]
    assert resp.tool_calls[0].raw_arguments == '{"country":"UK"}'
    assert not resp.tool_calls[0].invalid_arguments


def test_malformed_arguments_kept_raw() -> None:
    message = {
        "role": "assistant",
        "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": '{"a": 1'}}
        ],
    }
    (call,) = respond(completion(message, "tool_calls")).tool_calls
    assert call.invalid_arguments
    assert call.raw_arguments == '{"a": 1'
    assert dict(call.arguments) == {}
    assert call.name == "f"


@pytest.mark.parametrize(
    ("arguments", "parsed", "invalid"),
    [
        ('{"a": [1, 2]}', {"a": [1, 2]}, False),
        ("{}", {}, False),
        ("", {}, False),
        ("  ", {}, False),
        (None, {}, False),
        ({"already": "parsed"}, {"already": "parsed"}, False),
        ("null", {}, True),
        ("[1, 2]", {}, True),
        ('"text"', {}, True),
        ("{'single': 'quotes'}", {}, True),
        ('{"a": 1}{"b": 2}', {}, True),
    ],
)
def test_parse_tool_call(arguments: Any, parsed: dict[str, Any], invalid: bool) -> None:
    call = parse_tool_call("id1", "fn", arguments)
    assert call.id == "id1"
    assert call.name == "fn"
    assert dict(call.arguments) == parsed
    assert call.invalid_arguments is invalid
    if isinstance(arguments, str):
        assert call.raw_arguments == arguments
    if isinstance(arguments, dict):
        assert json.loads(call.raw_arguments or "") == arguments


def test_refusal() -> None:
    message = {"role": "assistant", "content": None, "refusal": "I can't help with that."}
    resp = respond(completion(message, "stop"))
    assert resp.finish_reason == "refusal"
    assert resp.refusal == "I can't help with that."
    assert Refusal("I can't help with that.") in resp.content
    assert resp.native_finish_reason == "stop"


@pytest.mark.parametrize(
    ("native", "expected"),
    [
        ("stop", "stop"),
        ("length", "length"),
        ("tool_calls", "tool_calls"),
        ("function_call", "tool_calls"),
        ("content_filter", "content_filter"),
        ("eos", "stop"),
        ("model_length", "length"),
    ],
)
def test_finish_reason_normalised(native: str, expected: str) -> None:
    resp = respond(completion(finish=native))
    assert resp.finish_reason == expected
    assert resp.native_finish_reason == native


def test_null_finish_reason() -> None:
    resp = respond(completion(finish=None))
    assert resp.finish_reason is None


def test_reasoning_content_and_reasoning_fields() -> None:
    msg = {"role": "assistant", "content": "42", "reasoning_content": "think think"}
    resp = respond(completion(msg))
    assert resp.reasoning == "think think"
    assert resp.text == "42"
    msg = {"role": "assistant", "content": "42", "reasoning": "ollama thinks"}
    assert respond(completion(msg)).reasoning == "ollama thinks"


def test_mistral_content_array_with_thinking() -> None:
    msg = {
        "role": "assistant",
        "content": [
            {
                "type": "thinking",
                "thinking": [{"type": "text", "text": "Let me "}, {"type": "text", "text": "see."}],
            },
            {"type": "text", "text": "Paris."},
        ],
    }
    resp = respond(completion(msg))
    assert resp.reasoning == "Let me see."
    assert resp.text == "Paris."
    assert isinstance(resp.content[0], Reasoning)


def test_n_greater_than_one() -> None:
    body = completion()
    body["choices"] = [
        {"index": 0, "message": {"role": "assistant", "content": "A"}, "finish_reason": "stop"},
        {"index": 1, "message": {"role": "assistant", "content": "B"}, "finish_reason": "length"},
        {"index": 2, "message": {"role": "assistant", "content": "C"}, "finish_reason": "stop"},
    ]
    resp = respond(body)
    assert resp.text == "A"
    assert [c.text for c in resp.choices] == ["B", "C"]
    assert [c.finish_reason for c in resp.choices] == ["length", "stop"]


def test_empty_choices_is_an_error_not_an_empty_reply() -> None:
    body = completion(usage={"prompt_tokens": 5, "completion_tokens": 0})
    body["choices"] = []
    with pytest.raises(callm.APIResponseError, match="no choice"):
        respond(body)


def test_legacy_text_completion() -> None:
    body = {
        "id": "cmpl-1",
        "object": "text_completion",
        "model": "gpt-3.5-turbo-instruct",
        "choices": [
            {"text": "\n\nHello there", "index": 0, "logprobs": None, "finish_reason": "length"}
        ],
        "usage": {"prompt_tokens": 2, "completion_tokens": 4, "total_tokens": 6},
    }
    resp = respond(body)
    assert resp.text == "\n\nHello there"
    assert resp.finish_reason == "length"
    assert resp.usage == Usage(2, 4)


def test_unicode_content() -> None:
    assert respond(completion({"role": "assistant", "content": "日本 é 🎉"})).text == "日本 é 🎉"


def test_non_json_body_is_api_response_error() -> None:
    with pytest.raises(callm.APIResponseError) as info:
        respond(b"<html>Bad gateway</html>", headers={"x-request-id": "r1"})
    assert "not valid JSON" in str(info.value)
    assert "Bad gateway" in str(info.value)
    assert info.value.request_id == "r1"


def test_non_object_json_body_is_api_response_error() -> None:
    # A 2xx answer that callm cannot read is an APIResponseError, not an HTTP status error.
    with pytest.raises(callm.APIResponseError):
        respond(b"[1, 2, 3]")


def test_json_without_choices_is_api_response_error() -> None:
    # Recorded in the wild (fixtures openai/test_invalid_response.yaml): a 200 JSON body that
    # is not a chat completion at all must not pass as an empty reply.
    body = {"contentType": "application/json", "method": "POST", "pathname": "/chat/completions"}
    with pytest.raises(callm.APIResponseError):
        respond(body)


def test_error_body_with_http_200_is_api_response_error() -> None:
    # Some gateways (OpenRouter) answer 200 with {"error": …}; there is no HTTP error status.
    body = {"error": {"message": "upstream failed", "code": 502}}
    with pytest.raises(callm.APIError) as info:
        respond(body)
    assert "upstream failed" in str(info.value)
    assert isinstance(info.value, callm.APIResponseError)
    assert not isinstance(info.value, callm.APIStatusError)


# --- models ----------------------------------------------------------------------------


def test_decode_models() -> None:
    body = {
        "object": "list",
        "data": [
            {"id": "gpt-4o", "object": "model", "created": 1715367049, "owned_by": "system"},
            {"id": "o3-mini", "object": "model", "created": 1, "owned_by": "openai"},
        ],
    }
    models = decode_models(endpoint(), HttpResponse(200, {}, json.dumps(body).encode()))
    assert [(m.id, m.created, m.owned_by, m.provider) for m in models] == [
        ("gpt-4o", 1715367049, "system", "openai"),
        ("o3-mini", 1, "openai", "openai"),
    ]
    assert models[0].raw == body["data"][0]


def test_decode_models_bare_list_and_bad_body() -> None:
    models = decode_models(endpoint(), HttpResponse(200, {}, b'[{"id": "llama3"}]'))
    assert [m.id for m in models] == ["llama3"]
    with pytest.raises(callm.APIResponseError):
        decode_models(endpoint(), HttpResponse(200, {}, b'{"object": "list"}'))
    with pytest.raises(callm.APIResponseError):
        decode_models(endpoint(), HttpResponse(200, {}, b"not json"))


# --- streaming --------------------------------------------------------------------------


def test_stream_text() -> None:
    decoder, events = run_stream(
        [
            chunk({"role": "assistant", "content": "", "refusal": None}),
            chunk({"content": "Hel"}),
            chunk({"content": "lo"}),
            chunk({}, "stop"),
            {**chunk(), "choices": [], "usage": USAGE},
            "[DONE]",
        ],
        request_id="req_9",
    )
    assert texts(events) == "Hello"
    finishes = [e for e in events if isinstance(e, FinishEvent)]
    assert finishes == [FinishEvent("stop")]
    usage_events = [e for e in events if isinstance(e, UsageEvent)]
    assert usage_events == [UsageEvent(Usage(53, 15, 12, 0, 7))]
    assert decoder.finished
    resp = decoder.response()
    assert resp.text == "Hello"
    assert resp.finish_reason == "stop"
    assert resp.usage == Usage(53, 15, 12, 0, 7)
    assert resp.id == "chatcmpl-s"
    assert resp.model == "gpt-4o-mini"
    assert resp.request_id == "req_9"


def test_stream_not_finished_until_finish_or_done() -> None:
    decoder, _ = run_stream([chunk({"content": "a"})])
    assert not decoder.finished
    decoder, _ = run_stream([chunk({"content": "a"}), "[DONE]"])
    assert decoder.finished


def test_stream_tool_call_fragments_joined_per_index() -> None:
    decoder, events = run_stream(
        [
            chunk(
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "call_a",
                            "type": "function",
                            "function": {"name": "get_capital", "arguments": ""},
                        }
                    ],
                }
            ),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"coun'}}]}),
            chunk(
                {
                    "tool_calls": [
                        {
                            "index": 1,
                            "id": "call_b",
                            "type": "function",
                            "function": {"name": "get_time", "arguments": '{"tz"'},
                        }
                    ]
                }
            ),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": 'try":"UK"}'}}]}),
            chunk({"tool_calls": [{"index": 1, "function": {"arguments": ':"UTC"}'}}]}),
            chunk({}, "tool_calls"),
            "[DONE]",
        ]
    )
    deltas = [e for e in events if isinstance(e, ToolCallDelta)]
    assert [d.index for d in deltas] == [0, 0, 1, 0, 1]
    assert deltas[0] == ToolCallDelta(0, "call_a", "get_capital", "")
    complete = [e.tool_call for e in events if isinstance(e, ToolCallEvent)]
    assert [(c.id, c.name, dict(c.arguments)) for c in complete] == [
        ("call_a", "get_capital", {"country": "UK"}),
        ("call_b", "get_time", {"tz": "UTC"}),
    ]
    # Complete tool calls come once, before the finish event.
    kinds = [type(e).__name__ for e in events]
    assert kinds.index("FinishEvent") > max(i for i, k in enumerate(kinds) if k == "ToolCallEvent")
    assert events[-1] == FinishEvent("tool_calls")
    resp = decoder.response()
    assert [c.name for c in resp.tool_calls] == ["get_capital", "get_time"]
    assert resp.finish_reason == "tool_calls"


def test_stream_whole_tool_calls_in_one_chunk() -> None:
    # Ollama: id, name and the full arguments in a single chunk, sometimes as an object.
    _, events = run_stream(
        [
            chunk(
                {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [
                        {
                            "id": "call_x",
                            "index": 0,
                            "type": "function",
                            "function": {"name": "f", "arguments": '{"a":1}'},
                        },
                        {
                            "id": "call_y",
                            "index": 1,
                            "type": "function",
                            "function": {"name": "g", "arguments": {"b": 2}},
                        },
                    ],
                }
            ),
            chunk({}, "tool_calls"),
            "[DONE]",
        ]
    )
    calls = [e.tool_call for e in events if isinstance(e, ToolCallEvent)]
    assert [(c.id, c.name, dict(c.arguments)) for c in calls] == [
        ("call_x", "f", {"a": 1}),
        ("call_y", "g", {"b": 2}),
    ]


def test_stream_tool_calls_without_index_use_position() -> None:
    _, events = run_stream(
        [
            chunk(
                {
                    "tool_calls": [
                        {"id": "1", "function": {"name": "f", "arguments": "{}"}},
                        {"id": "2", "function": {"name": "g", "arguments": "{}"}},
                    ]
                }
            ),
            chunk({}, "tool_calls"),
        ]
    )
    assert [e.tool_call.name for e in events if isinstance(e, ToolCallEvent)] == ["f", "g"]


def test_stream_tool_call_with_empty_id() -> None:
    # Gemini's compat layer sends "id": "".
    decoder, events = run_stream(
        [
            chunk(
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "",
                            "type": "function",
                            "function": {"name": "get_current_time", "arguments": "{}"},
                        }
                    ],
                }
            ),
            chunk({}, "tool_calls"),
            "[DONE]",
        ]
    )
    (call,) = [e.tool_call for e in events if isinstance(e, ToolCallEvent)]
    assert call.name == "get_current_time"
    assert dict(call.arguments) == {}
    assert isinstance(call.id, str)
    assert decoder.response().tool_calls == [call]


def test_stream_tool_calls_flushed_at_done_without_finish() -> None:
    _, events = run_stream(
        [
            chunk(
                {
                    "tool_calls": [
                        {"index": 0, "id": "c", "function": {"name": "f", "arguments": '{"x":'}}
                    ]
                }
            ),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
            "[DONE]",
        ]
    )
    calls = [e.tool_call for e in events if isinstance(e, ToolCallEvent)]
    assert [dict(c.arguments) for c in calls] == [{"x": 1}]


def test_stream_malformed_tool_arguments_do_not_crash() -> None:
    decoder, events = run_stream(
        [
            chunk(
                {
                    "tool_calls": [
                        {"index": 0, "id": "c", "function": {"name": "f", "arguments": '{"x": tru'}}
                    ]
                }
            ),
            chunk({}, "length"),
        ]
    )
    (call,) = [e.tool_call for e in events if isinstance(e, ToolCallEvent)]
    assert call.invalid_arguments
    assert call.raw_arguments == '{"x": tru'
    assert decoder.response().finish_reason == "length"


def test_azure_first_chunk_with_empty_choices() -> None:
    first = {
        "choices": [],
        "created": 0,
        "id": "",
        "model": "",
        "object": "",
        "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}],
    }
    decoder, events = run_stream([first, chunk({"content": "ok"}), chunk({}, "stop"), "[DONE]"])
    assert texts(events) == "ok"
    resp = decoder.response()
    assert resp.id == "chatcmpl-s"  # the empty id of the filter chunk is not kept
    assert resp.model == "gpt-4o-mini"
    assert resp.finish_reason == "stop"


def test_deepseek_usage_on_finish_chunk() -> None:
    usage = {
        "prompt_tokens": 20,
        "completion_tokens": 3,
        "total_tokens": 23,
        "prompt_cache_hit_tokens": 16,
    }
    decoder, events = run_stream(
        [
            chunk({"role": "assistant", "content": ""}),
            chunk({"reasoning_content": "hm"}),
            chunk({"content": "Yes"}),
            chunk({"content": ""}, "stop", usage=usage),
            "[DONE]",
        ]
    )
    assert UsageEvent(Usage(20, 3, 16)) in events
    assert FinishEvent("stop") in events
    resp = decoder.response()
    assert resp.usage == Usage(20, 3, 16)
    assert resp.reasoning == "hm"
    assert resp.text == "Yes"


def test_openrouter_comments_and_usage_chunk_with_choices() -> None:
    usage = {"prompt_tokens": 8, "completion_tokens": 2, "total_tokens": 10, "cost": 0.0001}
    frames = [
        b": OPENROUTER PROCESSING\n\n",
        json_frame(chunk({"role": "assistant", "content": "Hi"}, provider="OpenAI")),
        b": OPENROUTER PROCESSING\n\n",
        json_frame(chunk({"role": "assistant", "content": "!"}, native_finish_reason=None)),
        json_frame(
            chunk({"role": "assistant", "content": ""}, "stop", native_finish_reason="stop")
        ),
        json_frame(chunk({"role": "assistant", "content": ""}, None, usage=usage)),
        b"data: [DONE]\n\n",
    ]
    decoder, events = run_sse(b"".join(frames))
    assert texts(events) == "Hi!"
    assert [e for e in events if isinstance(e, FinishEvent)] == [FinishEvent("stop")]
    resp = decoder.response()
    assert resp.usage == Usage(8, 2)
    assert resp.finish_reason == "stop"


def test_groq_usage_in_x_groq_on_final_chunk() -> None:
    final = chunk(
        {},
        "stop",
        x_groq={
            "id": "req_1",
            "usage": {"prompt_tokens": 4, "completion_tokens": 1, "queue_time": 0.01},
        },
    )
    decoder, events = run_stream([chunk({"content": "x"}), final, "[DONE]"])
    assert UsageEvent(Usage(4, 1)) in events
    assert decoder.response().usage == Usage(4, 1)


def test_reasoning_deltas() -> None:
    decoder, events = run_stream(
        [
            chunk({"reasoning_content": "first "}),
            chunk({"reasoning": "second"}),
            chunk({"content": "answer"}),
            chunk({}, "stop"),
        ]
    )
    assert [e.text for e in events if isinstance(e, ReasoningDelta)] == ["first ", "second"]
    resp = decoder.response()
    assert resp.reasoning == "first second"
    assert resp.text == "answer"


def test_mistral_stream_content_arrays() -> None:
    decoder, events = run_stream(
        [
            chunk({"role": "assistant", "content": ""}),
            chunk(
                {"content": [{"type": "thinking", "thinking": [{"type": "text", "text": "Okay"}]}]}
            ),
            chunk(
                {"content": [{"type": "thinking", "thinking": [{"type": "text", "text": ", so"}]}]}
            ),
            chunk({"content": "Cross"}),
            chunk({"content": [{"type": "text", "text": " carefully."}]}),
            chunk(
                {"content": ""},
                "stop",
                usage={"prompt_tokens": 10, "total_tokens": 242, "completion_tokens": 232},
            ),
            "[DONE]",
        ]
    )
    assert [e.text for e in events if isinstance(e, ReasoningDelta)] == ["Okay", ", so"]
    assert texts(events) == "Cross carefully."
    resp = decoder.response()
    assert resp.reasoning == "Okay, so"
    assert resp.text == "Cross carefully."
    assert resp.usage == Usage(10, 232)


def test_stream_refusal() -> None:
    decoder, events = run_stream(
        [
            chunk({"role": "assistant", "content": None, "refusal": ""}),
            chunk({"refusal": "I can't "}),
            chunk({"refusal": "do that."}),
            chunk({}, "stop"),
        ]
    )
    assert [e.text for e in events if isinstance(e, RefusalDelta)] == ["I can't ", "do that."]
    assert events[-1] == FinishEvent("refusal")
    assert decoder.response().refusal == "I can't do that."
    assert decoder.response().finish_reason == "refusal"


def test_stream_n_greater_than_one() -> None:
    decoder, events = run_stream(
        [
            chunk({"content": "A"}, index=0),
            chunk({"content": "B"}, index=1),
            chunk({"content": "a"}, index=0),
            chunk({}, "stop", index=1),
            chunk({}, "length", index=0),
            "[DONE]",
        ]
    )
    assert texts(events) == "Aa"  # events follow the first choice
    resp = decoder.response()
    assert resp.text == "Aa"
    assert resp.finish_reason == "length"
    assert [(c.text, c.finish_reason) for c in resp.choices] == [("B", "stop")]


def test_mid_stream_error_carries_partial() -> None:
    decoder = ChatStreamDecoder(endpoint("openrouter"), "req_7")
    decoder.feed(SSEEvent(json.dumps(chunk({"content": "Partial "}))))
    decoder.feed(SSEEvent(json.dumps(chunk({"content": "answer"}))))
    error = {"error": {"code": 400, "message": "Provider returned error"}}
    with pytest.raises(callm.BadRequestError) as info:
        decoder.feed(SSEEvent(json.dumps(error)))
    exc = info.value
    assert "Provider returned error" in str(exc)
    assert exc.partial is not None
    assert exc.partial.text == "Partial answer"
    assert exc.request_id == "req_7"
    assert exc.provider == "openrouter"
    assert exc.code == "400"


def test_mid_stream_error_with_choices_still_raises() -> None:
    # OpenRouter: a chunk with both an error and a (finishing) choice.
    bad = chunk({"content": ""}, "error", error={"code": 502, "message": "upstream died"})
    decoder = ChatStreamDecoder(endpoint())
    decoder.feed(SSEEvent(json.dumps(chunk({"content": "so far"}))))
    with pytest.raises(callm.InternalServerError) as info:
        decoder.feed(SSEEvent(json.dumps(bad)))
    assert info.value.partial is not None
    assert info.value.partial.text == "so far"


def test_groq_error_event() -> None:
    stream = (
        json_frame(chunk({"content": "abc"})) + b"event: error\n"
        b'data: {"error":{"message":"Failed to call a function",'
        b'"type":"invalid_request_error","code":"tool_use_failed","status_code":400}}\n\n'
    )
    with pytest.raises(callm.BadRequestError) as info:
        run_sse(stream)
    assert "Failed to call a function" in str(info.value)
    assert info.value.code == "tool_use_failed"
    assert info.value.partial is not None
    assert info.value.partial.text == "abc"


def test_non_json_chunk_raises_api_response_error() -> None:
    decoder = ChatStreamDecoder(endpoint())
    decoder.feed(SSEEvent(json.dumps(chunk({"content": "kept"}))))
    with pytest.raises(callm.APIResponseError) as info:
        decoder.feed(SSEEvent("this is not json"))
    assert info.value.partial is not None
    assert info.value.partial.text == "kept"


@pytest.mark.parametrize("data", ["[1, 2]", "null", '"keep-alive"', "42"])
def test_non_object_json_chunk_raises_api_response_error(data: str) -> None:
    decoder = ChatStreamDecoder(endpoint())
    with pytest.raises(callm.APIResponseError):
        decoder.feed(SSEEvent(data))


def test_done_marker() -> None:
    decoder = ChatStreamDecoder(endpoint())
    decoder.feed(SSEEvent(json.dumps(chunk({"content": "hi"}))))
    assert decoder.feed(SSEEvent("[DONE]")) == []
    assert decoder.done
    assert decoder.finished


def test_done_marker_with_no_choice_before_it_is_no_reply() -> None:
    decoder = ChatStreamDecoder(endpoint())
    with pytest.raises(callm.APIResponseError, match="without sending any choice"):
        decoder.feed(SSEEvent("[DONE]"))
    assert decoder.done


def test_legacy_text_completion_chunks() -> None:
    def text_chunk(text: str, finish: str | None = None) -> dict[str, Any]:
        return {
            "id": "cmpl-1",
            "object": "text_completion",
            "model": "gpt-3.5-turbo-instruct",
            "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": finish}],
        }

    decoder, events = run_stream(
        [
            text_chunk("Once"),
            text_chunk(" upon"),
            text_chunk("", "length"),
            {
                "id": "cmpl-1",
                "object": "text_completion",
                "choices": [],
                "usage": {"prompt_tokens": 1, "completion_tokens": 2},
            },
            "[DONE]",
        ]
    )
    assert texts(events) == "Once upon"
    resp = decoder.response()
    assert resp.text == "Once upon"
    assert resp.finish_reason == "length"
    assert resp.usage == Usage(1, 2)


def test_response_before_any_chunk() -> None:
    resp = ChatStreamDecoder(endpoint()).response()
    assert resp.content == ()
    assert resp.finish_reason is None
    assert resp.usage == Usage(reported=False)  # nothing reported yet


def test_full_sse_bytes_in_crlf_chunks() -> None:
    frames = [
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "日本"}),
        chunk({"content": " é 🎉"}),
        chunk({}, "stop"),
    ]
    stream = (
        b"".join(json_frame(f) for f in frames).replace(b"\n", b"\r\n") + b"data: [DONE]\r\n\r\n"
    )
    whole_decoder, whole = run_sse(stream)
    for size in (1, 3, 7):
        _, split = run_sse(stream, size)
        assert split == whole
    assert texts(whole) == "日本 é 🎉"
    assert whole_decoder.response().text == "日本 é 🎉"


def json_frame(data: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(data, ensure_ascii=False).encode() + b"\n\n"


def run_sse(stream: bytes, size: int | None = None) -> tuple[ChatStreamDecoder, list[Any]]:
    sse = SSEDecoder()
    decoder = ChatStreamDecoder(endpoint())
    events: list[Any] = []
    step = size or len(stream) or 1
    for start in range(0, len(stream), step):
        for event in sse.feed(stream[start : start + step]):
            events.extend(decoder.feed(event))
    for event in sse.close():
        events.extend(decoder.feed(event))
    return decoder, events


# --- error mapping ----------------------------------------------------------------------


def openai_error(
    message: str, type_: str = "invalid_request_error", code: Any = None, param: Any = None
):
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, callm.BadRequestError),
        (401, callm.AuthenticationError),
        (403, callm.PermissionDeniedError),
        (404, callm.NotFoundError),
        (409, callm.ConflictError),
        (422, callm.BadRequestError),
        (429, callm.RateLimitError),
        (500, callm.InternalServerError),
        (502, callm.InternalServerError),
        (503, callm.OverloadedError),
        (529, callm.OverloadedError),
    ],
)
def test_error_class_by_status(status: int, cls: type[Exception]) -> None:
    exc = decode_error(
        endpoint(), status, {"x-request-id": "req_e"}, openai_error("boom", code="c1")
    )
    assert type(exc) is cls
    assert isinstance(exc, callm.APIStatusError)
    assert exc.status_code == status
    assert exc.request_id == "req_e"
    assert exc.code == "c1"
    assert exc.provider == "openai"
    assert "boom" in str(exc)
    assert f"HTTP {status}" in str(exc)
    assert "req_e" in str(exc)


def test_overloaded_is_an_internal_server_error() -> None:
    assert isinstance(decode_error(endpoint(), 529, {}, {}), callm.InternalServerError)


def test_unknown_4xx_is_plain_status_error() -> None:
    exc = decode_error(endpoint(), 408, {}, openai_error("timeout"))
    assert type(exc) is callm.APIStatusError


def test_401_message_names_key_env_and_cli() -> None:
    exc = decode_error(
        endpoint(), 401, {}, openai_error("Incorrect API key provided", code="invalid_api_key")
    )
    text = str(exc)
    assert "Incorrect API key provided" in text
    assert "OPENAI_API_KEY" in text
    assert "callm keys set openai" in text


def test_401_without_key_env_still_points_at_cli() -> None:
    exc = decode_error(endpoint("local", key_env=None), 401, {}, {})
    assert "callm keys set local" in str(exc)


def test_404_message_suggests_models_command() -> None:
    body = openai_error(
        "The model `gpt-5.2-proo` does not exist or you do not have access to it.",
        code="model_not_found",
    )
    exc = decode_error(endpoint(), 404, {}, body)
    assert isinstance(exc, callm.NotFoundError)
    assert "gpt-5.2-proo" in str(exc)
    assert "callm models openai" in str(exc)
    assert exc.code == "model_not_found"
    assert exc.body == body


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after": "7"}, 7.0),
        ({"retry-after": "0.25"}, 0.25),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after-ms": "soon", "retry-after": "9"}, 9.0),
        ({}, None),
        ({"retry-after": "whenever"}, None),
    ],
)
def test_rate_limit_retry_after(headers: dict[str, str], expected: float | None) -> None:
    body = openai_error("Rate limit reached for gpt-4o", type_="tokens", code="rate_limit_exceeded")
    exc = decode_error(endpoint(), 429, headers, body)
    assert isinstance(exc, callm.RateLimitError)
    assert exc.retry_after == expected
    assert exc.headers == headers


def test_rate_limit_retry_after_http_date() -> None:
    date = email.utils.formatdate(time.time() + 30, usegmt=True)
    exc = decode_error(endpoint(), 429, {"retry-after": date}, {})
    assert isinstance(exc, callm.RateLimitError)
    assert exc.retry_after is not None
    assert 27 <= exc.retry_after <= 31


def test_azure_minimal_429_body() -> None:
    body = {
        "error": {
            "code": "429",
            "message": "Requests to the ChatCompletions_Create Operation under Azure OpenAI API "
            "version 2024-10-21 have exceeded token rate limit. Please retry after 45 seconds.",
        }
    }
    exc = decode_error(
        endpoint("azure"), 429, {"retry-after": "45", "apim-request-id": "apim-1"}, body
    )
    assert isinstance(exc, callm.RateLimitError)
    assert exc.retry_after == 45.0
    assert exc.code == "429"
    assert exc.request_id == "apim-1"
    assert "Please retry after 45 seconds" in str(exc)


@pytest.mark.parametrize(
    "body",
    [
        openai_error(
            "This model's maximum context length is 128000 tokens. "
            "However, your messages resulted in 130000 tokens.",
            code="context_length_exceeded",
            param="messages",
        ),
        # llama.cpp: integer code, its own error type, a message without the usual words.
        {
            "error": {
                "code": 400,
                "message": "the request exceeds the available context size, try increasing it",
                "type": "exceed_context_size_error",
                "n_prompt_tokens": 5000,
                "n_ctx": 4096,
            }
        },
        # vLLM: integer code, type "BadRequestError".
        {
            "error": {
                "message": "This model's maximum context length is 4096 tokens. However, you "
                "requested 5000 tokens (4000 in the messages, 1000 in the completion).",
                "type": "BadRequestError",
                "param": None,
                "code": 400,
            }
        },
    ],
    ids=["openai", "llama.cpp", "vllm"],
)
def test_context_window_errors(body: dict[str, Any]) -> None:
    exc = decode_error(endpoint(), 400, {}, body)
    assert isinstance(exc, callm.ContextWindowExceededError)
    assert isinstance(exc, callm.BadRequestError)
    assert body["error"]["message"] in str(exc)
    assert exc.code == str(body["error"]["code"])


def test_other_400_is_not_context_error() -> None:
    body = openai_error(
        "Unsupported value: 'messages[0].role' does not support 'system' with this model.",
        code="unsupported_value",
        param="messages[0].role",
    )
    exc = decode_error(endpoint(), 400, {}, body)
    assert type(exc) is callm.BadRequestError
    assert exc.code == "unsupported_value"


def test_flat_mistral_error_body() -> None:
    body = {
        "object": "error",
        "message": "Tool call id has to be a string of length 9.",
        "type": "invalid_request_error",
        "param": None,
        "code": "3280",
    }
    exc = decode_error(endpoint("mistral"), 400, {"mistral-correlation-id": "m-1"}, body)
    assert type(exc) is callm.BadRequestError
    assert "Tool call id has to be a string of length 9." in str(exc)
    assert exc.code == "3280"
    assert exc.request_id == "m-1"


def test_error_with_string_error_field() -> None:
    exc = decode_error(endpoint("ollama"), 404, {}, {"error": "model 'llama9' not found"})
    assert isinstance(exc, callm.NotFoundError)
    assert "model 'llama9' not found" in str(exc)


def test_fastapi_detail_error() -> None:
    exc = decode_error(endpoint(), 404, {}, {"detail": "Not Found"})
    assert isinstance(exc, callm.NotFoundError)
    assert "Not Found" in str(exc)


@pytest.mark.parametrize(
    ("status", "raw", "cls"),
    [
        (502, "<html><body>502 Bad Gateway</body></html>", callm.InternalServerError),
        (413, "Request Entity Too Large", callm.BadRequestError),
        (401, "Unauthorized", callm.AuthenticationError),
    ],
)
def test_non_json_error_bodies(status: int, raw: str, cls: type[Exception]) -> None:
    exc = decode_error(endpoint(), status, {}, raw)
    assert isinstance(exc, cls)
    if raw.startswith("<html>"):  # a page is named by its words, not shown as markup
        assert "an HTML page ('502 Bad Gateway')" in str(exc)
    else:
        assert raw in str(exc)
    assert exc.status_code == status


def test_error_without_message_names_status() -> None:
    exc = decode_error(endpoint(), 500, {}, {"error": {"code": None}})
    assert "500" in str(exc)
    assert isinstance(exc, callm.InternalServerError)


def test_decode_error_keeps_headers() -> None:
    headers = {"x-ratelimit-remaining-requests": "0"}
    exc = decode_error(endpoint(), 500, headers, {})
    assert exc.headers == headers


# --- retry policy -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (408, True),
        (409, True),
        (429, True),
        (500, True),
        (502, True),
        (503, True),
        (504, True),
        (529, True),
        (400, False),
        (401, False),
        (403, False),
        (404, False),
        (422, False),
    ],
)
def test_should_retry_by_status(status: int, expected: bool) -> None:
    assert should_retry(status, {}) is expected


def test_x_should_retry_overrides_status() -> None:
    assert should_retry(400, {"x-should-retry": "true"}) is True
    assert should_retry(500, {"x-should-retry": "false"}) is False
    assert should_retry(429, {"x-should-retry": "false"}) is False


def test_long_retry_hint_means_no_retry() -> None:
    assert should_retry(429, {"retry-after": "60"}) is True
    assert should_retry(429, {"retry-after": "61"}) is False
    assert should_retry(503, {"retry-after-ms": "120000"}) is False
    assert should_retry(429, {"retry-after": "3600", "x-should-retry": "true"}) is False


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after": "3"}, 3.0),
        ({"retry-after": "60"}, 60.0),
        ({"retry-after": "0.5"}, 0.5),
    ],
)
def test_retry_delay_honours_hint_exactly(headers: dict[str, str], expected: float) -> None:
    for retries in (0, 3):
        assert retry_delay(retries, headers) == expected


def test_retry_delay_honours_http_date() -> None:
    date = email.utils.formatdate(time.time() + 20, usegmt=True)
    assert 17 <= retry_delay(0, {"retry-after": date}) <= 21


@pytest.mark.parametrize(
    "headers",
    [
        None,
        {},
        {"retry-after": "0"},
        {"retry-after": "-3"},
        {"retry-after": "61"},
        {"retry-after": "garbage"},
        {"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"},  # in the past
    ],
)
def test_retry_delay_backoff_range(headers: dict[str, str] | None) -> None:
    for retries in range(8):
        nominal = min(0.5 * 2**retries, 8.0)
        for _ in range(50):
            delay = retry_delay(retries, headers)
            assert 0.75 * nominal <= delay <= nominal


def test_retry_delay_jitter_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_retry._rng, "random", lambda: 0.0)
    assert [retry_delay(n) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    monkeypatch.setattr(_retry._rng, "random", lambda: 1.0)
    assert [retry_delay(n) for n in range(6)] == [0.375, 0.75, 1.5, 3.0, 6.0, 6.0]


def test_retry_delay_does_not_overflow_after_many_retries() -> None:
    # 0.5 * 2.0 ** n overflows a float for n > 1023; the cap must still apply.
    for retries in (1024, 5000):
        assert 6.0 <= retry_delay(retries) <= 8.0


def test_retry_delay_prefers_a_hint_from_the_body() -> None:
    from callm._policies import retry as _retry

    assert _retry.retry_delay(0, {"retry-after": "9"}, hint=2.0) == 2.0
    assert _retry.retry_delay(3, {}, hint=0.25) == 0.25
    assert _retry.should_retry(429, {}, hint=600.0) is False  # too long to wait out
