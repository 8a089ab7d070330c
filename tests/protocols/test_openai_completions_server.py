"""The legacy Completions server codec: prompts in, ``text_completion`` objects and chunks
out, judged by the openai SDK's own ``Completion`` type."""

from __future__ import annotations

import json
from typing import Any

import pytest
from openai.types import Completion

from callm import InvalidRequestError, RateLimitError
from callm._core.types import (
    FinishEvent,
    Message,
    Response,
    Text,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from callm.protocols import server_codec_for
from callm.protocols._shared.sse import SSEDecoder
from callm.protocols.openai_chat import completions_server as server


def reply(text: str, finish: Any = "stop", **kw: Any) -> Response:
    return Response(
        id="x",
        model="m",
        provider="openai",
        content=(Text(text),),
        finish_reason=finish,
        usage=Usage(7, 5),
        **kw,
    )


def test_the_registry_gives_this_module() -> None:
    assert server_codec_for("openai_completions") is server


def test_a_prompt_is_one_user_message_with_the_legacy_defaults() -> None:
    request = server.decode_request({"model": "gpt-3.5-turbo-instruct", "prompt": "Say hi"})
    assert request.messages == (Message.user("Say hi"),)
    assert request.max_tokens == 16  # the legacy API's default
    assert not request.stream


def test_every_modelled_field_is_read() -> None:
    request = server.decode_request(
        {
            "model": "m",
            "prompt": ["Once upon a time"],
            "max_tokens": 40,
            "temperature": 0.2,
            "top_p": 0.5,
            "stop": ["\n"],
            "seed": 3,
            "n": 2,
            "user": "u",
            "stream": False,
            "echo": False,
            "best_of": 1,
            "presence_penalty": 0.5,
            "logit_bias": {"50256": -100},
        }
    )
    assert request.messages == (Message.user("Once upon a time"),)
    assert (request.max_tokens, request.temperature, request.top_p) == (40, 0.2, 0.5)
    assert (request.stop, request.seed, request.n, request.user) == (("\n",), 3, 2, "u")
    assert request.extra_body == {"presence_penalty": 0.5, "logit_bias": {"50256": -100}}


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"prompt": "x"}, "model"),
        ({"model": "m"}, "prompt is required"),
        ({"model": "m", "prompt": ["a", "b"]}, "one request per prompt"),
        ({"model": "m", "prompt": [1, 2, 3]}, "token arrays"),
        ({"model": "m", "prompt": "x", "suffix": "y"}, "suffix"),
        ({"model": "m", "prompt": "x", "echo": True}, "echo"),
        ({"model": "m", "prompt": "x", "logprobs": 2}, "logprobs"),
        ({"model": "m", "prompt": "x", "best_of": 3}, "best_of"),
        ({"model": "m", "prompt": "x", "max_tokens": 0}, "max_tokens"),
        ({"model": "m", "prompt": "x", "stream": "yes"}, "stream"),
    ],
)
def test_what_a_chat_cannot_do_is_refused_by_name(body: dict[str, Any], named: str) -> None:
    with pytest.raises(InvalidRequestError, match=named):
        server.decode_request(body)


@pytest.mark.parametrize(
    ("finish", "legacy"),
    [("stop", "stop"), ("length", "length"), ("content_filter", "content_filter")],
)
def test_a_reply_is_a_valid_completion(finish: Any, legacy: str) -> None:
    body = server.encode_response(reply("Hello.", finish), model="alias")
    completion = Completion.model_validate(body)
    assert completion.choices[0].text == "Hello."
    assert completion.choices[0].finish_reason == legacy
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (7, 5)
    assert completion.model == "alias"


def test_several_choices() -> None:
    response = reply("one", choices=(reply("two"),))
    completion = Completion.model_validate(server.encode_response(response, model="m"))
    assert [(c.index, c.text) for c in completion.choices] == [(0, "one"), (1, "two")]


def test_a_tool_call_reply_finishes_as_stop() -> None:
    response = reply("", "tool_calls")
    assert server.encode_response(response, model="m")["choices"][0]["finish_reason"] == "stop"  # type: ignore[index]


def chunks(data: bytes) -> list[Any]:
    sse = SSEDecoder()
    events = [e.data for e in sse.feed(data)]
    assert events[-1] == "[DONE]"
    return [json.loads(e) for e in events[:-1]]


def valid_chunk(chunk: dict[str, Any]) -> Completion:
    """A chunk as the SDK reads it: a Completion whose finish_reason is null until the end
    (the SDK's type says non-null; it builds stream chunks without validating that)."""
    shape = json.loads(json.dumps(chunk))
    for choice in shape["choices"]:
        choice["finish_reason"] = choice["finish_reason"] or "stop"
    Completion.model_validate(shape)
    return _built(chunk)


def _built(chunk: dict[str, Any]) -> Completion:
    from openai._models import construct_type

    return construct_type(type_=Completion, value=chunk)  # type: ignore[no-any-return]


@pytest.mark.parametrize("include_usage", [False, True])
def test_a_stream_is_completion_chunks_then_done(include_usage: bool) -> None:
    encoder = server.StreamEncoder(model="alias", include_usage=include_usage)
    sent = encoder.start()
    for event in (
        TextDelta("Hel"),
        TextDelta("lo."),
        ToolCallDelta(0, "c", "f", "{}"),  # no place for it in a text completion
        FinishEvent("length"),
    ):
        sent += encoder.encode(event)
    sent += encoder.finish(reply("Hello.", "length"))
    parsed = [valid_chunk(c) for c in chunks(sent)]
    texts = [c.choices[0].text for c in parsed if c.choices]
    assert "".join(texts) == "Hello."
    finishes = [c.choices[0].finish_reason for c in parsed if c.choices]
    assert finishes[-1] == "length"
    assert finishes.count("length") == 1
    assert (parsed[-1].usage is not None) is include_usage


def test_an_error_mid_stream_is_an_error_chunk() -> None:
    encoder = server.StreamEncoder(model="m")
    sent = encoder.encode(TextDelta("a")) + encoder.error(RateLimitError("slow"))
    last = chunks(sent + b"data: [DONE]\n\n")[-1]
    assert last["error"]["type"] == "rate_limit_error"
