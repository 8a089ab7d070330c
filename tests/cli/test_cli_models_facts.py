"""``callm models``: context window and prices per million tokens from genai-prices."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from cli_helpers import FAKE_KEY, CallmProcess

from callm.testing import FakeOpenAIServer


@pytest.fixture
def openai(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(api_key=FAKE_KEY, models=["gpt-4o-mini", "my-finetune"]) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
        yield server


def test_the_table_shows_window_and_prices_where_known(
    openai: FakeOpenAIServer, callm_run: CallmProcess
) -> None:
    result = callm_run("models", "openai")

    assert result.code == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["model", "context", "input/Mtok", "output/Mtok"]
    assert rows[0].split() == ["gpt-4o-mini", "128k", "$0.15", "$0.6"]
    assert rows[1].split() == ["my-finetune", "?", "?", "?"]


def test_quiet_lists_ids_and_json_has_the_facts(
    openai: FakeOpenAIServer, callm_run: CallmProcess
) -> None:
    assert callm_run("models", "openai", "-q").stdout == "gpt-4o-mini\nmy-finetune\n"
    known, unknown = json.loads(callm_run("models", "openai", "--json").stdout)
    assert known["context_window"] == 128000
    assert (known["input_per_mtok"], known["output_per_mtok"]) == ("0.15", "0.6")
    assert unknown["context_window"] is None and unknown["input_per_mtok"] is None
