"""``callm batch --provider-batch`` end to end against the fakes of the providers' Batch APIs:
OpenAI Files + Batches, Anthropic Message Batches, Gemini batch mode — submitted, polled,
collected into the usual output, partial failures recorded, resumed across runs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import FAKE_KEY, CallmProcess

from callm.testing import FakeOpenAIServer, Fault, Reply

BATCH_HEADER = "x-callm-fake-batch"


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAIServer]:
    """One fake for the three providers, its batches ending after a fraction of a second."""
    with FakeOpenAIServer(api_key=FAKE_KEY, batch_delay=0.3) as fake:
        for name, url in (
            ("OPENAI", fake.base_url),
            ("ANTHROPIC", fake.anthropic_base_url),
            ("GEMINI", fake.gemini_base_url),
        ):
            monkeypatch.setenv(f"{name}_BASE_URL", url)
            monkeypatch.setenv(f"{name}_API_KEY", FAKE_KEY)
        monkeypatch.setenv("CALLM_BATCH_POLL_S", "0.1")
        yield fake


def write_input(path: Path, count: int) -> None:
    path.write_text(
        "".join(
            json.dumps({"id": f"q{n}", "prompt": f"question {n}", "metadata": {"n": n}}) + "\n"
            for n in range(count)
        )
    )


def answers(path: Path) -> dict[str, dict[str, Any]]:
    return {line["id"]: line for line in map(json.loads, path.read_text().splitlines())}


def inner(server: FakeOpenAIServer) -> list[Any]:
    """The requests the fake's batches made to its generation endpoints."""
    return [r for r in server.requests if BATCH_HEADER in r.headers]


def outer(server: FakeOpenAIServer, method: str, suffix: str) -> int:
    return sum(
        1
        for r in server.requests
        if BATCH_HEADER not in r.headers and r.method == method and r.path.endswith(suffix)
    )


@pytest.mark.parametrize(
    ("model", "create"),
    [
        ("openai/gpt-4o-mini", "/v1/batches"),
        ("anthropic/claude-haiku-4-5", "/v1/messages/batches"),
        ("gemini/gemini-2.5-flash", ":batchGenerateContent"),
    ],
)
def test_a_provider_batch_is_submitted_polled_and_collected_with_partial_failures(
    server: FakeOpenAIServer, callm_run: CallmProcess, tmp_path: Path, model: str, create: str
) -> None:
    write_input(tmp_path / "in.jsonl", 5)
    server.queue(Reply("The first answer."), Fault.server_error(500))
    args = ("batch", "in.jsonl", "-o", "out.jsonl", "-m", model, "--provider-batch")

    first = callm_run(*args)

    assert first.code == 1, first.stderr  # one line failed inside the batch
    assert "4/5 answered, 1 failed" in first.stderr
    got = answers(tmp_path / "out.jsonl")
    assert len(got) == 4
    assert "The first answer." in [line["text"] for line in got.values()]
    for line in got.values():
        assert line["model"].split("/")[0] == model.split("/", maxsplit=1)[0]
        assert line["metadata"] == {"n": int(line["id"][1:])}
        assert line["usage"]["output_tokens"] > 0
    assert outer(server, "POST", create) == 1
    assert len(inner(server)) == 5
    status = json.loads(callm_run("batch", "status", "out.jsonl", "--json").stdout)
    [failure] = status["failures"]
    assert failure["status_code"] == 500 and failure["type"] == "InternalServerError"
    [batch] = status["provider_batches"]
    assert batch["state"] == "collected" and batch["batch_id"]

    retried = callm_run(*args, "--retry-failed")

    assert retried.code == 0, retried.stderr
    assert outer(server, "POST", create) == 2
    assert len(inner(server)) == 6  # only the failed line went again
    assert sorted(answers(tmp_path / "out.jsonl")) == [f"q{n}" for n in range(5)]


def test_no_wait_submits_then_status_and_a_later_run_collect_without_resubmitting(
    server: FakeOpenAIServer, callm_run: CallmProcess, tmp_path: Path
) -> None:
    write_input(tmp_path / "in.jsonl", 3)
    args = ("batch", "in.jsonl", "-o", "out.jsonl", "-m", "openai/gpt-4o-mini", "--provider-batch")

    submitted = callm_run(*args, "--no-wait")

    assert submitted.code == 0, submitted.stderr
    assert "submitted 3 lines to openai as batch batch_" in submitted.stderr
    assert not (tmp_path / "out.jsonl").read_text()
    status = callm_run("batch", "status", "out.jsonl")
    assert status.code == 0
    assert "openai batch batch_" in status.stdout

    collected = callm_run(*args)

    assert collected.code == 0, collected.stderr
    assert sorted(answers(tmp_path / "out.jsonl")) == ["q0", "q1", "q2"]
    assert outer(server, "POST", "/v1/batches") == 1
    assert outer(server, "POST", "/v1/files") == 1
    again = callm_run(*args)
    assert again.code == 0
    assert outer(server, "POST", "/v1/batches") == 1
    assert len(answers(tmp_path / "out.jsonl")) == 3


def test_a_provider_without_a_batch_api_fails_its_lines_with_a_clear_error(
    server: FakeOpenAIServer, callm_run: CallmProcess, tmp_path: Path
) -> None:
    write_input(tmp_path / "in.jsonl", 2)
    result = callm_run(
        "batch", "in.jsonl", "-o", "out.jsonl", "-m", "local/offline", "--provider-batch"
    )
    assert result.code == 1
    status = json.loads(callm_run("batch", "status", "out.jsonl", "--json").stdout)
    assert {f["type"] for f in status["failures"]} == {"ConfigurationError"}
    assert "has no Batch API" in status["failures"][0]["message"]
