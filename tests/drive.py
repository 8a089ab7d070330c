"""Run the same scenario through the sync and the async client, streamed or not."""

from __future__ import annotations

from typing import Any

import callm
from helpers import async_client, sync_client

MODES = ["sync", "async"]


async def complete(
    mode: str, base_url: str, *args: Any, client: dict[str, Any] | None = None, **params: Any
) -> callm.Response:
    """``complete()`` through the chosen client, against the fake at ``base_url``."""
    if mode == "sync":
        with sync_client(base_url, **(client or {})) as c:
            return c.complete(*args, **params)
    async with async_client(base_url, **(client or {})) as ac:
        return await ac.complete(*args, **params)


async def stream(
    mode: str, base_url: str, *args: Any, client: dict[str, Any] | None = None, **params: Any
) -> tuple[list[callm.StreamEvent], callm.Response]:
    """Every event of a stream, and its accumulated Response."""
    if mode == "sync":
        with sync_client(base_url, **(client or {})) as c, c.stream(*args, **params) as s:
            events = list(s)
            return events, s.response
    async with async_client(base_url, **(client or {})) as ac:
        s = await ac.stream(*args, **params)
        async with s:
            events = [ev async for ev in s]
        return events, s.response


async def run(
    mode: str, streamed: bool, base_url: str, *args: Any, **params: Any
) -> callm.Response:
    """The Response of a call, whichever way it is made."""
    if streamed:
        return (await stream(mode, base_url, *args, **params))[1]
    return await complete(mode, base_url, *args, **params)
