"""The Gemini server codec, checked against the client codec and the google-genai SDK.

- Requests: any Request the client codec sends comes back the same from the server decoder.
- Replies and ``alt=sse`` streams: encoded by the server, read by the client codec, they
  give the same Response and events.
- google-genai validates and reads what the server codec writes, over loopback HTTP too,
  and raises its own errors with the right codes.
"""

from __future__ import annotations

import base64
import itertools
import json
from typing import Any

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
    wire,
)
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types
from hypothesis import given, settings
from hypothesis import strategies as st

import callm
from callm._core.http import HttpResponse
from callm._core.options import ToolChoice
from callm._core.types import (
    Document,
    Image,
    Message,
    Part,
    RawPart,
    Reasoning,
    Request,
    Response,
    Text,
    Tool,
    ToolCall,
    ToolResult,
    Usage,
)
from callm.protocols.gemini import client, server
from callm.protocols.gemini.stream import FINISH_REASONS, GeminiStreamDecoder, normalise_finish
from recording_server import Recorded, RecordingServer

ENDPOINT = endpoint("gemini")
FAKE_KEY = "AIza" + "x" * 35
JSON_HEADERS = (("content-type", "application/json"),)
SSE_HEADERS = (("content-type", "text/event-stream"),)
PNG = "data:image/png;base64,iVBORw0KGgo="
PDF = "data:application/pdf;base64,JVBERi0xLjQK"

# --- strategies -------------------------------------------------------------------------

user_parts = st.one_of(
    st.builds(Text, texts),
    st.just(Image(PNG)),
    st.just(Document(PDF, "application/pdf")),
    st.builds(Image, st.from_regex(r"https://img\.test/[a-z]{1,8}\.png", fullmatch=True)),
    st.builds(
        lambda u: Document(u, "application/pdf"),
        st.from_regex(r"https://doc\.test/[a-z]{1,8}\.pdf", fullmatch=True),
    ),
)
model_parts = st.one_of(
    st.builds(Text, texts),
    st.builds(ToolCall, ids, names, arguments),
    st.builds(lambda t, s: Reasoning(t, signature=s, protocol="gemini"), texts, st.none() | ids),
    st.builds(lambda s: Reasoning("", signature=s, protocol="gemini"), ids),
)


def signatures_apart(parts: list[Part]) -> bool:
    """A lone signature goes onto the next part: followed by an unsigned thought, it makes
    that thought's own signature (the same wire), so keep the two apart."""
    return not any(
        isinstance(a, Reasoning) and not a.text and isinstance(b, Reasoning) and not b.signature
        for a, b in itertools.pairwise(parts)
    )


@st.composite
def messages(draw: st.DrawFn) -> tuple[Message, ...]:
    out = [Message.system(draw(texts)) for _ in range(draw(st.integers(0, 2)))]
    for turn in range(draw(st.integers(1, 5))):
        if turn % 2:
            parts = draw(st.lists(model_parts, min_size=1, max_size=4).filter(signatures_apart))
            out.append(Message("assistant", tuple(parts)))
            continue
        for _ in range(draw(st.integers(0, 2))):
            result = ToolResult(draw(ids), draw(texts), draw(names), is_error=draw(st.booleans()))
            out.append(Message("tool", (result,)))
        if draw(st.booleans()) or not out or out[-1].role != "tool":
            out.append(Message.user(*draw(st.lists(user_parts, min_size=1, max_size=3))))
    return tuple(out)


