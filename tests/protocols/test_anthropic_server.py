"""The Anthropic server codec, checked against the client codec, the official SDK and
recorded traffic.

- Requests: any Request the client codec can send comes back the same from the server
  decoder (client encode -> JSON -> server decode).
- Replies: a Response encoded by the server and decoded by the client is the same Response;
  a stream of events encoded by the server and read by the client's stream decoder gives
  the same events and the same final Response.
- The anthropic SDK validates and accumulates what the server codec writes (its pydantic
  types, and its own client over loopback HTTP), and raises the right exception for errors.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import anthropic
import pytest
from codec_checks import (
    arguments,
    endpoint,
    feed_stream,
    http_json,
    ids,
    joined,
    names,
    plain_calls,
    schemas,
    streamed_content,
    texts,
    unsigned,
    upstream_events,
    usages,
    wire,
)
from hypothesis import given, settings
from hypothesis import strategies as st

import callm
from callm._core.http import HttpResponse
from callm._core.options import ResponseFormat, ToolChoice
from callm._core.types import (
    Document,
    Image,
    Message,
    Part,
    RawPart,
    Reasoning,
    Refusal,
    Request,
    Response,
    Text,
    Tool,
    ToolCall,
    ToolCallEvent,
    ToolResult,
    Usage,
)
from callm.protocols.anthropic import client, server
from callm.protocols.anthropic.stream import AnthropicStreamDecoder
from recording_server import Recorded, RecordingServer

ENDPOINT = endpoint("anthropic")
FAKE_KEY = "sk-ant-" + "x" * 24
SSE_HEADERS = (("content-type", "text/event-stream"),)
JSON_HEADERS = (("content-type", "application/json"),)
PNG = "data:image/png;base64,iVBORw0KGgo="
PDF = "data:application/pdf;base64,JVBERi0xLjQK"


# --- strategies -------------------------------------------------------------------------

user_parts = st.one_of(
    st.builds(Text, texts),
    st.just(Image(PNG)),
    st.builds(Image, st.from_regex(r"https://img\.test/[a-z]{1,8}\.png", fullmatch=True)),
    st.builds(lambda title: Document(PDF, "application/pdf", title), st.none() | names),
    st.builds(
        lambda text, title: Document(
            "data:text/plain;base64," + __import__("base64").b64encode(text.encode()).decode(),
            "text/plain",
            title,
        ),
        texts,
        st.none() | names,
    ),
)
assistant_parts = st.one_of(
    st.builds(Text, texts),
    st.builds(ToolCall, ids, names, arguments),
    st.builds(lambda t, s: Reasoning(t, signature=s, protocol="anthropic"), texts, ids),
    st.builds(lambda d: Reasoning("", data=d, protocol="anthropic"), ids),
)


@st.composite
def messages(draw: st.DrawFn) -> tuple[Message, ...]:
    out = [
        Message("system", (Text(draw(texts)),), cache=draw(st.booleans()))
        for _ in range(draw(st.integers(0, 2)))
    ]
    for _ in range(draw(st.integers(1, 5))):
        role = draw(st.sampled_from(["user", "assistant", "tool"]))
        cache = draw(st.booleans())
        if role == "tool":
            result = ToolResult(draw(ids), draw(st.just("") | texts), is_error=draw(st.booleans()))
            out.append(Message("tool", (result,), cache=cache))
            continue
        strategy = user_parts if role == "user" else assistant_parts
        parts = draw(st.lists(strategy, min_size=1, max_size=3))
        out.append(Message(role, tuple(parts), cache=cache))
    return tuple(out)


tools = st.builds(Tool, names, st.just("") | texts, schemas, st.none() | st.booleans())


@st.composite
def requests(draw: st.DrawFn) -> Request:
    tool_list = draw(st.lists(tools, max_size=3, unique_by=lambda t: t.name))
    choices = ["auto", "none", "required", *(t.name for t in tool_list)]
    choices = [c for c in choices if c in ("auto", "none", "required") or c not in choices[:3]]
    thinking = {"thinking": {"type": "enabled", "budget_tokens": 1024}}
    return Request(
        model=draw(st.sampled_from(["claude-sonnet-4-5", "claude-haiku-4-5"])),
        messages=draw(messages()),
        max_tokens=draw(st.integers(1, 64000)),
        temperature=draw(st.none() | st.floats(0, 1)),
        top_p=draw(st.none() | st.floats(0, 1)),
        top_k=draw(st.none() | st.integers(1, 500)),
        stop=draw(st.none() | st.lists(texts, min_size=1, max_size=3).map(tuple)),
        user=draw(st.none() | ids),
        tools=tuple(tool_list),
        tool_choice=draw(st.none() | st.sampled_from(choices)),
        response_format=draw(
            st.none() | st.builds(lambda s: {"type": "json_schema", "schema": s}, schemas)
        ),
        stream=draw(st.booleans()),
        extra_body=draw(st.just({}) | st.just(thinking)),
    )


NATIVE = sorted(client.FINISH_REASONS)
reply_parts = st.one_of(
    assistant_parts,
    st.builds(
        lambda i, q: RawPart(
            "anthropic",
            "server_tool_use",
            {"type": "server_tool_use", "id": i, "name": "web_search", "input": {"query": q}},
        ),
        ids,
        texts,
    ),
)


@st.composite
def responses(draw: st.DrawFn, parts: Any = reply_parts) -> Response:
    native = draw(st.sampled_from(NATIVE))
    return Response(
        id="msg_" + draw(ids),
        model="claude-sonnet-4-5-20250929",
        provider="anthropic",
        content=tuple(draw(st.lists(parts, max_size=5))),
        finish_reason=client.FINISH_REASONS[native],
        usage=draw(usages),
        native_finish_reason=native,
    )


# --- requests -----------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(requests())
def test_client_encoded_requests_decode_to_the_same_request(request: Request) -> None:
    body = wire(client.encode_body(request))
    assert server.decode_request(body) == request


def test_a_typical_sdk_body_decodes_field_by_field() -> None:
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "system": "Be brief.",
        "messages": [
            {"role": "user", "content": "What is the weather in Paris?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "Use the tool.", "signature": "sig1"},
                    {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"c": "P"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"},
                    {"type": "text", "text": "Thanks", "cache_control": {"type": "ephemeral"}},
                ],
            },
        ],
        "tools": [{"name": "weather", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "any"},
        "thinking": {"type": "enabled", "budget_tokens": 2048},
        "metadata": {"user_id": "u-1"},
        "stream": True,
    }
    request = server.decode_request(body)
    assert request.messages == (
        Message.system("Be brief."),
        Message.user("What is the weather in Paris?"),
        Message(
            "assistant",
            (
                Reasoning("Use the tool.", signature="sig1", protocol="anthropic"),
                ToolCall("toolu_1", "weather", {"c": "P"}),
            ),
        ),
        Message.tool("toolu_1", "sunny"),
        Message("user", (Text("Thanks"),), cache=True),
    )
    assert request.tools == (Tool("weather", parameters={"type": "object"}),)
    assert request.tool_choice == ToolChoice("required")
    assert request.user == "u-1"
    assert request.stream is True
    assert request.max_tokens == 1024
    assert request.extra_body == {"thinking": {"type": "enabled", "budget_tokens": 2048}}


def test_what_callm_models_only_in_part_is_also_kept_whole_for_anthropic() -> None:
    web_search = {"type": "web_search_20250305", "name": "web_search", "max_uses": 2}
    function = {"name": "f", "input_schema": {"type": "object"}, "cache_control": {"type": "x"}}
    choice = {"type": "auto", "disable_parallel_tool_use": True}
    config = {"effort": "low", "format": {"type": "json_schema", "schema": {"type": "object"}}}
    body = {
        "model": "m",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        "tools": [web_search, function],
        "tool_choice": choice,
        "output_config": config,
        "metadata": {"user_id": "u", "tag": "t"},
        "service_tier": "auto",
    }
    request = server.decode_request(body)
    assert request.tools == (Tool("f", parameters={"type": "object"}),)
    assert request.tool_choice == ToolChoice("auto")
    assert request.response_format == ResponseFormat("json_schema", {"type": "object"})
    assert request.user == "u"
    # Sent again over Anthropic, the body is the caller's, field for field.
    assert client.encode_body(request) == body


def test_a_tool_result_with_an_image_keeps_the_image_in_a_user_message_after_it() -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AA"}}
    result = {
        "type": "tool_result",
        "tool_use_id": "t1",
        "content": [{"type": "text", "text": "a screenshot"}, image],
        "is_error": True,
    }
    body = {"model": "m", "messages": [{"role": "user", "content": [result]}]}
    assert server.decode_request(body).messages == (
        Message.tool("t1", "a screenshot", is_error=True),
        Message.user(Image("data:image/png;base64,AA")),
    )


def test_blocks_callm_does_not_model_are_kept_in_place() -> None:
    search = {"type": "search_result", "source": "s", "title": "t", "content": []}
    tool_use = {"type": "server_tool_use", "id": "s1", "name": "web_search", "input": {}}
    body = {
        "model": "m",
        "messages": [
            {"role": "user", "content": [search, {"type": "text", "text": "q"}]},
            {"role": "assistant", "content": [tool_use]},
        ],
    }
    assert server.decode_request(body).messages == (
        Message.user(RawPart("anthropic", "search_result", search), Text("q")),
        Message("assistant", (RawPart("anthropic", "server_tool_use", tool_use),)),
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "the request body must be a JSON object, not an array"),
        ({"messages": []}, "model is required"),
        ({"model": "m"}, "messages is required"),
        ({"model": "m", "messages": {}}, "messages must be an array, not an object"),
        ({"model": "m", "messages": [{"role": "bot", "content": "x"}]}, "messages[0].role"),
        (
            {"model": "m", "messages": [{"role": "user", "content": [{"type": "text"}]}]},
            "messages[0].content[0].text must be a string, not null",
        ),
        (
            {"model": "m", "messages": [], "max_tokens": "10"},
            "max_tokens must be an integer, not a string",
        ),
        (
            {"model": "m", "messages": [], "tools": [{"name": "f"}]},
            "tools[0].input_schema must be an object, not null",
        ),
        (
            {"model": "m", "messages": [], "tool_choice": {"type": "maybe"}},
            "tool_choice.type must be 'auto', 'any', 'tool' or 'none'",
        ),
        (
            {"model": "m", "messages": [], "system": [{"type": "image"}]},
            "system[0] must be a text block",
        ),
    ],
)
def test_bad_bodies_raise_errors_that_name_the_field(body: Any, message: str) -> None:
    with pytest.raises(callm.InvalidRequestError) as caught:
        server.decode_request(body)
    assert message in str(caught.value)


def test_the_model_from_the_url_wins_over_the_body() -> None:
    body = {"model": "alias", "messages": []}
    assert server.decode_request(body, model="claude-x").model == "claude-x"


# --- replies ------------------------------------------------------------------------------


def decoded(body: dict[str, Any]) -> Response:
    return client.decode(ENDPOINT, http_json(body))


@settings(max_examples=100, deadline=None)
@given(responses())
def test_encoded_replies_decode_to_the_same_response(response: Response) -> None:
    body = wire(server.encode_response(response, model=response.model))
    back = decoded(body)
    assert plain_calls(back.content) == plain_calls(response.content)
    assert (back.id, back.model) == (response.id, response.model)
    assert (back.finish_reason, back.native_finish_reason) == (
        response.finish_reason,
        response.native_finish_reason,
    )
    assert back.usage == response.usage
    anthropic.types.Message.model_validate(body)  # the SDK's own types accept it


@pytest.mark.parametrize(
    ("finish", "native", "calls", "expected"),
    [
        ("stop", "stop", False, "end_turn"),
        ("stop", "STOP", True, "tool_use"),  # a server that said "stop" with calls
        ("length", "MAX_TOKENS", False, "max_tokens"),
        ("tool_calls", "tool_calls", True, "tool_use"),
        ("content_filter", "SAFETY", False, "refusal"),
        ("refusal", None, False, "refusal"),
        ("length", "pause_turn", False, "pause_turn"),
        (None, None, False, "end_turn"),
    ],
)
def test_stop_reasons_of_other_protocols(
    finish: Any, native: str | None, calls: bool, expected: str
) -> None:
    content: tuple[Part, ...] = (ToolCall("c1", "f", {}),) if calls else (Text("x"),)
    response = Response("r", "m", "p", content, finish, Usage(), native_finish_reason=native)
    assert server.encode_response(response, model="m")["stop_reason"] == expected


def test_a_reply_from_another_protocol_fits_anthropic_shapes() -> None:
    gemini_thought = Reasoning("", signature="gem-sig", protocol="gemini")
    response = Response(
        id="chatcmpl-1",
        model="gemini-2.5-flash",
        provider="gemini",
        content=(
            Reasoning("thinking aloud", protocol="openai_chat"),
            gemini_thought,
            ToolCall("call_1", "f", {"x": 1}),
            RawPart("gemini", "groundingMetadata", {"webSearchQueries": []}),
            Refusal("I will not."),
        ),
        finish_reason="tool_calls",
        usage=Usage(100, 20, cached_input_tokens=30, cache_write_tokens=0, reasoning_tokens=5),
        native_finish_reason="STOP",
    )
    body = server.encode_response(response, model="gemini-2.5-flash")
    assert body["id"] == "msg_chatcmpl-1"
    assert body["stop_reason"] == "tool_use"
    assert body["usage"] == {
        "input_tokens": 70,
        "output_tokens": 20,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 30,
        "output_tokens_details": {"thinking_tokens": 5},
    }
    kinds = [block["type"] for block in body["content"]]
    assert kinds == ["thinking", "thinking", "tool_use", "text"]  # grounding has no block
    anthropic.types.Message.model_validate(body)
    # The caller sends the reply back as history: the Gemini signature comes back intact.
    history = {
        "model": "m",
        "messages": [{"role": "user", "content": "q"}, {"role": "assistant", **body}],
    }
    history["messages"][1] = {"role": "assistant", "content": body["content"]}
    assistant = server.decode_request(wire(history)).messages[1]
    assert assistant.content[1] == gemini_thought
    assert assistant.content[2] == ToolCall("call_1", "f", {"x": 1})


# --- streams ------------------------------------------------------------------------------


def encode_stream(response: Response, events: list[Any] | None = None) -> bytes:
    encoder = server.StreamEncoder(model=response.model)
    frames = [encoder.start()]
    frames += [encoder.encode(e) for e in events or upstream_events(response)]
    frames.append(encoder.finish(response))
    return b"".join(frames)


def whole(part: Part) -> bool:
    """Parts that arrive whole, never as deltas: the stream sends them as it closes."""
    if isinstance(part, Reasoning):
        return not part.text
    return isinstance(part, RawPart)


@settings(max_examples=100, deadline=None)
@given(responses(), st.lists(st.integers(0, 4000), max_size=6))
def test_streams_decode_to_the_same_events_and_response(
    response: Response, cuts: list[int]
) -> None:
    data = encode_stream(response)
    decoder = AnthropicStreamDecoder(ENDPOINT)
    events = feed_stream(data, decoder, cuts)
    assert decoder.finished
    assert joined(events) == joined(upstream_events(response))
    back = decoder.response()
    expected = streamed_content(response.content, whole, "anthropic")
    assert plain_calls(unsigned(back.content)) == plain_calls(unsigned(expected))
    assert back.usage == response.usage
    assert back.finish_reason == response.finish_reason


def test_tool_calls_that_arrive_whole_still_stream_their_arguments() -> None:
    call = ToolCall("toolu_9", "lookup", {"q": "x"})
    response = Response("r", "m", "p", (call,), "tool_calls", Usage(3, 4))
    data = encode_stream(response, [ToolCallEvent(call)])
    decoder = AnthropicStreamDecoder(ENDPOINT)
    events = feed_stream(data, decoder)
    assert [e for e in events if isinstance(e, ToolCallEvent)] == [
        ToolCallEvent(ToolCall("toolu_9", "lookup", {"q": "x"}, '{"q":"x"}'))
    ]


def test_an_error_after_the_stream_began_reaches_the_caller() -> None:
    encoder = server.StreamEncoder(model="m")
    data = encoder.start() + encoder.encode(callm.TextDelta("partial"))
    data += encoder.error(callm.OverloadedError("upstream overloaded", status_code=529))
    decoder = AnthropicStreamDecoder(ENDPOINT)
    with pytest.raises(callm.OverloadedError) as caught:  # typed as its HTTP twin
        feed_stream(data, decoder)
    assert "upstream overloaded" in str(caught.value)
    assert caught.value.code == "overloaded_error"
    assert caught.value.partial is not None
    assert caught.value.partial.text == "partial"


# --- the official SDK as the caller --------------------------------------------------------


def sdk(server_url: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server_url, api_key=FAKE_KEY, max_retries=0)


SDK_REPLY = Response(
    id="msg_sdk",
    model="claude-sonnet-4-5",
    provider="anthropic",
    content=(
        Reasoning("Let me think.", signature="sig-1", protocol="anthropic"),
        Text("Calling the tool."),
        ToolCall("toolu_1", "get_weather", {"city": "Paris", "days": [1, 2]}),
        ToolCall("toolu_2", "get_time", {"tz": "CET"}),
    ),
    finish_reason="tool_calls",
    usage=Usage(120, 40, cached_input_tokens=100, cache_write_tokens=10, reasoning_tokens=12),
    native_finish_reason="tool_use",
)


def test_the_sdk_reads_a_whole_reply() -> None:
    body = json.dumps(server.encode_response(SDK_REPLY, model="claude-sonnet-4-5")).encode()
    with RecordingServer([Recorded(200, JSON_HEADERS, body)]) as upstream, sdk(upstream.url) as c:
        message = c.messages.create(
            model="claude-sonnet-4-5", max_tokens=100, messages=[{"role": "user", "content": "?"}]
        )
    assert [b.type for b in message.content] == ["thinking", "text", "tool_use", "tool_use"]
    assert message.content[0].signature == "sig-1"  # type: ignore[union-attr]
    assert message.content[2].input == {"city": "Paris", "days": [1, 2]}  # type: ignore[union-attr]
    assert message.stop_reason == "tool_use"
    assert message.usage.input_tokens == 10
    assert message.usage.cache_read_input_tokens == 100
    assert message.usage.cache_creation_input_tokens == 10


def test_the_sdk_accumulates_a_streamed_reply() -> None:
    data = encode_stream(SDK_REPLY)
    question: Any = [{"role": "user", "content": "?"}]
    with (
        RecordingServer([Recorded(200, SSE_HEADERS, data)]) as upstream,
        sdk(upstream.url) as c,
        c.messages.stream(model="claude-sonnet-4-5", max_tokens=100, messages=question) as stream,
    ):
        text = "".join(stream.text_stream)
        message = stream.get_final_message()
    assert text == "Calling the tool."
    assert [b.type for b in message.content] == ["thinking", "text", "tool_use", "tool_use"]
    assert message.content[0].thinking == "Let me think."  # type: ignore[union-attr]
    assert message.content[2].input == {"city": "Paris", "days": [1, 2]}  # type: ignore[union-attr]
    assert message.content[3].input == {"tz": "CET"}  # type: ignore[union-attr]
    assert message.stop_reason == "tool_use"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (10, 40)
    assert message.usage.cache_read_input_tokens == 100


ERRORS = [
    (callm.InvalidRequestError("messages is required"), 400, anthropic.BadRequestError),
    (callm.AuthenticationError("bad key", status_code=401), 401, anthropic.AuthenticationError),
    (callm.PermissionDeniedError("no", status_code=403), 403, anthropic.PermissionDeniedError),
    (callm.NotFoundError("no model", status_code=404), 404, anthropic.NotFoundError),
    (callm.RateLimitError("slow down", status_code=429), 429, anthropic.RateLimitError),
    (callm.BudgetExceededError("budget spent"), 429, anthropic.RateLimitError),
    (callm.OverloadedError("busy", status_code=503), 529, anthropic.OverloadedError),
    (callm.InternalServerError("boom", status_code=500), 500, anthropic.InternalServerError),
    (callm.APITimeoutError("too slow"), 504, anthropic.InternalServerError),
    (callm.APIConnectionError("unreachable"), 502, anthropic.InternalServerError),
]


@pytest.mark.parametrize(("error", "status", "sdk_error"), ERRORS)
def test_errors_reach_the_sdk_as_its_own_exceptions(
    error: callm.CallmError, status: int, sdk_error: type[Exception]
) -> None:
    sent_status, body = server.encode_error(error)
    assert sent_status == status
    anthropic.types.ErrorResponse.model_validate(body)
    message = body["error"]["message"]
    assert message == (error.message if isinstance(error, callm.APIError) else str(error))
    recorded = Recorded(status, JSON_HEADERS, json.dumps(body).encode())
    with (
        RecordingServer([recorded]) as upstream,
        sdk(upstream.url) as c,
        pytest.raises(sdk_error) as caught,
    ):
        c.messages.create(model="m", max_tokens=1, messages=[{"role": "user", "content": "?"}])
    assert message in str(caught.value)
    # callm's own client reads it back as the same kind of error.
    again = client.decode_failure(ENDPOINT, HttpResponse(status, {}, json.dumps(body).encode()))
    assert again.status_code == status
    assert message in again.message


def test_a_budget_error_says_so_in_a_code() -> None:
    _, body = server.encode_error(callm.BudgetExceededError("the key's budget is spent"))
    assert body["error"] == {
        "type": "rate_limit_error",
        "message": "the key's budget is spent",
        "code": "budget_exceeded",
    }


def test_the_status_given_wins() -> None:
    status, body = server.encode_error(callm.AuthenticationError("upstream refused"), status=502)
    assert status == 502
    assert body["error"]["type"] == "api_error"


def test_count_tokens_answers_in_the_sdk_shape() -> None:
    body = server.encode_count_tokens(2095)
    assert anthropic.types.MessageTokensCount.model_validate(body).input_tokens == 2095
    request = replace(
        server.decode_request({"model": "m", "messages": [{"role": "user", "content": "hi"}]}),
    )
    assert request.max_tokens is None
