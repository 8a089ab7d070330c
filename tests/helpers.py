"""Small shared helpers for the tests (not fixtures)."""

from __future__ import annotations

from typing import Any

import pytest

import callm
from callm.testing import FakeOpenAIServer

FAKE_KEY = "sk-test-fake-key-0000"


def fake_provider(base_url: str, **extra: Any) -> dict[str, Any]:
    """A ``providers=`` entry pointing a provider named "fake" at a fake server."""
    return {"fake": {"base_url": base_url, "api_key": FAKE_KEY, **extra}}


def sync_client(base_url: str, **kwargs: Any) -> callm.Client:
    return callm.Client(providers=fake_provider(base_url), **kwargs)


def async_client(base_url: str, **kwargs: Any) -> callm.AsyncClient:
    return callm.AsyncClient(providers=fake_provider(base_url), **kwargs)


def point_builtins(
    server: FakeOpenAIServer,
    monkeypatch: pytest.MonkeyPatch,
    key: str = FAKE_KEY,
    *,
    openai_compatible: tuple[str, ...] = (),
) -> FakeOpenAIServer:
    """Point the built-in providers of all four protocols at ``server`` (through their usual
    environment variables), and the OpenAI-compatible ones named too (e.g. "OPENROUTER")."""
    env = {
        "OPENAI_BASE_URL": server.base_url,
        "OPENAI_API_KEY": key,
        "ANTHROPIC_BASE_URL": server.url,
        "ANTHROPIC_API_KEY": key,
        "GEMINI_BASE_URL": server.url + "/v1beta",
        "GEMINI_API_KEY": key,
    }
    for name in openai_compatible:
        env[f"{name}_BASE_URL"] = server.base_url
        env[f"{name}_API_KEY"] = key
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return server
