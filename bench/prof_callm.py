"""Profile callm alone against the fake server: where does a call spend its time?

``python bench/prof_callm.py sync|stream|async|anthropic-sync|anthropic-stream [--count N]
[--top 30]`` prints cProfile's top functions by cumulative and by own time for a loop of
callm calls (after a warm-up). The ``anthropic-*`` modes drive callm's Anthropic provider
exactly as bench section 4 does.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import sys

import _anthropic
import _guard
from _common import (
    CALLM_MODEL,
    CONCURRENCY,
    LONG_PROMPT,
    MAX_TOKENS,
    SHORT_PROMPT,
    STREAM_MAX_TOKENS,
)
from _server import FakeServer
from _sync import callm_client


def _sync(url: str, count: int, profiler: cProfile.Profile) -> None:
    with callm_client(url) as client:
        for _ in range(50):
            client.complete(CALLM_MODEL, SHORT_PROMPT, max_tokens=MAX_TOKENS)
        profiler.enable()
        for _ in range(count):
            client.complete(CALLM_MODEL, SHORT_PROMPT, max_tokens=MAX_TOKENS)
        profiler.disable()


def _stream(url: str, count: int, profiler: cProfile.Profile) -> None:
    def once(client: object) -> None:
        with client.stream(CALLM_MODEL, LONG_PROMPT, max_tokens=500) as stream:  # type: ignore[attr-defined]
            for _ in stream:
                pass

    with callm_client(url) as client:
        for _ in range(5):
            once(client)
        profiler.enable()
        for _ in range(count):
            once(client)
        profiler.disable()


def _anthropic_sync(url: str, count: int, profiler: cProfile.Profile) -> None:
    with _anthropic.callm_client(url) as client:
        for _ in range(50):
            client.complete(_anthropic.CALLM_MODEL, SHORT_PROMPT, max_tokens=MAX_TOKENS)
        profiler.enable()
        for _ in range(count):
            client.complete(_anthropic.CALLM_MODEL, SHORT_PROMPT, max_tokens=MAX_TOKENS)
        profiler.disable()


def _anthropic_stream(url: str, count: int, profiler: cProfile.Profile) -> None:
    def once(client: object) -> None:
        model = _anthropic.CALLM_MODEL
        with client.stream(model, LONG_PROMPT, max_tokens=STREAM_MAX_TOKENS) as stream:  # type: ignore[attr-defined]
            for _ in stream:
                pass

    with _anthropic.callm_client(url) as client:
        for _ in range(5):
            once(client)
        profiler.enable()
        for _ in range(count):
            once(client)
        profiler.disable()


async def _async(url: str, count: int, profiler: cProfile.Profile) -> None:
    import callm

    providers = {"fake": {"base_url": f"{url}/v1", "api_key": "sk-bench-fake"}}
    async with callm.AsyncClient(providers=providers, max_retries=0, env_file=None) as client:

        async def drive(total: int) -> None:
            remaining = total

            async def worker() -> None:
                nonlocal remaining
                while remaining > 0:
                    remaining -= 1
                    await client.complete(CALLM_MODEL, SHORT_PROMPT, max_tokens=MAX_TOKENS)

            await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))

        await drive(CONCURRENCY * 2)
        profiler.enable()
        await drive(count)
        profiler.disable()


def main() -> int:
    parser = argparse.ArgumentParser(prog="python bench/prof_callm.py", description=__doc__)
    parser.add_argument(
        "mode", choices=("sync", "stream", "async", "anthropic-sync", "anthropic-stream")
    )
    parser.add_argument("--count", type=int, default=None)
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    _guard.install()
    defaults = {
        "sync": 2000,
        "stream": 100,
        "async": 3000,
        "anthropic-sync": 2000,
        "anthropic-stream": 100,
    }
    count = args.count or defaults[args.mode]
    profiler = cProfile.Profile()
    with FakeServer() as server:
        if args.mode == "sync":
            _sync(server.url, count, profiler)
        elif args.mode == "stream":
            _stream(server.url, count, profiler)
        elif args.mode == "anthropic-sync":
            _anthropic_sync(server.url, count, profiler)
        elif args.mode == "anthropic-stream":
            _anthropic_stream(server.url, count, profiler)
        else:
            asyncio.run(_async(server.url, count, profiler))
    stats = pstats.Stats(profiler, stream=sys.stdout).strip_dirs()
    print(f"== callm {args.mode}: {count} calls, by cumulative time ==")
    stats.sort_stats("cumulative").print_stats(args.top)
    print(f"== callm {args.mode}: by own time ==")
    stats.sort_stats("tottime").print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
