"""Shared fixtures for the fake-server tests: a raw HTTP client and SSE parsing helpers."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

import callm.testing
from callm.protocols._shared.sse import SSEDecoder
from callm.testing import FakeOpenAIServer
from callm.testing.pytest_plugin import fake_openai

# Re-exported so the fixture exists even when callm is not installed (no pytest11 entry
# point); test_fake_plugin.py checks the real plugin registration in a subprocess.
__all__ = ["fake_openai"]


class Api:
    """A thin raw client: posts OpenAI JSON and splits SSE answers into events."""

    def __init__(self, server: FakeOpenAIServer, client: httpx2.Client) -> None:
        self.server = server
        self.client = client

    def post(self, path: str, body: Any = None, **kwargs: Any) -> httpx2.Response:
        return self.client.post(self.server.url + path, json=body, **kwargs)

    def chat(self, **body: Any) -> httpx2.Response:
        body.setdefault("model", "gpt-4o-mini")
        body.setdefault("messages", [{"role": "user", "content": "hello there"}])
        return self.post("/v1/chat/completions", body)

    def stream(self, path: str = "/v1/chat/completions", **body: Any) -> list[str]:
        """The raw ``data:`` payloads of a streamed answer, ``[DONE]`` included."""
        body.setdefault("model", "gpt-4o-mini")
        body.setdefault("messages", [{"role": "user", "content": "hello there"}])
        response = self.post(path, {**body, "stream": True})
        assert response.status_code == 200, response.text
        return self.sse_data(response.content)

    def chunks(self, path: str = "/v1/chat/completions", **body: Any) -> list[dict[str, Any]]:
        """The JSON chunks of a stream, checking that it ends with exactly one ``[DONE]``."""
        payloads = self.stream(path, **body)
        assert payloads[-1] == "[DONE]"
        assert "[DONE]" not in payloads[:-1]
        return [json.loads(p) for p in payloads[:-1]]

    @staticmethod
    def sse_data(raw: bytes) -> list[str]:
        """Every event's data, fed to the decoder in small pieces to mimic TCP splits."""
        decoder = SSEDecoder()
        events = []
        for start in range(0, len(raw), 7):
            events += decoder.feed(raw[start : start + 7])
        events += decoder.close()
        return [e.data for e in events]


@pytest.fixture
def subprocess_env(tmp_path: Path) -> dict[str, str]:
    """Environment for child Pythons: this callm importable, a throwaway home directory."""
    src = str(Path(callm.testing.__file__).resolve().parents[2])
    paths = [src, *filter(None, [os.environ.get("PYTHONPATH")])]
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(paths),
        "HOME": str(tmp_path),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
    }


@pytest.fixture
def client() -> Iterator[httpx2.Client]:
    with httpx2.Client(timeout=5.0) as c:
        yield c


@pytest.fixture
def api(fake_openai: FakeOpenAIServer, client: httpx2.Client) -> Api:
    return Api(fake_openai, client)
