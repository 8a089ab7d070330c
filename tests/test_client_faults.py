"""Errors, retries and timeouts: injected faults on real loopback HTTP."""

from __future__ import annotations

import socket
import time

import pytest

import callm
import drive
from callm.testing import FakeOpenAIServer, Fault, Reply

pytestmark = pytest.mark.parametrize("mode", drive.MODES)
STREAMED = pytest.mark.parametrize("streamed", [False, True], ids=["json", "sse"])


@STREAMED
async def test_429_with_retry_after_is_retried(
    mode: str, streamed: bool, fake_openai: FakeOpenAIServer
) -> None:
    fake_openai.queue(Fault.rate_limit(retry_after=0.05), Fault.server_error(502), Reply("ok"))
    started = time.monotonic()
    r = await drive.run(mode, streamed, fake_openai.base_url, "fake/m", "hi")
    assert r.text == "ok"
    assert len(fake_openai.requests) == 3
    assert time.monotonic() - started >= 0.05  # the hint was waited out
    retries = [req.headers.get("x-stainless-retry-count") for req in fake_openai.requests]
    assert retries == [None, None, None]  # callm sends no SDK-specific headers


@STREAMED
async def test_retry_after_ms_wins_over_retry_after(
    mode: str, streamed: bool, fake_openai: FakeOpenAIServer
) -> None:
    # retry-after alone (30 s) would make this test time out; retry-after-ms says 20 ms.
    fake_openai.queue(Fault.status(429, retry_after=30, retry_after_ms=20), Reply("ok"))
    started = time.monotonic()
    r = await drive.run(mode, streamed, fake_openai.base_url, "fake/m", "hi")
    assert r.text == "ok"
    assert time.monotonic() - started < 5


@STREAMED
async def test_retries_exhausted_raise_the_last_error(
    mode: str, streamed: bool, fake_openai: FakeOpenAIServer
) -> None:
    fake_openai.queue(*[Fault.rate_limit(retry_after=0.01)] * 3)
    with pytest.raises(callm.RateLimitError) as info:
        await drive.run(
            mode, streamed, fake_openai.base_url, "fake/m", "hi", client={"max_retries": 2}
        )
    assert len(fake_openai.requests) == 3
    err = info.value
    assert err.status_code == 429 and err.retry_after == pytest.approx(0.01)
    assert err.provider == "fake" and err.request_id
    assert "retry" in str(err)


async def test_long_retry_after_is_not_waited_out(mode: str, fake_openai: FakeOpenAIServer) -> None:
    fake_openai.queue(Fault.rate_limit(retry_after=3600), Reply("never"))
    with pytest.raises(callm.RateLimitError) as info:
        await drive.complete(mode, fake_openai.base_url, "fake/m", "hi")
    assert info.value.retry_after == 3600
    assert len(fake_openai.requests) == 1


async def test_x_should_retry_overrides_status(mode: str, fake_openai: FakeOpenAIServer) -> None:
    fake_openai.queue(Fault.status(500, should_retry=False), Reply("no"))
    with pytest.raises(callm.InternalServerError):
        await drive.complete(mode, fake_openai.base_url, "fake/m", "hi")
    assert len(fake_openai.requests) == 1
    fake_openai.clear()
    fake_openai.queue(Fault.status(400, should_retry=True), Reply("yes"))
    r = await drive.complete(mode, fake_openai.base_url, "fake/m", "hi")
    assert r.text == "yes" and len(fake_openai.requests) == 2


@pytest.mark.parametrize(
    ("fault", "error", "hint"),
    [
        (Fault.unauthorized(), callm.AuthenticationError, "callm keys set fake"),
        (Fault.not_found(), callm.NotFoundError, "callm models fake"),
        (Fault.context_length(), callm.ContextWindowExceededError, "shorten the conversation"),
        (Fault.status(403), callm.PermissionDeniedError, ""),
        (Fault.status(422), callm.BadRequestError, ""),
    ],
)
async def test_client_errors_are_typed_and_not_retried(
    mode: str, fake_openai: FakeOpenAIServer, fault: Fault, error: type[Exception], hint: str
) -> None:
    fake_openai.queue(fault, Reply("unreached"))
    with pytest.raises(error) as info:
        await drive.complete(mode, fake_openai.base_url, "fake/m", "hi")
    assert hint in str(info.value)
    assert len(fake_openai.requests) == 1


async def test_overloaded_is_retried_then_typed(mode: str, fake_openai: FakeOpenAIServer) -> None:
    fake_openai.queue(*[Fault.overloaded(retry_after=0.01)] * 2)
    with pytest.raises(callm.OverloadedError):
        await drive.complete(mode, fake_openai.base_url, "fake/m", "hi", client={"max_retries": 1})
    assert len(fake_openai.requests) == 2


