"""The OpenAI Responses server codec: round trips with the client codec, the openai SDK's own
types and stream accumulator as the judge of every body and event, bad input, errors."""

from __future__ import annotations

import json
from typing import Any

import pydantic
import pytest
from codec_checks import endpoint, feed_stream, http_json, joined, plain_calls, upstream_events
from hypothesis import given, settings
from hypothesis import strategies as st
from openai import omit
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types.responses import Response as SDKResponse
from openai.types.responses import ResponseStreamEvent

from callm import InvalidRequestError, RateLimitError
from callm._core.errors import APIStatusError, BudgetExceededError, InternalServerError
from callm._core.types import (
    Image,
    Message,
    RawPart,
    Reasoning,
    Refusal,
    Request,
    Response,
    Text,
    Tool,
    ToolCall,
    ToolResult,
    Usage,
)
from callm.protocols import server_codec_for
from callm.protocols._shared.sse import SSEDecoder
from callm.protocols.openai_responses import client, server
from callm.protocols.openai_responses.stream import ResponsesStreamDecoder

ENDPOINT = endpoint("openai-responses")
WEATHER = Tool(
    "get_weather",
    "The weather in a city.",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
EVENTS: Any = pydantic.TypeAdapter(ResponseStreamEvent)


def full_request(**changes: Any) -> Request:
    fields: dict[str, Any] = {
        "model": "gpt-5-mini",
        "messages": (
            Message.system("Be brief."),
            Message("user", (Text("What is in this picture?"), Image("https://x.test/a.png"))),
            Message(
                "assistant",
                (
                    Reasoning(
                        "Look first.",
                        signature="msg_2",
                        id="rs_1",
                        data="enc-1",
                        protocol="openai_responses",
                    ),
                    Text("Let me check."),
                    ToolCall("call_1", "get_weather", {"city": "Paris"}),
                ),
            ),
            Message("tool", (ToolResult("call_1", "sunny"),)),
            Message.user("Thanks"),
        ),
        "max_tokens": 50,
        "temperature": 0.5,
        "top_p": 0.9,
        "user": "u1",
        "tools": (WEATHER,),
        "tool_choice": "get_weather",
        "response_format": {"type": "json_schema", "name": "out", "schema": {"type": "object"}},
        "cache": "key-1",
    }
    fields.update(changes)
    return Request(**fields)


def client_body(request: Request) -> dict[str, Any]:
    return json.loads(json.dumps(client.encode_body(request, ENDPOINT.quirks)))


def test_the_registry_gives_this_module() -> None:
    assert server_codec_for("openai_responses") is server


def test_a_client_encoded_request_decodes_to_the_same_request() -> None:
    original = full_request()
    body = client_body(original)
    decoded = server.decode_request(body)
    assert decoded.model == original.model
    assert [m.role for m in decoded.messages] == [m.role for m in original.messages]
    assert decoded.messages[1].content == (
        Text("What is in this picture?"),
        Image("https://x.test/a.png"),
    )
    assert plain_calls(decoded.messages[2].content) == plain_calls(original.messages[2].content)
    assert decoded.messages[3].content == (ToolResult("call_1", "sunny"),)
    for name in ("max_tokens", "temperature", "top_p", "user", "tool_choice", "tools", "cache"):
        assert getattr(decoded, name) == getattr(original, name), name
    assert decoded.response_format is not None
    assert decoded.response_format.schema == {"type": "object"}
    assert not decoded.stream and not decoded.extra_body
    # And once more around: the decoded request encodes to the very same body.
    assert client_body(decoded) == body


def test_a_string_input_and_instructions() -> None:
    decoded = server.decode_request({"model": "m", "input": "Hi", "instructions": "Be kind."})
    assert decoded.messages == (Message.system("Be kind."), Message.user("Hi"))


def test_unmodelled_fields_and_built_in_tools_are_kept_for_a_responses_upstream() -> None:
    web = {"type": "web_search"}
    function = {"type": "function", "name": "f", "parameters": {"type": "object"}}
    body = {
        "model": "m",
        "input": "Hi",
        "stream": True,
        "stream_options": {"include_obfuscation": False},
        "reasoning": {"effort": "low", "summary": "auto"},
        "include": ["reasoning.encrypted_content"],
        "store": False,
        "tools": [web, function],
        "text": {"format": {"type": "text"}, "verbosity": "low"},
    }
    decoded = server.decode_request(body)
    assert decoded.stream
    assert [t.name for t in decoded.tools] == ["f"]
    assert decoded.extra_body == {
        "reasoning": {"effort": "low", "summary": "auto"},
        "include": ["reasoning.encrypted_content"],
        "store": False,
        "tools": [web, function],
        "text": {"format": {"type": "text"}, "verbosity": "low"},
    }
    sent = client_body(decoded)
    assert sent["tools"] == [web, function]  # exactly what the caller sent
    assert "stream_options" not in sent


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"input": "Hi"}, "model"),
        ({"model": "m"}, "input is required"),
        ({"model": "m", "input": 3}, "input must be a string or an array"),
        ({"model": "m", "input": [{"role": "robot", "content": "x"}]}, "input[0].role"),
        (
            {"model": "m", "input": [{"role": "user", "content": [{"type": "input_audio"}]}]},
            "input[0].content[0].type",
        ),
        (
            {"model": "m", "input": [{"type": "function_call", "name": "f", "arguments": "{}"}]},
            "input[0].call_id",
        ),
        ({"model": "m", "input": [{"type": "item_reference", "id": "x"}]}, "stores no responses"),
        (
            {
                "model": "m",
                "input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}],
            },
            "file_id",
        ),
        ({"model": "m", "input": "x", "max_output_tokens": "9"}, "max_output_tokens"),
        ({"model": "m", "input": "x", "stream": "yes"}, "stream"),
        ({"model": "m", "input": "x", "tools": [{"type": "function"}]}, "tools[0].name"),
        ({"model": "m", "input": "x", "tool_choice": "sometimes"}, "tool_choice"),
        ({"model": "m", "input": "x", "text": {"format": {"type": "yaml"}}}, "text.format.type"),
    ],
)
def test_bad_input_names_the_field(body: dict[str, Any], named: str) -> None:
    with pytest.raises(InvalidRequestError, match=named.replace("[", r"\[").replace("]", r"\]")):
        server.decode_request(body)


