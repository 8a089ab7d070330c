"""The stream layer at its edges, as the official SDKs' own stream tests pin them, through
callm's public API over loopback: nothing is decoded after the end of a stream, a final
event without its blank line still counts, one huge event arrives whole, and a retry hint
that cannot be read is ignored rather than raised.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

import callm
from callm.testing import FakeOpenAIServer, Fault, Reply
from drive import MODES
from helpers import FAKE_KEY, fake_provider
from recording_server import Recorded, RecordingServer

SSE = (("content-type", "text/event-stream"),)


def sse_body(*events: tuple[str | None, Any], end: str = "\n\n") -> bytes:
    """SSE frames of ``(event name or None, data)``; ``end`` closes the last one."""
    frames = []
    for name, data in events:
        text = data if isinstance(data, str) else json.dumps(data)
        frames.append((f"event: {name}\n" if name else "") + f"data: {text}")
    return ("\n\n".join(frames) + end).encode()


async def stream_of(mode: str, url: str, protocol: str) -> callm.Response:
    """Stream one recorded-style body through the client; the accumulated Response."""
    providers = {"rec": {"base_url": url, "protocol": protocol, "api_key": FAKE_KEY}}
    model = "rec/model-x"
    if mode == "sync":
        with callm.Client(providers=providers, max_retries=0) as client:
            with client.stream(model, "hi") as s:
                events = list(s)
            assert events, "the stream produced events"
            return s.response
    async with callm.AsyncClient(providers=providers, max_retries=0) as ac:
        stream = await ac.stream(model, "hi")
        async with stream:
            return await stream.get_response()


def chat_chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    return {"id": "chatcmpl-1", "model": "m", "choices": [choice]}


def anthropic_events(text: str) -> list[tuple[str | None, Any]]:
    message = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "m",
        "content": [],
        "usage": {"input_tokens": 3, "output_tokens": 1},
    }
    return [
        ("message_start", {"type": "message_start", "message": message}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": text},
            },
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn"},
                "usage": {"output_tokens": 2},
            },
        ),
    ]


# --- nothing after the end --------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_chat_chunks_after_done_are_ignored(mode: str) -> None:
    text = chat_chunk({"content": "Hello"})
    body = sse_body(
        (None, chat_chunk({"role": "assistant", "content": ""})),
        (None, text),
        (None, chat_chunk({}, "stop")),
        (None, "[DONE]"),
        (None, text),  # a repeated chunk past the end
        (None, {"error": {"message": "late", "code": 500}}),
    )
    with RecordingServer([Recorded(200, SSE, body)]) as server:
        response = await stream_of(mode, server.url + "/v1", "openai_chat")
    assert response.text == "Hello"
    assert response.finish_reason == "stop"


@pytest.mark.parametrize("mode", MODES)
async def test_anthropic_events_after_message_stop_are_ignored(mode: str) -> None:
    body = sse_body(
        *anthropic_events("Hi there"),
        ("message_stop", {"type": "message_stop"}),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": "!"},
            },
        ),
        ("error", {"type": "error", "error": {"type": "overloaded_error", "message": "late"}}),
    )
    with RecordingServer([Recorded(200, SSE, body)]) as server:
        response = await stream_of(mode, server.url, "anthropic")
    assert response.text == "Hi there"


def responses_event(kind: str, **fields: Any) -> tuple[str, dict[str, Any]]:
    return kind, {"type": kind, **fields}


def responses_reply(status: str, text: str) -> dict[str, Any]:
    item = {
        "type": "message",
        "id": "msg_1",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }
    return {
        "id": "resp_1",
        "object": "response",
        "status": status,
        "model": "m",
        "output": [item] if text else [],
        "usage": {"input_tokens": 3, "output_tokens": 2, "total_tokens": 5},
    }


@pytest.mark.parametrize("mode", MODES)
async def test_responses_failure_after_completion_is_ignored(mode: str) -> None:
    failed = responses_reply("failed", "")
    failed["error"] = {"code": "server_error", "message": "too late to fail"}
    body = sse_body(
        responses_event("response.created", response=responses_reply("in_progress", "")),
        responses_event(
            "response.output_text.delta", output_index=0, content_index=0, delta="Done."
        ),
        responses_event("response.completed", response=responses_reply("completed", "Done.")),
        responses_event("response.failed", response=failed),
    )
    with RecordingServer([Recorded(200, SSE, body)]) as server:
        response = await stream_of(mode, server.url + "/v1", "openai_responses")
    assert response.text == "Done."
    assert response.finish_reason == "stop"


@pytest.mark.parametrize("mode", MODES)
async def test_gemini_chunks_after_the_finish_are_ignored(mode: str) -> None:
    last = {
        "candidates": [
            {
                "content": {"role": "model", "parts": [{"text": " world"}]},
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": {"promptTokenCount": 2, "candidatesTokenCount": 2},
    }
    body = sse_body(
        (
            None,
            {
                "candidates": [
                    {"content": {"role": "model", "parts": [{"text": "Hello"}]}, "index": 0}
                ]
            },
        ),
        (None, last),
        (None, last),  # repeated past the end
    )
    with RecordingServer([Recorded(200, SSE, body)]) as server:
        response = await stream_of(mode, server.url + "/v1beta", "gemini")
    assert response.text == "Hello world"


# --- a final event without its blank line ------------------------------------------------


@pytest.mark.parametrize("end", ["\n", ""], ids=["newline", "nothing"])
@pytest.mark.parametrize("mode", MODES)
async def test_anthropic_final_event_without_blank_line_completes(mode: str, end: str) -> None:
    body = sse_body(
        *anthropic_events("Complete"), ("message_stop", {"type": "message_stop"}), end=end
    )
    with RecordingServer([Recorded(200, SSE, body)]) as server:
        response = await stream_of(mode, server.url, "anthropic")
    assert response.text == "Complete"
    assert response.finish_reason == "stop"


@pytest.mark.parametrize("mode", MODES)
async def test_a_last_line_cut_off_is_an_interrupted_stream(mode: str) -> None:
    body = sse_body(*anthropic_events("Half"), end='\n\nevent: message_delta\ndata: {"type":')
    server = RecordingServer([Recorded(200, SSE, body)])
    with server, pytest.raises(callm.StreamInterruptedError) as info:
        await stream_of(mode, server.url, "anthropic")
    assert info.value.partial is not None and info.value.partial.text == "Half"


# --- one huge event ----------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_a_multi_megabyte_event_in_small_pieces_arrives_whole(mode: str) -> None:
    text = "0123456789abcdef" * (2 * 1024 * 1024 // 16)  # 2 MiB in one delta
    body = sse_body(
        (None, chat_chunk({"role": "assistant", "content": ""})),
        (None, chat_chunk({"content": text})),
        (None, chat_chunk({}, "stop")),
        (None, "[DONE]"),
    )
    with RecordingServer([Recorded(200, SSE, body)]) as server:  # written 64 bytes at a time
        response = await stream_of(mode, server.url + "/v1", "openai_chat")
    assert response.text == text


# --- retry hints that cannot be read ----------------------------------------------------

UNREADABLE_HINTS = ["Fri, 31 Dec 99999 23:59:59 GMT", "inf", "nan", "soon", "1e999"]


async def call(mode: str, url: str, streamed: bool, **params: Any) -> callm.Response:
    options: dict[str, Any] = {"providers": fake_provider(url)}
    if mode == "sync":
        with callm.Client(**options) as client:
            if not streamed:
                return client.complete("fake/m", "hi", **params)
            with client.stream("fake/m", "hi", **params) as s:
                return s.response
    async with callm.AsyncClient(**options) as ac:
        if not streamed:
            return await ac.complete("fake/m", "hi", **params)
        stream = await ac.stream("fake/m", "hi", **params)
        async with stream:
            return await stream.get_response()


@pytest.mark.parametrize("hint", UNREADABLE_HINTS)
@pytest.mark.parametrize("streamed", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("mode", MODES)
async def test_an_unreadable_retry_after_is_no_hint(
    fake_openai: FakeOpenAIServer, mode: str, streamed: bool, hint: str
) -> None:
    headers = {"retry-after": hint, "retry-after-ms": hint}
    fake_openai.queue(Fault.status(400, "Nope.", headers=headers))
    with pytest.raises(callm.BadRequestError):
        await call(mode, fake_openai.base_url, streamed)
    fake_openai.queue(Fault.rate_limit(headers=headers))
    with pytest.raises(callm.RateLimitError) as info:
        await call(mode, fake_openai.base_url, streamed, max_retries=0)
    assert info.value.retry_after is None


@pytest.mark.parametrize("hint", ["inf", "Fri, 31 Dec 99999 23:59:59 GMT"])
@pytest.mark.parametrize("streamed", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("mode", MODES)
async def test_a_429_with_an_unreadable_hint_is_retried_after_the_usual_backoff(
    fake_openai: FakeOpenAIServer, mode: str, streamed: bool, hint: str
) -> None:
    # An endless hint is not "wait forever, so give up now": the normal backoff applies.
    fake_openai.queue(Fault.rate_limit(headers={"retry-after": hint}), Reply("after the backoff"))
    response = await call(mode, fake_openai.base_url, streamed, max_retries=1)
    assert response.text == "after the backoff"
    assert len(fake_openai.requests) == 2


@pytest.mark.parametrize("mode", MODES)
async def test_a_stream_of_many_thousand_fragments_arrives_whole(
    mode: str, fake_openai: FakeOpenAIServer
) -> None:
    """The offline model streams a long reply frame by frame, written in pieces, and the
    client joins its fragments as it goes: the text is exactly what was sent, also mid-way."""
    words = [f"w{n}" for n in range(5000)]
    chunks = [words[0], *(" " + w for w in words[1:])]
    fake_openai.queue(Reply(chunks=chunks))
    providers = fake_provider(fake_openai.base_url)
    if mode == "sync":
        with callm.Client(providers=providers) as client, client.stream("fake/m", "hi") as s:
            seen = "".join(e.text for e in s if isinstance(e, callm.TextDelta))
            text = s.response.text
    else:
        async with (
            callm.AsyncClient(providers=providers) as client,
            await client.stream("fake/m", "hi") as s,
        ):
            seen = "".join([e.text async for e in s if isinstance(e, callm.TextDelta)])
            text = s.response.text
    assert text == seen == " ".join(words)