@st.composite
def requests(draw: st.DrawFn) -> Request:
    tools = draw(
        st.lists(st.builds(Tool, names, st.just("") | texts, schemas), max_size=3, unique_by=str)
    )
    tools = list({t.name: t for t in tools}.values())
    choices = ["auto", "none", "required"] + [
        t.name for t in tools if t.name not in ("auto", "none", "required")
    ]
    formats = st.sampled_from([{"type": "json_object"}]) | st.builds(
        lambda s: {"type": "json_schema", "schema": s}, schemas
    )
    extras = st.sampled_from(
        [
            {},
            {"generationConfig": {"thinkingConfig": {"thinkingBudget": 1024}}},
            {"safetySettings": [{"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "OFF"}]},
        ]
    )
    return Request(
        model="gemini-2.5-flash",
        messages=draw(messages()),
        max_tokens=draw(st.none() | st.integers(1, 65000)),
        temperature=draw(st.none() | st.floats(0, 2)),
        top_p=draw(st.none() | st.floats(0, 1)),
        top_k=draw(st.none() | st.integers(1, 100)),
        stop=draw(st.none() | st.lists(texts, min_size=1, max_size=3).map(tuple)),
        seed=draw(st.none() | st.integers(0, 2**31)),
        n=draw(st.none() | st.integers(1, 4)),
        tools=tuple(tools),
        tool_choice=draw(st.none() | st.sampled_from(choices)),
        response_format=draw(st.none() | formats),
        extra_body=draw(extras),
    )


def no_neighbours_alike(parts: list[Part]) -> bool:
    """Gemini's reader joins neighbouring text parts (and thoughts): keep kinds apart."""
    return all(type(a) is not type(b) for a, b in itertools.pairwise(parts))


reply_parts = st.one_of(
    st.builds(Text, texts),
    st.builds(ToolCall, ids, names, arguments),
    st.builds(lambda t: Reasoning(t, protocol="gemini"), texts),
    st.builds(
        lambda code: RawPart(
            "gemini", "executableCode", {"executableCode": {"language": "PYTHON", "code": code}}
        ),
        texts,
    ),
)
usages = st.builds(
    lambda prompt, out, cached, thoughts: Usage(
        prompt + cached, out + thoughts, cached, 0, thoughts
    ),
    st.integers(0, 5000),
    st.integers(0, 5000),
    st.integers(0, 3000),
    st.integers(0, 2000),
)


@st.composite
def responses(draw: st.DrawFn) -> Response:
    parts = draw(st.lists(reply_parts, max_size=5).filter(no_neighbours_alike))
    calls = any(isinstance(p, ToolCall) for p in parts)
    native = draw(st.sampled_from(sorted(k for k in FINISH_REASONS if FINISH_REASONS[k])))
    return Response(
        id=draw(ids),
        model="gemini-2.5-flash",
        provider="gemini",
        content=tuple(parts),
        finish_reason=normalise_finish(native, calls),
        usage=draw(usages),
        native_finish_reason=native,
    )


# --- requests -----------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(requests())
def test_client_encoded_requests_decode_to_the_same_request(request: Request) -> None:
    body = wire(client.encode_body(ENDPOINT, request))
    assert server.decode_request(body, model=request.model) == request


def test_an_sdk_body_in_snake_case_decodes_and_pairs_calls_without_ids() -> None:
    body = {
        "system_instruction": {"parts": [{"text": "Be brief."}]},
        "contents": [
            {"role": "user", "parts": [{"text": "Weather in Paris and Rome?"}]},
            {
                "role": "model",
                "parts": [
                    {"function_call": {"name": "weather", "args": {"city": "Paris"}}},
                    {"function_call": {"name": "weather", "args": {"city": "Rome"}}},
                    {"text": "", "thought_signature": "sig"},
                ],
            },
            {
                "role": "user",
                "parts": [
                    {"function_response": {"name": "weather", "response": {"output": "sunny"}}},
                    {"function_response": {"name": "weather", "response": {"temp": 20}}},
                ],
            },
        ],
        "generation_config": {"max_output_tokens": 50, "thinking_config": {"include_thoughts": 1}},
        "tools": [{"function_declarations": [{"name": "weather", "parameters": _OPENAPI}]}],
        "tool_config": {"function_calling_config": {"mode": "ANY"}},
    }
    request = server.decode_request(body, model="models/gemini-2.5-flash")
    assert request.model == "gemini-2.5-flash"
    system, user, model, first, second = request.messages
    assert system == Message.system("Be brief.")
    assert user == Message.user("Weather in Paris and Rome?")
    paris, rome, signature = model.content
    assert isinstance(paris, ToolCall)
    assert isinstance(rome, ToolCall)
    assert paris.id != rome.id
    assert signature == Reasoning("", signature="sig", protocol="gemini")
    assert first.content == (ToolResult(paris.id, "sunny", "weather"),)
    assert second.content == (ToolResult(rome.id, '{"temp":20}', "weather"),)
    assert request.max_tokens == 50
    assert request.tool_choice == ToolChoice("required")
    assert request.tools == (Tool("weather", parameters=_JSON_SCHEMA),)
    assert request.extra_body == {
        "generationConfig": {"thinkingConfig": {"include_thoughts": 1}},
        # Spelt otherwise than callm would write them: kept as sent, for a Gemini upstream.
        "tools": body["tools"],
        "toolConfig": body["tool_config"],
    }


_OPENAPI = {
    "type": "OBJECT",
    "properties": {"city": {"type": "STRING", "nullable": True}},
    "required": ["city"],
    "propertyOrdering": ["city"],
}
_JSON_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": ["string", "null"]}},
    "required": ["city"],
}


def test_what_callm_reads_only_in_part_is_also_kept_whole_for_gemini() -> None:
    body = {
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
        "tools": [
            {"functionDeclarations": [{"name": "f", "parametersJsonSchema": {"type": "object"}}]},
            {"googleSearch": {}},
        ],
        "toolConfig": {
            "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["f", "g"]}
        },
        "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "OFF"}],
        "generationConfig": {"temperature": 0.5, "responseModalities": ["TEXT"]},
        "cachedContent": "cachedContents/abc",
    }
    request = server.decode_request(body, model="gemini-2.5-flash")
    assert request.tools == (Tool("f", parameters={"type": "object"}),)
    assert request.tool_choice == ToolChoice("required")
    assert request.temperature == 0.5
    assert client.encode_body(ENDPOINT, request) == body


def test_the_sealed_reasoning_of_another_protocol_comes_back() -> None:
    anthropic_thinking = Reasoning("hmm", signature="ant-sig", protocol="anthropic")
    reply = Response(
        "r",
        "m",
        "anthropic",
        (anthropic_thinking, ToolCall("toolu_1", "f", {})),
        "tool_calls",
        Usage(),
    )
    body = server.encode_response(reply, model="m")
    parts = body["candidates"][0]["content"]["parts"]
    assert parts[0]["thought"] is True
    assert parts[0]["thoughtSignature"] != "ant-sig"  # sealed, not Anthropic's raw signature
    history = {
        "contents": [{"role": "user", "parts": [{"text": "q"}]}, {"role": "model", "parts": parts}]
    }
    model_turn = server.decode_request(wire(history), model="m").messages[1]
    assert model_turn.content == (anthropic_thinking, ToolCall("toolu_1", "f", {}))


def test_openrouter_reasoning_details_survive_a_caller_of_another_protocol() -> None:
    # A gateway caller speaking Gemini to an OpenRouter model: the reasoning_details entry
    # travels sealed in its thoughtSignature and comes back whole for OpenRouter.
    detail = {
        "type": "reasoning.text",
        "text": "hmm",
        "signature": "sig-9",
        "format": "anthropic-claude-v1",
        "index": 0,
    }
    thinking = Reasoning("hmm", signature="sig-9", protocol="openai_chat", detail=detail)
    reply = Response(
        "r", "m", "openrouter", (thinking, ToolCall("call_1", "f", {})), "tool_calls", Usage()
    )
    parts = server.encode_response(reply, model="m")["candidates"][0]["content"]["parts"]
    history = {
        "contents": [{"role": "user", "parts": [{"text": "q"}]}, {"role": "model", "parts": parts}]
    }
    model_turn = server.decode_request(wire(history), model="m").messages[1]
    assert model_turn.content[0] == thinking
    assert model_turn.content[0].detail == detail


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "contents is required"),
        ({"contents": {}}, "contents must be an array, not an object"),
        ({"contents": [{"role": "bot", "parts": []}]}, "contents[0].role must be"),
        (
            {"contents": [{"role": "user", "parts": [{"functionCall": {"name": "f"}}]}]},
            "contents[0].parts[0] is a functionCall in a user turn",
        ),
        (
            {"contents": [], "generationConfig": {"maxOutputTokens": "x"}},
            "generationConfig.maxOutputTokens must be an integer",
        ),
        (
            {"contents": [], "systemInstruction": {"parts": [{"inlineData": {}}]}},
            "systemInstruction.parts[0] must be a text part",
        ),
    ],
)
def test_bad_bodies_raise_errors_that_name_the_field(body: Any, message: str) -> None:
    with pytest.raises(callm.InvalidRequestError) as caught:
        server.decode_request(body, model="m")
    assert message in str(caught.value)


