"""Errors a provider reports inside a stream are typed like the same error answered with an
HTTP status, keep what arrived in ``.partial``, and — while no content has reached the
caller — are retried and fallen back from as that HTTP error would be.

Each protocol's fake sends the error the way its API does (an OpenAI ``{"error": …}`` chunk,
Anthropic's ``event: error``, Responses' ``response.failed``, Gemini's error object, framed
or as raw JSON lines).
"""

from __future__ import annotations

import pytest

import callm
from callm.testing import FakeOpenAIServer, Fault, Reply
from protocol_drive import MODELS, ask, point_builtins

MODES = ["sync", "async"]
PROTOCOLS = list(MODELS)
# How many events each fake sends before its first text (so an error after them comes
# before any content), and a count that takes in two fragments of text.
BEFORE_CONTENT = {"openai_chat": 1, "openai_responses": 4, "anthropic": 2, "gemini": 0}
AFTER_CONTENT = {"openai_chat": 3, "openai_responses": 6, "anthropic": 5, "gemini": 2}
TWINS: list[tuple[int, type[callm.APIError]]] = [
    (429, callm.RateLimitError),
    (500, callm.InternalServerError),
    (400, callm.BadRequestError),
]
# Responses has no code for an overloaded engine: its failures say server_error.
OVERLOADED = [p for p in PROTOCOLS if p != "openai_responses"]


@pytest.fixture
def server(fake_openai: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch) -> FakeOpenAIServer:
    return point_builtins(fake_openai, monkeypatch)


def _status_cases() -> list[tuple[str, int, type[callm.APIError]]]:
    cases = [(p, status, cls) for p in PROTOCOLS for status, cls in TWINS]
    overloaded = {"anthropic": 529, "openai_chat": 503, "gemini": 503}
    cases += [(p, overloaded[p], callm.OverloadedError) for p in OVERLOADED]
    return cases


STATUS_CASES = pytest.mark.parametrize(("protocol", "status", "cls"), _status_cases())


@STATUS_CASES
@pytest.mark.parametrize("mode", MODES)
async def test_an_error_after_content_is_typed_and_keeps_the_partial(
    server: FakeOpenAIServer, mode: str, protocol: str, status: int, cls: type[callm.APIError]
) -> None:
    reply = Reply("one two three four")
    server.queue(
        Fault.stream_error(AFTER_CONTENT[protocol], "Went wrong.", status=status, reply=reply)
    )
    with pytest.raises(callm.APIError) as info:
        await ask(mode, True, MODELS[protocol], "hi", max_retries=2)
    error = info.value
    assert type(error) is cls
    assert "Went wrong." in str(error)
    assert error.status_code is None  # the stream's own status was a 200
    assert error.partial is not None and error.partial.text == "one two"
    assert len(server.requests) == 1  # content reached the caller: never retried


@STATUS_CASES
@pytest.mark.parametrize("mode", MODES)
async def test_the_same_error_outside_a_stream_has_the_same_class(
    server: FakeOpenAIServer, mode: str, protocol: str, status: int, cls: type[callm.APIError]
) -> None:
    server.queue(Fault.stream_error(0, "Went wrong.", status=status))
    with pytest.raises(callm.APIError) as info:
        await ask(mode, False, MODELS[protocol], "hi", max_retries=0)
    assert type(info.value) is cls
    assert info.value.status_code == status


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("mode", MODES)
async def test_an_error_before_any_content_is_retried(
    server: FakeOpenAIServer, mode: str, protocol: str
) -> None:
    server.queue(
        Fault.stream_error(BEFORE_CONTENT[protocol], "Busy.", status=429),
        Reply("second time lucky"),
    )
    response = await ask(mode, True, MODELS[protocol], "hi", max_retries=1)
    assert response.text == "second time lucky"
    assert len(server.requests) == 2


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("mode", MODES)
async def test_a_non_retryable_error_before_content_surfaces_at_once(
    server: FakeOpenAIServer, mode: str, protocol: str
) -> None:
    server.queue(Fault.stream_error(BEFORE_CONTENT[protocol], "Bad input.", status=400))
    with pytest.raises(callm.BadRequestError) as info:
        await ask(mode, True, MODELS[protocol], "hi", max_retries=2)
    assert info.value.partial is not None and info.value.partial.text == ""
    assert len(server.requests) == 1


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("mode", MODES)
async def test_an_error_before_content_falls_back_to_the_next_model(
    server: FakeOpenAIServer, mode: str, protocol: str
) -> None:
    fallback = MODELS["openai_chat" if protocol != "openai_chat" else "anthropic"]
    server.queue(
        Fault.stream_error(BEFORE_CONTENT[protocol], "Overloaded.", status=429),
        Reply("from the fallback"),
    )
    client = {"fallbacks": {MODELS[protocol]: [fallback]}}
    response = await ask(mode, True, MODELS[protocol], "hi", client=client, max_retries=0)
    assert response.text == "from the fallback"
    assert response.tried == (MODELS[protocol], fallback)


@pytest.mark.parametrize("mode", MODES)
async def test_no_fallback_once_content_has_reached_the_caller(
    server: FakeOpenAIServer, mode: str
) -> None:
    reply = Reply("one two three")
    server.queue(Fault.stream_error(AFTER_CONTENT["anthropic"], "Busy.", status=529, reply=reply))
    client = {"fallbacks": {MODELS["anthropic"]: [MODELS["openai_chat"]]}}
    with pytest.raises(callm.OverloadedError) as info:
        await ask(mode, True, MODELS["anthropic"], "hi", client=client, max_retries=0)
    assert info.value.partial is not None and info.value.partial.text == "one two"
    assert len(server.requests) == 1


@pytest.mark.parametrize("after", [0, 2])
@pytest.mark.parametrize("mode", MODES)
async def test_gemini_raw_json_error_lines_are_that_error(
    server: FakeOpenAIServer, mode: str, after: int
) -> None:
    reply = Reply("one two three four")
    fault = Fault.stream_error(after, "Quota exceeded.", status=429, raw=True, reply=reply)
    server.queue(fault)
    with pytest.raises(callm.RateLimitError, match="Quota exceeded") as info:
        await ask(mode, True, MODELS["gemini"], "hi", max_retries=0)
    assert info.value.code == "RESOURCE_EXHAUSTED"
    assert info.value.partial is not None
    assert info.value.partial.text == ("one two" if after else "")
