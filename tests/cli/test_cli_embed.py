"""``callm embed``: JSON lines of vectors, from arguments, a file or a pipe."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_helpers import FAKE_KEY, CallmProcess

from callm.testing import FakeOpenAIServer, Fault
from callm.testing.local_embedding import hash_embedding

MODEL = "openai/text-embedding-3-small"


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(api_key=FAKE_KEY) as fake:
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
        yield fake


def rows(stdout: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in stdout.splitlines()]


def test_texts_offline_with_no_key(callm_run: CallmProcess) -> None:
    result = callm_run("embed", "-m", "local/hash", "first text", "second text")
    assert (result.code, result.stderr) == (0, "")
    out = rows(result.stdout)
    assert [(r["index"], r["text"]) for r in out] == [(0, "first text"), (1, "second text")]
    assert out[0]["embedding"] == pytest.approx(hash_embedding("first text"))


def test_a_file_is_read_in_chunks_and_comes_out_in_order(
    server: FakeOpenAIServer, callm_run: CallmProcess, tmp_path: Path
) -> None:
    lines = [f"line {i}" if i % 1000 else "" for i in range(10_000)]  # blank lines skipped
    (tmp_path / "docs.txt").write_text("\n".join(lines) + "\n")
    result = callm_run("embed", "-m", MODEL, "-i", "docs.txt", "-d", "2", "-u")
    assert result.code == 0, result.stderr
    out = rows(result.stdout)
    texts = [t for t in lines if t]
    assert [r["text"] for r in out] == texts
    assert [r["index"] for r in out] == list(range(len(texts)))
    assert out[-1]["embedding"] == pytest.approx(hash_embedding(texts[-1], 2), abs=1e-6)
    # 8,192 lines at a time, each chunk in requests of at most 2,048 inputs.
    sizes = [len(r.json["input"]) for r in server.requests]
    assert sorted(sizes[:4]) == [2048, 2048, 2048, 2048]
    assert sizes[4:] == [len(texts) - 8192]
    assert (
        result.stderr == f"{len(texts)} inputs, 5 requests, {2 * len(texts)} tokens, $0.0003996\n"
    )


def test_lines_from_a_pipe(server: FakeOpenAIServer, callm_run: CallmProcess) -> None:
    result = callm_run("embed", "-m", MODEL, "--float", input="alpha\r\nbeta\n")
    assert [r["text"] for r in rows(result.stdout)] == ["alpha", "beta"]
    assert server.requests[0].json["encoding_format"] == "float"
    assert rows(result.stdout)[1]["embedding"] == hash_embedding("beta")


def test_no_model_is_a_usage_error(callm_run: CallmProcess) -> None:
    result = callm_run("embed", "text")
    assert result.code == 2
    [line] = result.error_lines
    assert line.startswith("callm: error: give the embedding model with -m")


def test_an_api_error_is_one_line_and_exit_1(
    server: FakeOpenAIServer, callm_run: CallmProcess
) -> None:
    server.queue(Fault.status(400, "that input is not allowed"))
    result = callm_run("embed", "-m", MODEL, "x")
    assert result.code == 1
    [line] = result.error_lines
    assert line.startswith("callm: error:") and "that input is not allowed" in line


def test_a_protocol_without_embeddings(callm_run: CallmProcess) -> None:
    result = callm_run("embed", "-m", "anthropic/claude-haiku-4-5", "x")
    assert result.code != 0
    assert "no embeddings endpoint" in result.stderr


def test_the_call_log_shows_the_input_count_not_the_inputs(
    server: FakeOpenAIServer, callm_run: CallmProcess
) -> None:
    assert callm_run("embed", "-m", MODEL, "-d", "4", "private words", "more").code == 0
    shown = callm_run("logs", "-n", "1")
    assert shown.code == 0, shown.stderr
    assert "4 dimensions" in shown.stdout and "2 inputs" in shown.stdout
    assert "private" not in shown.stdout
