"""A caller that goes away stops the upstream call; SIGTERM lets in-flight streams finish.

The upstream here notices its caller leaving: a small aiohttp server (on loopback, in a
thread of this process) that streams a Chat Completions reply one chunk every 50 ms, or
answers a whole reply after a long wait, and records whether each request was finished,
or cut off by the gateway's hanging up.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from gateway_process import GatewayProcess

from callm.testing import FakeOpenAIServer, Fault, Reply

CHUNKS = 200  # a stream of 200 chunks, 50 ms apart: 10 s when nobody hangs up
SLOW_WHOLE = 10.0  # seconds before a whole reply comes


class NoticingUpstream:
    """An OpenAI-compatible upstream that records how each request ended."""

    def __init__(self) -> None:
        self.events: list[str] = []  # "finished" or "cut off", per request
        self.loop = asyncio.new_event_loop()
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> NoticingUpstream:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        # handler_cancellation: a handler is cancelled when its caller hangs up.
        self._runner = web.AppRunner(app, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/v1"

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        try:
            if body.get("stream"):
                return await self._stream(request)
            await asyncio.sleep(SLOW_WHOLE)
            reply = web.json_response(_completion())
            self.events.append("finished")
            return reply
        except (asyncio.CancelledError, ConnectionResetError):
            self.events.append("cut off")
            raise

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        for i in range(CHUNKS):
            delta = {"choices": [{"index": 0, "delta": {"content": f"w{i} "}}]}
            await response.write(f"data: {json.dumps(_chunk(delta))}\n\n".encode())
            await asyncio.sleep(0.05)
        done = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        await response.write(f"data: {json.dumps(_chunk(done))}\n\ndata: [DONE]\n\n".encode())
        self.events.append("finished")
        return response

    def wait_for_event(self, timeout: float) -> list[str]:
        deadline = time.monotonic() + timeout
        while not self.events and time.monotonic() < deadline:
            time.sleep(0.05)
        return list(self.events)


def _chunk(fields: dict[str, object]) -> dict[str, object]:
    return {"id": "c1", "object": "chat.completion.chunk", "model": "slow-1", **fields}


def _completion() -> dict[str, object]:
    message = {"role": "assistant", "content": "late"}
    return {
        "id": "c1",
        "object": "chat.completion",
        "model": "slow-1",
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }


@pytest.fixture(scope="module")
def noticing() -> Iterator[NoticingUpstream]:
    with NoticingUpstream() as server:
        yield server


@pytest.fixture(scope="module")
def slow_gateway(
    upstream: FakeOpenAIServer, noticing: NoticingUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    config = (
        "[providers.slow]\n"
        'protocol = "openai_chat"\n'
        f'base_url = "{noticing.url}"\n'
        'api_key_env = "SLOW_API_KEY"\n'
    )
    home: Path = tmp_path_factory.mktemp("slow-gateway")
    env = {"SLOW_API_KEY": "sk-" + "s" * 24}
    with GatewayProcess(upstream, home, config=config, env=env) as process:
        yield process


async def _open(gateway: GatewayProcess, body: dict[str, object]) -> AsyncIterator[bytes]:
    """POST to the gateway on a connection of its own; yields the reply's chunks."""
    key = gateway.new_key()
    headers = {"authorization": f"Bearer {key}"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(gateway.url + "/v1/chat/completions", json=body, headers=headers) as r,
    ):
        assert r.status == 200
        async for chunk in r.content.iter_any():
            yield chunk


def test_a_caller_leaving_mid_stream_stops_the_upstream_stream(
    slow_gateway: GatewayProcess, noticing: NoticingUpstream
) -> None:
    noticing.events.clear()
    body = {"model": "slow/slow-1", "messages": [{"role": "user", "content": "go"}]}

    async def read_a_little() -> bytes:
        stream = _open(slow_gateway, {**body, "stream": True})
        first = b""
        while b"w0" not in first:
            first += await anext(stream)
        await stream.aclose()  # hang up after the first words
        return first

    first = asyncio.run(read_a_little())
    hung_up = time.monotonic()
    assert b"w0" in first
    # "cut off", not "finished": the upstream stream stopped long before its 10 s end.
    assert noticing.wait_for_event(timeout=CHUNKS * 0.05) == ["cut off"]
    assert time.monotonic() - hung_up < CHUNKS * 0.05 / 2


def test_a_caller_leaving_before_a_whole_reply_stops_the_upstream_call(
    slow_gateway: GatewayProcess, noticing: NoticingUpstream
) -> None:
    noticing.events.clear()
    body = {"model": "slow/slow-1", "messages": [{"role": "user", "content": "go"}]}

    async def give_up() -> None:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(anext(_open(slow_gateway, body)), timeout=0.5)

    asyncio.run(give_up())
    hung_up = time.monotonic()
    assert noticing.wait_for_event(timeout=SLOW_WHOLE) == ["cut off"]
    assert time.monotonic() - hung_up < SLOW_WHOLE / 2


def test_a_caller_gone_before_its_connection_is_watched_is_noticed(
    slow_gateway: GatewayProcess, noticing: NoticingUpstream
) -> None:
    """The gateway watches a connection from 50 ms into a request: a caller that sent its
    request and left sooner stops the upstream call all the same."""
    noticing.events.clear()
    key = slow_gateway.new_key()
    payload = json.dumps({"model": "slow/slow-1", "messages": [{"role": "user", "content": "go"}]})
    with socket.create_connection(("127.0.0.1", slow_gateway.port), timeout=10) as conn:
        conn.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: gateway\r\n"
            + f"authorization: Bearer {key}\r\ncontent-type: application/json\r\n".encode()
            + f"content-length: {len(payload)}\r\n\r\n{payload}".encode()
        )
        time.sleep(0.02)
    hung_up = time.monotonic()
    assert noticing.wait_for_event(timeout=SLOW_WHOLE) == ["cut off"]
    assert time.monotonic() - hung_up < SLOW_WHOLE / 2


def test_sigterm_lets_an_in_flight_stream_finish(
    upstream: FakeOpenAIServer, tmp_path: Path
) -> None:
    # The upstream stalls 1.5 s after the first chunks: SIGTERM arrives in the middle.
    upstream.queue(Fault.stall(after_chunks=2, seconds=1.5, reply=Reply("one two three four")))
    gateway = GatewayProcess(upstream, tmp_path / "home").start()
    try:
        key = gateway.new_key()
        body = {
            "model": "openai/gpt-4o-mini",
            "messages": [{"role": "user", "content": "go"}],
            "stream": True,
        }
        with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as conn:
            payload = json.dumps(body).encode()
            conn.sendall(
                b"POST /v1/chat/completions HTTP/1.1\r\nhost: gateway\r\n"
                + f"authorization: Bearer {key}\r\ncontent-type: application/json\r\n".encode()
                + f"content-length: {len(payload)}\r\n\r\n".encode()
                + payload
            )
            received = b""
            while b"one" not in received:  # the first words, before the stall
                received += conn.recv(65536)
            assert b"200 OK" in received and b"four" not in received
            assert gateway.proc is not None
            gateway.proc.send_signal(signal.SIGTERM)
            while b"[DONE]" not in received:
                more = conn.recv(65536)
                if not more:
                    break
                received += more
        text = received.decode(errors="replace")
        assert "[DONE]" in text
        assert "four" in text  # the words after the stall arrived too
        assert gateway.proc.wait(30) == 0
    finally:
        gateway.stop()
