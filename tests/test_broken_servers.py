"""Broken servers get clear errors: what came back is said, nothing empty passes for a reply,
and no body — an HTML page, a gzip bomb — can fill the memory or the message."""

from __future__ import annotations

import functools
import gzip
import json
import time
from collections.abc import Callable
from typing import Any

import pytest

import callm
import drive
from hostile import HostileServer, Received, Send, chat_json, chunk, head, sse

pytestmark = pytest.mark.parametrize("mode", drive.MODES)
STREAMED = pytest.mark.parametrize("streamed", [False, True], ids=["json", "sse"])
HTML = (
    b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body>"
    + (b"<p>nginx</p>" * 20)
    + b"</body></html>"
)


def answering(status: int, body: bytes, content_type: str) -> Callable[[Received, Send], None]:
    def answer(request: Received, send: Send) -> None:
        send(head(status, [("content-type", content_type)], length=len(body)) + body)

    return answer


@functools.cache
def gzip_bomb() -> bytes:
    """256 MiB of zeros in 256 KB."""
    return gzip.compress(b"0" * (256 << 20))


async def run(mode: str, streamed: bool, answer: Callable[[Received, Send], None]) -> Any:
    with HostileServer(answer) as server:
        return await drive.run(
            mode, streamed, server.base_url, "fake/m", "hi", client={"max_retries": 0}
        )


@pytest.mark.parametrize(
    ("body", "content_type", "said"),
    [
        (HTML, "text/html", "an HTML page ('502 Bad Gateway')"),
        (chat_json("a whole reply"), "application/json", "application/json"),
    ],
    ids=["html", "json"],
)
async def test_a_stream_answered_without_events_says_what_came_back(
    mode: str, body: bytes, content_type: str, said: str
) -> None:
    with pytest.raises(callm.APIResponseError) as info:
        await run(mode, True, answering(200, body, content_type))
    message = str(info.value)
    assert "the stream ended before" not in message
    assert said in message and "instead of an event stream" in message


@STREAMED
@pytest.mark.parametrize(
    "shape",
    [{"choices": None}, {"choices": []}, {"choices": [{"index": 0, "message": None}]}],
    ids=["null", "empty", "null-message"],
)
async def test_a_reply_without_choices_is_an_error_not_an_empty_answer(
    mode: str, streamed: bool, shape: dict[str, Any]
) -> None:
    def answer(request: Received, send: Send) -> None:
        if request.json.get("stream"):
            event = {**chunk({}), **shape}
            body = sse(event)
            send(head(200, [("content-type", "text/event-stream")]) + body)
        else:
            body = chat_json(**shape)
            send(head(200, [("content-type", "application/json")], length=len(body)) + body)

    with pytest.raises(callm.APIResponseError, match="choice"):
        await run(mode, streamed, answer)


@STREAMED
async def test_usage_numbers_sent_as_text_are_read(mode: str, streamed: bool) -> None:
    usage = {"prompt_tokens": "12", "completion_tokens": "7", "total_tokens": "19"}

    def answer(request: Received, send: Send) -> None:
        if request.json.get("stream"):
            events = [chunk({"role": "assistant", "content": "ok"}), chunk({}, "stop")]
            events.append({**chunk({}), "choices": [], "usage": usage})
            send(head(200, [("content-type", "text/event-stream")]) + sse(*events))
        else:
            body = chat_json("ok", usage=usage)
            send(head(200, [("content-type", "application/json")], length=len(body)) + body)

    response = await run(mode, streamed, answer)
    assert response.text == "ok"
    assert (response.usage.input_tokens, response.usage.output_tokens) == (12, 7)


async def test_usage_that_is_not_a_number_is_refused_cleanly(mode: str) -> None:
    usage = {"prompt_tokens": "many", "completion_tokens": [7]}
    body = chat_json("ok", usage=usage)
    with pytest.raises(callm.APIResponseError, match="prompt_tokens"):
        await run(mode, False, answering(200, body, "application/json"))


@STREAMED
async def test_a_huge_error_page_makes_a_short_message(mode: str, streamed: bool) -> None:
    page = HTML.replace(b"<p>nginx</p>", b"<p>" + b"x" * 1000 + b"</p>") * 250  # ~5 MB
    started = time.monotonic()
    with pytest.raises(callm.InternalServerError) as info:
        await run(mode, streamed, answering(500, page, "text/html"))
    assert len(str(info.value)) < 1000
    assert "502 Bad Gateway" in str(info.value)
    assert len(json.dumps(info.value.body)) < 2_000_000  # not the whole page kept either
    assert time.monotonic() - started < 10


@STREAMED
async def test_a_gzip_bomb_is_refused_before_it_fills_the_memory(mode: str, streamed: bool) -> None:
    bomb = gzip_bomb()

    def answer(request: Received, send: Send) -> None:
        kind = "text/event-stream" if request.json.get("stream") else "application/json"
        headers = [("content-type", kind), ("content-encoding", "gzip")]
        send(head(200, headers, length=len(bomb)) + bomb)

    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(callm.APIResponseError, match="compress"):
        await run(mode, streamed, answer)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 100
