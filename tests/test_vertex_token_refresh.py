"""The async client refreshes Vertex AI's access token off its event loop.

google-auth's refresh is a blocking HTTP call to the token endpoint; made inside a
coroutine it would stop every other task of the loop until the endpoint answered. The
fake's token endpoint is made slow here, and a ticking task shows the loop kept running
while a call, a stream and an embedding each waited for a new token (a new client's first
token goes the same way: a missing token is due).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

import callm
from callm.testing import FakeOpenAIServer
from helpers import vertex_env

GEMINI = "vertex/gemini-2.5-flash"
SLOW = 1.0  # seconds the token endpoint takes


@pytest.fixture
def server(
    fake_openai: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> FakeOpenAIServer:
    for name, value in vertex_env(fake_openai, tmp_path).items():
        monkeypatch.setenv(name, value)
    fake_openai.google_tokens(delay=SLOW)
    return fake_openai


async def longest_stall(work: asyncio.Future[object]) -> float:
    """The longest the event loop went without running a 10 ms ticker while ``work`` ran."""
    longest, last = 0.0, time.perf_counter()
    while not work.done():
        await asyncio.sleep(0.01)
        now = time.perf_counter()
        longest, last = max(longest, now - last), now
    await work
    return longest


async def test_a_due_refresh_leaves_the_event_loop_running(server: FakeOpenAIServer) -> None:
    # google-auth deems a token due 225 s before it expires: these are fresh for 1 s.
    server.google_tokens(lifetime=226)
    async with callm.AsyncClient(max_retries=0) as client:

        async def completed() -> object:
            return (await client.complete(GEMINI, "whole")).text

        async def streamed() -> object:
            stream = await client.stream(GEMINI, "streamed")
            async with stream:
                return (await stream.get_response()).text

        async def embedded() -> object:
            return len(await client.embed("vertex/text-embedding-005", ["a", "b"]))

        # What a client does once (imports, reading the key file) is not measured.
        await completed(), await embedded()
        for work in (completed, streamed, embedded):
            await asyncio.sleep(1.3)  # the token falls due
            tokens = server.google_tokens()
            started = time.perf_counter()
            running = asyncio.ensure_future(work())
            stall = await longest_stall(running)
            assert time.perf_counter() - started >= SLOW, work.__name__  # it waited for one
            assert stall < SLOW / 2, work.__name__
            assert running.result()
            assert server.google_tokens() == tokens + 1  # one refresh, not one more in encode