def test_count_tokens_bodies_decode_and_answer_in_the_sdk_shape() -> None:
    inner = {"model": "models/gemini-2.5-flash", "contents": [{"parts": [{"text": "hi"}]}]}
    request = server.decode_request({"generateContentRequest": inner})
    assert (request.model, request.messages) == ("gemini-2.5-flash", (Message.user("hi"),))
    body = server.encode_count_tokens(5)
    assert genai_types.CountTokensResponse.model_validate(body).total_tokens == 5


# --- replies ------------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(responses())
def test_encoded_replies_decode_to_the_same_response(response: Response) -> None:
    body = wire(server.encode_response(response, model=response.model))
    back = client.decode(ENDPOINT, http_json(body))
    assert plain_calls(back.content) == plain_calls(response.content)
    assert (back.id, back.model, back.usage) == (response.id, response.model, response.usage)
    assert (back.finish_reason, back.native_finish_reason) == (
        response.finish_reason,
        response.native_finish_reason,
    )
    genai_types.GenerateContentResponse.model_validate(body)


def test_a_reply_from_another_protocol_fits_gemini_shapes() -> None:
    response = Response(
        id="chatcmpl-1",
        model="gpt-4o",
        provider="openai",
        content=(
            Reasoning("a thought", protocol="openai_chat"),
            Text("Calling."),
            ToolCall("call_1", "f", {}, '{"x":', invalid_arguments=True),
            RawPart("anthropic", "server_tool_use", {"id": "s"}),
        ),
        finish_reason="tool_calls",
        usage=Usage(100, 30, cached_input_tokens=40, reasoning_tokens=10),
        native_finish_reason="tool_calls",
    )
    body = server.encode_response(response, model="gpt-4o")
    candidate = body["candidates"][0]
    assert candidate["finishReason"] == "STOP"
    assert candidate["content"]["parts"] == [
        {"text": "a thought", "thought": True},
        {"text": "Calling."},
        {"functionCall": {"id": "call_1", "name": "f", "args": {}}},
    ]
    assert body["usageMetadata"] == {
        "promptTokenCount": 100,
        "candidatesTokenCount": 20,
        "thoughtsTokenCount": 10,
        "cachedContentTokenCount": 40,
        "totalTokenCount": 130,
    }
    genai_types.GenerateContentResponse.model_validate(body)


