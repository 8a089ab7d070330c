"""No hang: every phase of a call is bounded, in both clients, whatever the server does.

The servers here trickle bytes (each within the read timeout, so only a bound on the whole
call can stop them) or go silent after the first event.
"""

from __future__ import annotations

import math
import time

import pytest

import callm
import drive
from hostile import HostileServer, Received, Send, chunk, drip_forever, head, sse, trickle

pytestmark = pytest.mark.parametrize("mode", drive.MODES)
STREAMED = pytest.mark.parametrize("streamed", [False, True], ids=["json", "sse"])
TOTAL = 1.0
LATE = 2.5  # what "stopped at the total" allows on a loaded machine
EVENT_STREAM = [("content-type", "text/event-stream")]


def _long_stream() -> bytes:
    return sse(*[chunk({"content": f"word{i} "}) for i in range(200)])


def trickle_body(request: Received, send: Send) -> None:
    """Headers at once, then the body a byte every 20 ms: ~10 s for a short reply."""
    if request.json.get("stream"):
        body = _long_stream()
        send(head(200, EVENT_STREAM))
    else:
        body = b'{"id": "x", "choices": [], "padding": "' + b"." * 500 + b'"}'
        send(head(200, [("content-type", "application/json")], length=len(body)))
    trickle(send, body, 0.02)


def trickle_head(request: Received, send: Send) -> None:
    """The status line and headers themselves, a byte every 20 ms."""
    padding = [(f"x-padding-{i}", "." * 40) for i in range(10)]
    trickle(send, head(200, [("content-type", "application/json"), *padding]), 0.02)


def silent_after_first_event(request: Received, send: Send) -> None:
    """One event, then nothing for 10 s (within a 30 s read timeout)."""
    send(head(200, EVENT_STREAM) + b"data: " + _event() + b"\n\n")
    drip_forever(send, b"", 0.05, limit=10)


def _event() -> bytes:
    import json

    return json.dumps(chunk({"content": "first "})).encode()


async def _call(mode: str, streamed: bool, base_url: str, timeout: callm.Timeout) -> None:
    await drive.run(
        mode,
        streamed,
        base_url,
        "fake/m",
        "hi",
        client={"timeout": timeout, "max_retries": 0},
    )


@STREAMED
async def test_total_bounds_a_trickled_body(mode: str, streamed: bool) -> None:
    with HostileServer(trickle_body) as server:
        started = time.monotonic()
        with pytest.raises(callm.APITimeoutError):
            await _call(mode, streamed, server.base_url, callm.Timeout.of(TOTAL))
        assert time.monotonic() - started < LATE


@STREAMED
async def test_total_bounds_trickled_headers(mode: str, streamed: bool) -> None:
    with HostileServer(trickle_head) as server:
        started = time.monotonic()
        with pytest.raises(callm.APITimeoutError):
            await _call(mode, streamed, server.base_url, callm.Timeout.of(TOTAL))
        assert time.monotonic() - started < LATE


async def test_total_bounds_a_silent_stream(mode: str) -> None:
    timeout = callm.Timeout(connect=1, read=30, total=TOTAL)
    with HostileServer(silent_after_first_event) as server:
        started = time.monotonic()
        with pytest.raises(callm.APITimeoutError) as info:
            await _call(mode, True, server.base_url, timeout)
        assert time.monotonic() - started < LATE
    assert info.value.partial is not None and info.value.partial.text == "first "


async def test_total_counts_the_retries_attempts(mode: str) -> None:
    # Each attempt alone fits in the total; the second must get only what is left of it.
    def slow_503(request: Received, send: Send) -> None:
        time.sleep(0.7)
        body = b'{"error": {"message": "busy", "type": "server_error"}}'
        send(head(503, [("retry-after-ms", "1")], length=len(body)) + body)

    with HostileServer(slow_503) as server:
        started = time.monotonic()
        with pytest.raises(callm.APIError):
            await drive.complete(
                mode,
                server.base_url,
                "fake/m",
                "hi",
                client={"timeout": callm.Timeout(read=5, total=TOTAL), "max_retries": 10},
            )
        assert time.monotonic() - started < TOTAL + 0.3
        assert len(server.received) == 2


def test_default_timeout_bounds_every_phase(mode: str) -> None:
    default = (callm.Client() if mode == "sync" else callm.AsyncClient()).timeout
    for name in ("connect", "read", "total", "idle"):
        value = getattr(default, name)
        assert value is not None and math.isfinite(value) and value > 0, name
    assert default.idle <= default.read  # type: ignore[operator]


@STREAMED
async def test_total_bounds_a_trickled_body_through_a_users_httpx2_client(
    mode: str, streamed: bool
) -> None:
    import httpx2

    from helpers import fake_provider

    timeout = callm.Timeout.of(TOTAL)
    with HostileServer(trickle_body) as server:
        started = time.monotonic()
        providers = fake_provider(server.base_url)
        with pytest.raises(callm.APITimeoutError):
            if mode == "sync":
                with httpx2.Client() as http:
                    client = callm.Client(
                        providers=providers, http_client=http, timeout=timeout, max_retries=0
                    )
                    if streamed:
                        with client.stream("fake/m", "hi") as s:
                            list(s)
                    else:
                        client.complete("fake/m", "hi")
            else:
                async with httpx2.AsyncClient() as ahttp:
                    aclient = callm.AsyncClient(
                        providers=providers, http_client=ahttp, timeout=timeout, max_retries=0
                    )
                    if streamed:
                        async with aclient.stream("fake/m", "hi") as s2:
                            _ = [ev async for ev in s2]
                    else:
                        await aclient.complete("fake/m", "hi")
        assert time.monotonic() - started < LATE