# --- replies ------------------------------------------------------------------------------


def reply(*content: Any, finish: Any = "stop", usage: Usage | None = None) -> Response:
    return Response(
        id="resp_up",
        model="gpt-5-mini",
        provider="openai-responses",
        content=content,
        finish_reason=finish,
        usage=usage or Usage(12, 30, 4, 0, 9),
    )


REPLIES = {
    "text": reply(Text("Hello there.")),
    "tools": reply(
        Text("Checking."),
        ToolCall("call_a", "get_weather", {"city": "Paris"}),
        ToolCall("call_b", "get_weather", {"city": "Rome"}),
        finish="tool_calls",
    ),
    "reasoning": reply(
        Reasoning("Think.", signature="msg_x", id="rs_x", data="enc", protocol="openai_responses"),
        Text("Done."),
    ),
    "refusal": reply(Refusal("I can't help with that."), finish="refusal"),
    "length": reply(Text("Cut sh"), finish="length"),
}


@pytest.mark.parametrize("name", REPLIES)
def test_a_reply_is_a_valid_response_the_client_decodes_back(name: str) -> None:
    response = REPLIES[name]
    body = server.encode_response(response, model="alias")
    checked = SDKResponse.model_validate(body)
    assert checked.model == "alias"
    assert checked.output_text == response.text
    again = client.decode(ENDPOINT, http_json(body))
    assert plain_calls(again.content) == plain_calls(response.content)
    assert (again.usage, again.finish_reason) == (response.usage, response.finish_reason)


def test_this_protocols_reasoning_keeps_its_ids() -> None:
    body = server.encode_response(REPLIES["reasoning"], model="m")
    output: Any = body["output"]
    assert output[0] == {
        "id": "rs_x",
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": "Think."}],
        "encrypted_content": "enc",
    }
    assert output[1]["id"] == "msg_x"  # the item the reasoning said follows it


def test_another_protocols_reasoning_is_sealed_and_comes_back() -> None:
    thinking = Reasoning("Hmm.", signature="sig-abc", protocol="anthropic")
    body = server.encode_response(reply(thinking, Text("Yes.")), model="m")
    output: Any = body["output"]
    # The caller sends the reply's output back as input, as the SDK's examples do.
    request = server.decode_request(
        {"model": "m", "input": [{"role": "user", "content": "Q"}, *output]}
    )
    assert request.messages[1].content == (thinking, Text("Yes."))


def test_usage_says_cached_and_reasoning_tokens() -> None:
    body = server.encode_response(reply(Text("x"), usage=Usage(100, 40, 60, 0, 25)), model="m")
    assert body["usage"] == {
        "input_tokens": 100,
        "input_tokens_details": {"cached_tokens": 60, "cache_write_tokens": 0},
        "output_tokens": 40,
        "output_tokens_details": {"reasoning_tokens": 25},
        "total_tokens": 140,
    }


# --- streams --------------------------------------------------------------------------------


def encode_stream(response: Response, pieces: int = 3) -> bytes:
    encoder = server.StreamEncoder(model="alias")
    sent = encoder.start()
    for event in upstream_events(response, pieces):
        sent += encoder.encode(event)
    return sent + encoder.finish(response)


def sdk_events(data: bytes) -> list[Any]:
    """The stream as the openai SDK parses it: each event validated against its types."""
    sse = SSEDecoder()
    events = [EVENTS.validate_python(json.loads(e.data)) for e in sse.feed(data)]
    sse.close()
    return events


