"""``callm models [PROVIDER]`` against the fake server and the offline model."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_helpers import FAKE_KEY, CallmProcess

from callm._config.settings import LOCAL_NOTICE
from callm.testing import FakeOpenAIServer
from helpers import vertex_env


@pytest.fixture
def listing(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAIServer]:
    """A fake server offering two models, reachable as provider openai."""
    with FakeOpenAIServer(api_key=FAKE_KEY, models=["m-one", "m-two"]) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
        yield server


def test_lists_one_model_id_per_line(listing: FakeOpenAIServer, callm_run: CallmProcess) -> None:
    result = callm_run("models", "openai", "-q")
    assert (result.code, result.stdout, result.stderr) == (0, "m-one\nm-two\n", "")
    assert listing.requests[0].path == "/v1/models"


def test_the_default_provider_is_that_of_the_default_model(
    listing: FakeOpenAIServer, callm_run: CallmProcess
) -> None:
    assert callm_run("models", "--quiet").stdout == "m-one\nm-two\n"


def test_json(listing: FakeOpenAIServer, callm_run: CallmProcess) -> None:
    rows = json.loads(callm_run("models", "--json").stdout)
    assert [(r["id"], r["provider"]) for r in rows] == [("m-one", "openai"), ("m-two", "openai")]


def test_without_a_key_the_offline_models_are_listed(callm_run: CallmProcess) -> None:
    assert "OPENAI_API_KEY" not in os.environ
    result = callm_run("models")
    assert result.code == 0
    assert result.stderr == LOCAL_NOTICE + "\n"
    assert "offline" in [line.split()[0] for line in result.stdout.splitlines()]


def test_an_unknown_provider_exits_2(callm_run: CallmProcess) -> None:
    result = callm_run("models", "nosuch")
    assert result.code == 2
    [line] = result.error_lines
    assert line.startswith("callm: error: unknown provider 'nosuch'")


def test_vertex_lists_model_gardens_google_models(
    fake_openai: FakeOpenAIServer,
    callm_run: CallmProcess,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    for name, value in vertex_env(fake_openai, tmp_path).items():
        monkeypatch.setenv(name, value)
    result = callm_run("models", "vertex", "-q")
    assert result.code == 0, result.stderr
    assert {"gemini-2.5-flash", "gemini-2.5-pro"} <= set(result.stdout.split())
    assert fake_openai.requests[-1].path == "/v1beta1/publishers/google/models"