# --- streams ------------------------------------------------------------------------------


def encode_stream(response: Response) -> bytes:
    encoder = server.StreamEncoder(model=response.model)
    frames = [encoder.start(), *(encoder.encode(e) for e in upstream_events(response))]
    return b"".join([*frames, encoder.finish(response)])


def parsed_arguments(events: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    return [(k, (v[0], json.loads(v[1])) if k == "arguments" else v) for k, v in events]


@settings(max_examples=100, deadline=None)
@given(responses(), st.lists(st.integers(0, 3000), max_size=6))
def test_streams_decode_to_the_same_events_and_response(
    response: Response, cuts: list[int]
) -> None:
    data = encode_stream(response)
    decoder = GeminiStreamDecoder(ENDPOINT)
    events = feed_stream(data, decoder, cuts)
    assert decoder.finished
    assert parsed_arguments(joined(events)) == parsed_arguments(joined(upstream_events(response)))
    back = decoder.response()
    expected = streamed_content(response.content, lambda p: isinstance(p, RawPart), "gemini")
    assert plain_calls(unsigned(back.content)) == plain_calls(unsigned(expected))
    assert (back.usage, back.finish_reason) == (response.usage, response.finish_reason)


def test_an_error_after_the_stream_began_reaches_the_caller() -> None:
    encoder = server.StreamEncoder(model="m")
    data = encoder.encode(callm.TextDelta("partial"))
    data += encoder.error(callm.RateLimitError("quota", status_code=429))
    with pytest.raises(callm.RateLimitError) as caught:  # typed as its HTTP twin
        feed_stream(data, GeminiStreamDecoder(ENDPOINT))
    assert "quota" in str(caught.value)
    assert caught.value.code == "RESOURCE_EXHAUSTED"
    assert caught.value.partial is not None
    assert caught.value.partial.text == "partial"


# --- the google-genai SDK as the caller ---------------------------------------------------

SDK_REPLY = Response(
    id="resp-1",
    model="gemini-2.5-flash",
    provider="gemini",
    content=(
        Reasoning("Thinking it over.", protocol="gemini"),
        Text("Here you are."),
        Reasoning("", signature="c2ln", protocol="gemini"),
        ToolCall("call_a", "lookup", {"q": "x", "n": [1, 2]}),
    ),
    finish_reason="tool_calls",
    usage=Usage(50, 30, cached_input_tokens=20, reasoning_tokens=12),
    native_finish_reason="STOP",
)


def sdk(url: str) -> genai.Client:
    options = genai_types.HttpOptions(base_url=url, retry_options=None)
    return genai.Client(api_key=FAKE_KEY, http_options=options)


def test_the_sdk_reads_a_whole_reply() -> None:
    body = json.dumps(server.encode_response(SDK_REPLY, model="gemini-2.5-flash")).encode()
    with RecordingServer([Recorded(200, JSON_HEADERS, body)]) as upstream, sdk(upstream.url) as c:
        reply = c.models.generate_content(model="gemini-2.5-flash", contents="?")
    assert reply.text == "Here you are."
    calls = reply.function_calls or []
    assert [(c.id, c.name, c.args) for c in calls] == [
        ("call_a", "lookup", {"q": "x", "n": [1, 2]})
    ]
    parts = reply.candidates[0].content.parts  # type: ignore[index, union-attr]
    assert parts[2].thought_signature == base64.b64decode("c2ln")  # type: ignore[index]
    usage = reply.usage_metadata
    assert usage is not None
    assert (usage.prompt_token_count, usage.candidates_token_count) == (50, 18)
    assert (usage.thoughts_token_count, usage.cached_content_token_count) == (12, 20)


def test_the_sdk_reads_a_streamed_reply() -> None:
    data = encode_stream(SDK_REPLY)
    with RecordingServer([Recorded(200, SSE_HEADERS, data)]) as upstream, sdk(upstream.url) as c:
        chunks = list(c.models.generate_content_stream(model="gemini-2.5-flash", contents="?"))
    text = "".join(c.text or "" for c in chunks)
    assert text == "Here you are."
    calls = [c for chunk in chunks for c in chunk.function_calls or []]
    assert [(c.name, c.args) for c in calls] == [("lookup", {"q": "x", "n": [1, 2]})]
    last = chunks[-1]
    assert last.candidates[0].finish_reason == genai_types.FinishReason.STOP  # type: ignore[index]
    assert last.usage_metadata is not None
    assert last.usage_metadata.total_token_count == 80


CLIENT, SERVER = genai_errors.ClientError, genai_errors.ServerError
RATE_LIMITED = callm.RateLimitError
ERRORS = [
    (callm.InvalidRequestError("no contents"), 400, CLIENT, callm.BadRequestError),
    (callm.AuthenticationError("bad key", status_code=401), 401, CLIENT, callm.AuthenticationError),
    (callm.NotFoundError("no such model", status_code=404), 404, CLIENT, callm.NotFoundError),
    (
        callm.RateLimitError("slow", status_code=429, retry_after=7),
        429,
        CLIENT,
        callm.RateLimitError,
    ),
    (callm.BudgetExceededError("budget spent"), 429, CLIENT, callm.RateLimitError),
    (callm.OverloadedError("busy", status_code=529), 503, SERVER, callm.OverloadedError),
    (callm.APITimeoutError("too slow"), 504, SERVER, callm.InternalServerError),
]


@pytest.mark.parametrize(("error", "status", "sdk_error", "callm_error"), ERRORS)
def test_errors_reach_the_sdk_as_its_own_exceptions(
    error: callm.CallmError, status: int, sdk_error: type[Exception], callm_error: type[Exception]
) -> None:
    sent_status, body = server.encode_error(error)
    assert sent_status == status
    message = body["error"]["message"]
    recorded = Recorded(status, JSON_HEADERS, json.dumps(body).encode())
    with (
        RecordingServer([recorded]) as upstream,
        sdk(upstream.url) as c,
        pytest.raises(sdk_error) as caught,
    ):
        c.models.generate_content(model="gemini-2.5-flash", contents="?")
    assert caught.value.code == status  # type: ignore[attr-defined]
    assert caught.value.message == message  # type: ignore[attr-defined]
    again = client.decode_failure(ENDPOINT, HttpResponse(status, {}, json.dumps(body).encode()))
    assert type(again) is callm_error
    if isinstance(error, callm.RateLimitError):
        assert isinstance(again, callm.RateLimitError)
        assert again.retry_after == 7
    if isinstance(error, callm.BudgetExceededError):
        assert again.code == "BUDGET_EXCEEDED"