@pytest.mark.parametrize("name", REPLIES)
def test_a_stream_decodes_to_the_same_events_and_response(name: str) -> None:
    response = REPLIES[name]
    sent = encode_stream(response)
    caller = ResponsesStreamDecoder(ENDPOINT)
    events = feed_stream(sent, caller, cuts=range(0, len(sent), 61))
    assert caller.finished
    assert joined(events) == joined(upstream_events(response))
    back = caller.response()
    assert back.text == response.text
    assert [(c.name, dict(c.arguments)) for c in back.tool_calls] == [
        (c.name, dict(c.arguments)) for c in response.tool_calls
    ]
    assert (back.usage, back.finish_reason) == (response.usage, response.finish_reason)


@pytest.mark.parametrize("name", REPLIES)
def test_the_sdks_stream_accumulator_reads_every_event(name: str) -> None:
    response = REPLIES[name]
    events = sdk_events(encode_stream(response))
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[0].type == "response.created"
    state: Any = ResponseStreamState(input_tools=omit, text_format=omit)
    for event in events:
        state.handle_event(event)
    final = state._completed_response
    if response.finish_reason == "length":  # the API ends such a stream with .incomplete
        assert final is None
        assert events[-1].type == "response.incomplete"
        final = events[-1].response
        assert final.incomplete_details.reason == "max_output_tokens"
    assert final is not None
    assert final.output_text == response.text
    calls = [i for i in final.output if i.type == "function_call"]
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [
        (c.name, dict(c.arguments)) for c in response.tool_calls
    ]
    assert final.usage is not None
    assert final.usage.output_tokens == response.usage.output_tokens


@settings(max_examples=60, deadline=None)
@given(
    texts=st.lists(st.text(min_size=1, max_size=20), min_size=0, max_size=3),
    calls=st.lists(
        st.dictionaries(st.from_regex(r"[a-z]{1,6}", fullmatch=True), st.integers(), max_size=3),
        max_size=3,
    ),
    pieces=st.integers(1, 5),
)
def test_any_mix_of_text_and_calls_round_trips(
    texts: list[str], calls: list[dict[str, int]], pieces: int
) -> None:
    content: list[Any] = [Text(t) for t in texts]
    content += [ToolCall(f"call_{i}", f"tool{i}", args) for i, args in enumerate(calls)]
    response = reply(*content, finish="tool_calls" if calls else "stop")
    sent = encode_stream(response, pieces)
    caller = ResponsesStreamDecoder(ENDPOINT)
    feed_stream(sent, caller)
    back = caller.response()
    assert back.text == "".join(texts)
    assert [(c.id, c.name, dict(c.arguments)) for c in back.tool_calls] == [
        (c.id, c.name, dict(c.arguments)) for c in response.tool_calls
    ]
    sdk_events(sent)  # every event valid for the SDK


def test_parts_that_never_streamed_are_sent_whole_before_the_end() -> None:
    search = {
        "id": "ws_1",
        "type": "web_search_call",
        "status": "completed",
        "action": {"type": "search", "query": "weather"},
    }
    response = reply(RawPart("openai_responses", "web_search_call", search), Text("Found it."))
    sent = encode_stream(response)
    events = sdk_events(sent)
    added = [e.item.id for e in events if e.type == "response.output_item.added"]
    assert "ws_1" in added
    caller = ResponsesStreamDecoder(ENDPOINT)
    feed_stream(sent, caller)
    assert caller.response().content[0] == RawPart("openai_responses", "web_search_call", search)


def test_an_error_mid_stream_is_response_failed_and_typed() -> None:
    encoder = server.StreamEncoder(model="m")
    sent = encoder.start() + encoder.encode(upstream_events(REPLIES["text"])[0])
    sent += encoder.error(RateLimitError("slow down", retry_after=3))
    assert sdk_events(sent)[-1].type == "response.failed"
    caller = ResponsesStreamDecoder(ENDPOINT)
    with pytest.raises(RateLimitError, match="slow down"):
        feed_stream(sent, caller)


def test_a_server_failure_mid_stream_is_a_server_error() -> None:
    encoder = server.StreamEncoder(model="m")
    sent = encoder.start() + encoder.error(InternalServerError("boom"))
    with pytest.raises(InternalServerError):
        feed_stream(sent, ResponsesStreamDecoder(ENDPOINT))


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (InvalidRequestError("bad"), 400, None),
        (RateLimitError("slow", code="rate_limit_exceeded"), 429, "rate_limit_exceeded"),
        (BudgetExceededError("spent"), 429, "budget_exceeded"),
        (APIStatusError("nope", status_code=404), 404, None),
    ],
)
def test_errors_use_openais_envelope(error: Any, status: int, code: str | None) -> None:
    sent_status, body = server.encode_error(error)
    assert sent_status == status
    inner: Any = body["error"]
    assert set(inner) == {"message", "type", "param", "code"}
    assert inner["code"] == code
    failure = client.decode_failure(ENDPOINT, http_json(body, status))
    assert failure.status_code == status
