"""Async habits users bring from httpx, aiohttp and the Anthropic SDK: ``async with
ac.stream(…)`` as well as ``await ac.stream(…)``, and an AsyncClient that is never closed
making no noise at exit and leaving no socket open."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import callm
from callm.testing import FakeOpenAIServer, Reply
from helpers import FAKE_KEY, async_client
from protocol_drive import MODELS, point_builtins


@pytest.mark.parametrize("protocol", list(MODELS))
async def test_async_with_stream_and_await_stream_agree(
    fake_openai: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch, protocol: str
) -> None:
    point_builtins(fake_openai, monkeypatch)
    fake_openai.queue(Reply("one two three"), Reply("one two three"))
    async with callm.AsyncClient() as ac:
        async with ac.stream(MODELS[protocol], "hi") as s:
            direct = [ev async for ev in s]
        assert s.response.text == "one two three"
        awaited = await ac.stream(MODELS[protocol], "hi")
        async with awaited:
            assert [ev async for ev in awaited] == direct
        assert awaited.response.text == s.response.text


async def test_leaving_the_block_early_closes_the_stream(fake_openai: FakeOpenAIServer) -> None:
    fake_openai.queue(Reply("a b c d e f"))
    async with async_client(fake_openai.base_url) as ac:
        async with ac.stream("fake/m", "hi") as s:
            first = await anext(aiter(s))
        assert first.type == "text"
        assert s.response.text.startswith("a")
        with pytest.raises(StopAsyncIteration):
            await anext(aiter(s))


async def test_an_error_opening_the_stream_leaves_the_block_unentered(
    fake_openai: FakeOpenAIServer,
) -> None:
    from callm.testing import Fault

    fake_openai.queue(Fault.not_found())
    entered = False
    async with async_client(fake_openai.base_url) as ac:
        with pytest.raises(callm.NotFoundError):
            async with ac.stream("fake/m", "hi"):
                entered = True
    assert not entered


async def test_conversation_and_text_completion_streams_take_async_with(
    fake_openai: FakeOpenAIServer,
) -> None:
    fake_openai.queue(Reply("hello there"), Reply("old style"))
    async with async_client(fake_openai.base_url) as ac:
        conv = ac.conversation("fake/m")
        async with conv.stream("hi") as s:
            text = "".join([t async for t in s.text_stream])
        assert text == "hello there"
        assert [m.role for m in conv.messages] == ["user", "assistant"]
        async with ac.stream_text_completion("fake/m", "once upon") as t:
            assert "".join([x async for x in t.text_stream]) == "old style"


UNCLOSED = textwrap.dedent(
    """
    import asyncio, os, sys
    import callm

    def sockets():
        count = 0
        for fd in os.listdir("/proc/self/fd"):
            try:
                count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
            except OSError:
                pass
        return count

    KEPT = []

    async def main(keep):
        providers = {"fake": {"base_url": os.environ["FAKE_URL"], "api_key": os.environ["KEY"]}}
        ac = callm.AsyncClient(providers=providers, log=False)
        if keep:
            KEPT.append(ac)  # alive until the interpreter exits
        await ac.complete("fake/m", "hi")
        async with ac.stream("fake/m", "hi") as s:
            async for _ in s:
                pass
        print("open while running:", sockets() > 0)

    before = sockets()
    asyncio.run(main(sys.argv[1] == "kept"))
    print("left open:", sockets() - before)
    """
)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts sockets in /proc")
@pytest.mark.parametrize("how", ["dropped", "kept"])
def test_an_unclosed_async_client_is_quiet_and_leaks_no_socket(
    fake_openai: FakeOpenAIServer, tmp_path: Path, how: str
) -> None:
    script = tmp_path / "unclosed.py"
    script.write_text(UNCLOSED)
    env = {**os.environ, "FAKE_URL": fake_openai.base_url, "KEY": FAKE_KEY}
    done = subprocess.run(
        [sys.executable, "-W", "always::ResourceWarning", str(script), how],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["open while running: True", "left open: 0"]
    assert done.stderr == ""  # no "Unclosed client session", no ResourceWarning
    assert len(fake_openai.requests) == 2