async def test_drop_mid_stream_keeps_the_partial_and_is_not_retried(
    mode: str, fake_openai: FakeOpenAIServer
) -> None:
    fake_openai.queue(
        Fault.drop_mid_stream(after_chunks=3, reply=Reply(chunks=["a", "b", "c", "d", "e"])),
        Reply("unreached"),
    )
    received: list[str] = []
    with pytest.raises(callm.StreamInterruptedError) as info:
        if mode == "sync":
            with drive.sync_client(fake_openai.base_url) as c, c.stream("fake/m", "hi") as s:
                received.extend(ev.text for ev in s if ev.type == "text")
        else:
            async with drive.async_client(fake_openai.base_url) as ac:
                s2 = await ac.stream("fake/m", "hi")
                async with s2:
                    async for ev in s2:
                        if ev.type == "text":
                            received.append(ev.text)
    partial = info.value.partial
    assert partial is not None and partial.text == "".join(received)
    assert received and "e" not in received
    assert len(fake_openai.requests) == 1


async def test_error_inside_the_stream(mode: str, fake_openai: FakeOpenAIServer) -> None:
    # after_chunks counts SSE chunks: the role chunk, then "x" and "y".
    fake_openai.queue(
        Fault.stream_error(
            after_chunks=3, message="The server had an error", reply=Reply(chunks=["x", "y", "z"])
        )
    )
    with pytest.raises(callm.InternalServerError) as info:
        await drive.stream(mode, fake_openai.base_url, "fake/m", "hi")
    assert "The server had an error" in str(info.value)
    assert info.value.partial is not None
    assert info.value.partial.text == "xy"


@STREAMED
async def test_malformed_json_is_a_clear_error(
    mode: str, streamed: bool, fake_openai: FakeOpenAIServer
) -> None:
    fake_openai.queue(Fault.malformed_json())
    with pytest.raises(callm.APIResponseError, match="not"):
        await drive.run(mode, streamed, fake_openai.base_url, "fake/m", "hi")


@STREAMED
async def test_slow_first_byte_times_out(
    mode: str, streamed: bool, fake_openai: FakeOpenAIServer
) -> None:
    fake_openai.queue(Fault.slow_first_byte(1.5))
    timeout = callm.Timeout(connect=1, read=0.2)
    started = time.monotonic()
    with pytest.raises(callm.APITimeoutError):
        await drive.run(
            mode,
            streamed,
            fake_openai.base_url,
            "fake/m",
            "hi",
            client={"timeout": timeout, "max_retries": 0},
        )
    assert time.monotonic() - started < 1.4


async def test_slow_first_byte_within_timeout_succeeds(
    mode: str, fake_openai: FakeOpenAIServer
) -> None:
    fake_openai.queue(Fault.slow_first_byte(0.1, reply=Reply("late but fine")))
    r = await drive.complete(mode, fake_openai.base_url, "fake/m", "hi", timeout=5)
    assert r.text == "late but fine"


async def test_idle_timeout_between_stream_events(mode: str, fake_openai: FakeOpenAIServer) -> None:
    fake_openai.queue(Fault.stall(after_chunks=3, seconds=2, reply=Reply(chunks=["p", "q", "r"])))
    started = time.monotonic()
    with pytest.raises(callm.APITimeoutError) as info:
        await drive.stream(
            mode, fake_openai.base_url, "fake/m", "hi", timeout=callm.Timeout(read=30, idle=0.3)
        )
    assert time.monotonic() - started < 1.8
    assert info.value.partial is not None and info.value.partial.text == "pq"


async def test_connection_refused_is_a_connection_error(mode: str) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(callm.APIConnectionError) as info:
        await drive.complete(
            mode, f"http://127.0.0.1:{port}/v1", "fake/m", "hi", client={"max_retries": 1}
        )
    assert info.value.provider == "fake"
    assert "check the base URL" in str(info.value)


async def test_disconnect_before_reply_is_retried(mode: str, fake_openai: FakeOpenAIServer) -> None:
    fake_openai.queue(Fault.disconnect(), Reply("second time lucky"))
    r = await drive.complete(mode, fake_openai.base_url, "fake/m", "hi")
    assert r.text == "second time lucky"
    assert len(fake_openai.requests) == 2


async def test_total_timeout_stops_retrying(mode: str, fake_openai: FakeOpenAIServer) -> None:
    # Three retries 1 s apart would take 3 s; a total of 0.5 s surfaces the first error.
    fake_openai.queue(*[Fault.rate_limit(retry_after=1)] * 4)
    timeout = callm.Timeout(connect=1, read=5, total=0.5)
    started = time.monotonic()
    with pytest.raises(callm.RateLimitError):
        await drive.complete(
            mode,
            fake_openai.base_url,
            "fake/m",
            "hi",
            client={"max_retries": 3, "timeout": timeout},
        )
    assert time.monotonic() - started < 0.5
    assert len(fake_openai.requests) == 1
