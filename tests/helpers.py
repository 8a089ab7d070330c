"""Small shared helpers for the tests (not fixtures)."""

from __future__ import annotations

from typing import Any

import pytest

import callm
from callm.testing import FakeOpenAIServer

FAKE_KEY = "sk-test-fake-key-0000"
# An AWS key pair made up for the tests (AWS's own examples use this shape).
AWS_KEY_ID = "AKIDCALLMTEST0000000"


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
    """Point the built-in providers of every protocol at ``server`` (through their usual
    environment variables; Bedrock signs with a key pair the server checks), and the
    OpenAI-compatible ones named too (e.g. "OPENROUTER")."""
    env = {
        "OPENAI_BASE_URL": server.base_url,
        "OPENAI_API_KEY": key,
        "ANTHROPIC_BASE_URL": server.url,
        "ANTHROPIC_API_KEY": key,
        "GEMINI_BASE_URL": server.url + "/v1beta",
        "GEMINI_API_KEY": key,
    }
    secret = "aws-secret/" + key  # built at run time: no real secret is ever in the tree
    server.accept_aws_key(AWS_KEY_ID, secret)
    env.update(
        AWS_ENDPOINT_URL_BEDROCK_RUNTIME=server.bedrock_base_url,
        AWS_ACCESS_KEY_ID=AWS_KEY_ID,
        AWS_SECRET_ACCESS_KEY=secret,
        AWS_REGION="us-east-1",
    )
    for name in openai_compatible:
        env[f"{name}_BASE_URL"] = server.base_url
        env[f"{name}_API_KEY"] = key
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return server
