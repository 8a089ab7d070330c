"""Drive the built-in provider of each protocol against one fake server (not fixtures).

The built-in entries matter here, not a generic "fake" provider: their quirk flags decide
what goes on the wire (``prompt_cache_key`` for OpenAI, nothing for other servers).
"""

from __future__ import annotations

from typing import Any

import pytest

import callm
import helpers
from callm.testing import FakeOpenAIServer

KEY = "sk-drive-fake-key"
MODELS = {
    "openai_chat": "openai/gpt-4o-mini",
    "openai_responses": "openai-responses/gpt-4o-mini",
    "anthropic": "anthropic/claude-sonnet-4-5",
    "gemini": "gemini/gemini-2.5-flash",
}


def point_builtins(server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch) -> FakeOpenAIServer:
    """Every built-in provider of the four protocols, pointed at ``server``."""
    return helpers.point_builtins(server, monkeypatch, KEY)


async def ask(
    mode: str,
    streamed: bool,
    model: str,
    messages: Any,
    *,
    client: dict[str, Any] | None = None,
    **params: Any,
) -> callm.Response:
    """One call through the sync or async client, streamed or not."""
    options = client or {}
    if mode == "sync":
        with callm.Client(**options) as c:
            if not streamed:
                return c.complete(model, messages, **params)
            with c.stream(model, messages, **params) as s:
                return s.response
    async with callm.AsyncClient(**options) as ac:
        if not streamed:
            return await ac.complete(model, messages, **params)
        s2 = await ac.stream(model, messages, **params)
        async with s2:
            return await s2.get_response()


def sent(server: FakeOpenAIServer) -> Any:
    """The JSON body of the last request the fake received."""
    return server.requests[-1].json
