"""Section 3: async requests per second with 64 calls in flight.

Every round of every client runs in a fresh event loop (``asyncio.run``): the client is
built inside it, warmed up (so all 64 connections are open), timed, and closed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from _common import (
    API_KEY,
    BARE,
    CALLM_MODEL,
    CONCURRENCY,
    LITELLM_MODEL,
    MAX_TOKENS,
    MODEL,
    SHORT_PROMPT,
    TIMEOUT,
    Result,
    describe,
    headers,
    reply_text,
    request_body,
    settle,
)
from _sync import load_litellm

_SIGN = "[offline]"
ACall = Callable[[], Awaitable[None]]
AClose = Callable[[], Awaitable[None]]
AFactory = Callable[[str], Awaitable[tuple[ACall, AClose]]]


def _check(text: str | None) -> None:
    if not text or not text.startswith(_SIGN):
        raise RuntimeError(f"unexpected reply text: {text!r}")


async def _noop() -> None:
    return None


def _callm_async(url: str, http_client: Any = None) -> Any:
    import callm

    return callm.AsyncClient(
        providers={"fake": {"base_url": f"{url}/v1", "api_key": API_KEY}},
        max_retries=0,
        timeout=TIMEOUT,
        env_file=None,
        http_client=http_client,
        **BARE,
    )


async def _callm(url: str) -> tuple[ACall, AClose]:
    client = _callm_async(url)

    async def call() -> None:
        reply = await client.complete(CALLM_MODEL, SHORT_PROMPT, max_tokens=MAX_TOKENS)
        _check(reply.text)

    return call, client.close


def _httpx2_async() -> Any:
    import httpx2

    limits = httpx2.Limits(max_connections=100, max_keepalive_connections=100)
    return httpx2.AsyncClient(limits=limits, timeout=TIMEOUT)


async def _callm_httpx2(url: str) -> tuple[ACall, AClose]:
    http = _httpx2_async()
    client = _callm_async(url, http)

    async def call() -> None:
        reply = await client.complete(CALLM_MODEL, SHORT_PROMPT, max_tokens=MAX_TOKENS)
        _check(reply.text)

    async def close() -> None:
        await client.close()
        await http.aclose()

    return call, close


async def _httpx2(url: str) -> tuple[ACall, AClose]:
    client = _httpx2_async()
    endpoint, hdrs = f"{url}/v1/chat/completions", headers()

    async def call() -> None:
        response = await client.post(
            endpoint, content=request_body(SHORT_PROMPT, MAX_TOKENS), headers=hdrs
        )
        response.raise_for_status()
        _check(reply_text(response.content))

    return call, client.aclose


async def _aiohttp(url: str) -> tuple[ACall, AClose]:
    import aiohttp

    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=100),
        timeout=aiohttp.ClientTimeout(total=TIMEOUT),
    )
    endpoint, hdrs = f"{url}/v1/chat/completions", headers()

    async def call() -> None:
        body = request_body(SHORT_PROMPT, MAX_TOKENS)
        async with session.post(endpoint, data=body, headers=hdrs) as response:
            response.raise_for_status()
            _check(reply_text(await response.read()))

    return call, session.close


async def _openai(url: str) -> tuple[ACall, AClose]:
    import openai

    client = openai.AsyncOpenAI(
        base_url=f"{url}/v1", api_key=API_KEY, max_retries=0, timeout=TIMEOUT
    )

    async def call() -> None:
        reply = await client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": SHORT_PROMPT}],
            max_tokens=MAX_TOKENS,
        )
        _check(reply.choices[0].message.content)

    return call, client.close


async def _litellm(url: str) -> tuple[ACall, AClose]:
    litellm = load_litellm()
    base = f"{url}/v1"

    async def call() -> None:
        reply = await litellm.acompletion(
            model=LITELLM_MODEL,
            messages=[{"role": "user", "content": SHORT_PROMPT}],
            max_tokens=MAX_TOKENS,
            api_base=base,
            api_key=API_KEY,
            timeout=TIMEOUT,
            num_retries=0,
        )
        _check(reply.choices[0].message.content)

    async def close() -> None:
        # LiteLLM caches its HTTP clients; drop them with the loop they belong to.
        cache = getattr(litellm, "in_memory_llm_client_cache", None)
        if cache is not None and hasattr(cache, "flush_cache"):
            cache.flush_cache()

    return call, close


FACTORIES: dict[str, AFactory] = {
    "callm": _callm,
    "callm-httpx2": _callm_httpx2,
    "httpx2": _httpx2,
    "aiohttp": _aiohttp,
    "openai": _openai,
    "litellm": _litellm,
}


async def _drive(call: ACall, total: int, concurrency: int) -> None:
    """``total`` calls by ``concurrency`` workers pulling from one shared counter."""
    remaining = total

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await call()

    await asyncio.gather(*(worker() for _ in range(min(concurrency, total))))


async def _one_round(factory: AFactory, url: str, total: int, warmup: int) -> tuple[float, float]:
    """Requests per second, and CPU µs of this process per request."""
    call, close = await factory(url)
    try:
        await _drive(call, warmup, CONCURRENCY)
        started, cpu_started = time.perf_counter(), time.process_time()
        await _drive(call, total, CONCURRENCY)
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
    finally:
        await close()
    return total / elapsed, cpu * 1e6 / total


def run(
    factories: Mapping[str, AFactory],
    url: str,
    *,
    counts: Mapping[str, int],
    rounds: int,
) -> dict[str, Result]:
    """Interleaved rounds (A B C, A B C, …), each round in its own event loop."""
    unit = "req/s"
    results = {name: Result(name, unit) for name in factories}
    for _ in range(rounds):
        for name, factory in factories.items():
            result = results[name]
            if result.error:
                continue
            settle()
            try:
                figure, cpu_us = asyncio.run(
                    _one_round(factory, url, counts[name], CONCURRENCY * 2)
                )
            except ImportError as exc:
                result.error = f"not available ({describe(exc)})"
                continue
            except Exception as exc:
                result.error = f"failed ({describe(exc)})"
                continue
            result.rounds.append(round(figure, 1))
            result.detail.setdefault("cpu_us_per_unit", []).append(round(cpu_us, 3))
            result.detail["count_per_round"] = counts[name]
            result.detail["concurrency"] = CONCURRENCY
    return results
