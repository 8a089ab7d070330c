"""Profile callm alone against the fake server: where does a call spend its time?

``python bench/prof_callm.py sync|stream|async|anthropic-sync|anthropic-stream|policies
[--count N] [--top 30]`` prints cProfile's top functions by cumulative and by own time for a
loop of callm calls (after a warm-up). The ``anthropic-*`` modes drive callm's Anthropic
provider exactly as bench section 4 does. Every mode profiles the bare client (no call log,
no tracing, no rate limiter) except ``policies``: section 5's "on" client (call log, rate
limiter, default tracing), ending with a flush of the call log inside the profile. cProfile
sees only the calling thread; the ``policies`` mode also prints the CPU time the call log's
writer thread used during the profiled loop, and with ``--threads`` profiles that thread.
CALLM_HOME is a temporary folder, removed at exit.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import sys
import threading
import time

import _anthropic
import _guard
from _common import (
    BARE,
    CALLM_MODEL,
    CONCURRENCY,
    LONG_PROMPT,
    MAX_TOKENS,
    SHORT_PROMPT,
    STREAM_MAX_TOKENS,
    flush_call_logs,
    private_callm_home,
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


def _thread_cpu(thread: threading.Thread | None) -> float:
    """CPU seconds (user + system) a thread of this process has used so far (Linux)."""
    if thread is None or thread.native_id is None:
        return 0.0
    try:
        with open(f"/proc/self/task/{thread.native_id}/stat") as file:
            fields = file.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _policies(
    url: str, count: int, profiler: cProfile.Profile, writer_profiler: cProfile.Profile | None
) -> None:
    import callm
    from _policies import RPM, TPM

    if writer_profiler is not None:
        # The call log's writer thread, once started, gets writer_profiler (other threads,
        # e.g. callm's price-table warm-up, get nothing).
        def start(*_: object) -> None:
            sys.setprofile(None)
            if threading.current_thread().name == "callm-calllog":
                threading.setprofile(None)  # type: ignore[arg-type]
                writer_profiler.enable()

        threading.setprofile(start)  # type: ignore[arg-type]
    limits = {"*": callm.RateLimit(rpm=RPM, tpm=TPM)}
    with callm_client(url, log=True, tracing=True, rate_limits=limits) as client:
        for _ in range(50):
            client.complete(CALLM_MODEL, SHORT_PROMPT, max_tokens=MAX_TOKENS)
        flush_call_logs()
        writer = next((t for t in threading.enumerate() if t.name == "callm-calllog"), None)
        writer_before, main_before = _thread_cpu(writer), time.thread_time()
        wall = time.perf_counter()
        profiler.enable()
        for _ in range(count):
            client.complete(CALLM_MODEL, SHORT_PROMPT, max_tokens=MAX_TOKENS)
        flush_call_logs()
        profiler.disable()
        wall = time.perf_counter() - wall
        main_cpu, writer_cpu = time.thread_time() - main_before, _thread_cpu(writer) - writer_before
    print(
        f"== callm policies, {count} calls (under cProfile): "
        f"wall {wall / count * 1e6:.0f} µs/call, "
        f"calling thread CPU {main_cpu / count * 1e6:.0f} µs/call, "
        f"call-log writer thread CPU {writer_cpu / count * 1e6:.0f} µs/call =="
    )


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
    async with callm.AsyncClient(
        providers=providers, max_retries=0, env_file=None, **BARE
    ) as client:

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
        "mode",
        choices=("sync", "stream", "async", "anthropic-sync", "anthropic-stream", "policies"),
    )
    parser.add_argument("--count", type=int, default=None)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument(
        "--dump", default=None, help="also write the profile here (pstats), e.g. to compare trees"
    )
    parser.add_argument(
        "--threads",
        action="store_true",
        help="policies mode: also profile the call log's writer thread (from its start, "
        "so the warm-up's 50 records and opening the database are included)",
    )
    args = parser.parse_args()
    _guard.install()
    defaults = {
        "sync": 2000,
        "stream": 100,
        "async": 3000,
        "anthropic-sync": 2000,
        "anthropic-stream": 100,
        "policies": 2000,
    }
    count = args.count or defaults[args.mode]
    profiler = cProfile.Profile()
    writer_profiler = cProfile.Profile() if args.threads and args.mode == "policies" else None
    with private_callm_home(), FakeServer() as server:
        if args.mode == "sync":
            _sync(server.url, count, profiler)
        elif args.mode == "stream":
            _stream(server.url, count, profiler)
        elif args.mode == "anthropic-sync":
            _anthropic_sync(server.url, count, profiler)
        elif args.mode == "anthropic-stream":
            _anthropic_stream(server.url, count, profiler)
        elif args.mode == "policies":
            _policies(server.url, count, profiler, writer_profiler)
        else:
            asyncio.run(_async(server.url, count, profiler))
    if args.dump:
        profiler.dump_stats(args.dump)
    stats = pstats.Stats(profiler, stream=sys.stdout).strip_dirs()
    print(f"== callm {args.mode}: {count} calls, by cumulative time ==")
    stats.sort_stats("cumulative").print_stats(args.top)
    print(f"== callm {args.mode}: by own time ==")
    stats.sort_stats("tottime").print_stats(args.top)
    if writer_profiler is not None:
        writer_profiler.disable()
        writer_stats = pstats.Stats(writer_profiler, stream=sys.stdout).strip_dirs()
        print("== the call log's writer thread, by cumulative time (warm-up included) ==")
        writer_stats.sort_stats("cumulative").print_stats(args.top)
        print("== the call log's writer thread, by own time ==")
        writer_stats.sort_stats("tottime").print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
