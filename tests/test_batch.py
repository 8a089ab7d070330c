"""``callm.batch``: the library API — progress, resume after an interruption, the store."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import callm
import callm.batch
from callm._config.settings import callm_home
from callm.testing import FakeOpenAIServer, Fault

KEY = "sk-" + "batch" * 4
MODEL = "openai/gpt-4o-mini"


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeOpenAIServer:
    with FakeOpenAIServer(api_key=KEY) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        yield server


def write(path: Path, count: int) -> None:
    path.write_text("".join(json.dumps({"prompt": f"p{n}"}) + "\n" for n in range(count)))


def test_run_reports_progress_and_stores_the_job(fake: FakeOpenAIServer, tmp_path: Path) -> None:
    write(tmp_path / "in.jsonl", 25)
    seen: list[callm.batch.BatchProgress] = []

    summary = callm.batch.run(
        tmp_path / "in.jsonl", tmp_path / "out.jsonl", model=MODEL, on_progress=seen.append
    )

    assert summary.complete and summary.sent == 25
    assert seen[-1].done == 25 and seen[-1].total == 25
    assert seen[-1].tokens > 0 and seen[-1].cost > 0
    assert [p.finished for p in seen] == sorted(p.finished for p in seen)
    state = callm.batch.status(tmp_path / "out.jsonl")
    assert (state.total, state.done, state.failed, state.pending) == (25, 25, 0, 0)
    assert state.cost == summary.progress.cost


async def test_a_cancelled_run_keeps_what_was_answered_and_resumes(
    fake: FakeOpenAIServer, tmp_path: Path
) -> None:
    write(tmp_path / "in.jsonl", 60)
    fake.queue(*[Fault.slow_first_byte(0.02) for _ in range(60)])
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    async with callm.AsyncClient() as client:
        task = asyncio.ensure_future(
            callm.batch.arun(inp, out, client=client, model=MODEL, concurrency=3)
        )
        while not out.exists() or out.read_text().count("\n") < 10:
            await asyncio.sleep(0.01)
        task.cancel()
        first = await task
        assert first.interrupted and not first.complete
        answered = {json.loads(line)["id"] for line in out.read_text().splitlines()}
        assert len(answered) == first.progress.done
        sent = len(fake.requests)

        second = await callm.batch.arun(inp, out, client=client, model=MODEL, concurrency=3)

    assert second.complete and second.progress.skipped == first.progress.done
    assert second.sent == 60 - first.progress.done
    assert len(fake.requests) == sent + second.sent
    ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert sorted(ids) == list(range(1, 61))


async def test_a_commit_under_way_when_the_run_ends_still_reaches_the_output(
    fake: FakeOpenAIServer, tmp_path: Path
) -> None:
    """Another process holds the store's write lock, so the commit the run started for its
    first answers waits; the run is cancelled meanwhile with nothing else to commit. That
    commit must still land in the output before the run closes it (it used to be left
    behind, to fail later writing into a closed file: answers missing from the output)."""
    write(tmp_path / "in.jsonl", 6)
    quick = [Fault.slow_first_byte(0.3) for _ in range(3)]
    fake.queue(*quick, *[Fault.slow_first_byte(5) for _ in range(3)])
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    release = threading.Event()
    async with callm.AsyncClient() as client:
        task = asyncio.ensure_future(
            callm.batch.arun(inp, out, client=client, model=MODEL, concurrency=3)
        )
        await until(lambda: len(fake.requests) >= 3)  # the job is stored, lines 1-3 sent
        holder = threading.Thread(target=hold_write_lock, args=(release,))
        holder.start()
        await until(lambda: len(fake.requests) >= 6)  # lines 1-3 answered, 4-6 under way
        await asyncio.sleep(3 * 0.1)  # a few flush intervals: their commit has begun
        task.cancel()
        await asyncio.sleep(0.2)
        release.set()
        first = await task
        holder.join()
    assert first.interrupted and first.progress.done == 3
    assert len(out.read_text().splitlines()) == 3


def hold_write_lock(release: threading.Event) -> None:
    """Hold callm.db's write lock, as another callm process might, until told (or 3 s)."""
    db = sqlite3.connect(callm_home() / "callm.db", isolation_level=None)
    try:
        db.execute("BEGIN IMMEDIATE")
        release.wait(3)
        db.execute("COMMIT")
    finally:
        db.close()


async def until(condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


def test_a_crash_between_commit_and_write_loses_nothing(
    fake: FakeOpenAIServer, tmp_path: Path
) -> None:
    """Answers committed to the store but not yet in the output (a crash in between), and
    a half-written last line, are repaired on the next run without calling anyone."""
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write(inp, 5)
    callm.batch.run(inp, out, model=MODEL)
    whole = out.read_text().splitlines()
    # Simulate the crash: the last two answers are only in the store, and half a line
    # was appended to the output before the power went.
    kept = "".join(line + "\n" for line in whole[:3])
    out.write_text(kept + whole[3][:10])
    db = sqlite3.connect(callm_home() / "callm.db", isolation_level=None)
    for text in whole[3:]:
        db.execute(
            "UPDATE batch_items SET written = 0, result = ? WHERE line = ?",
            (text, json.loads(text)["id"]),
        )
    db.execute("UPDATE batch_jobs SET output_bytes = ?", (len(kept.encode()),))
    db.close()
    requests = len(fake.requests)

    again = callm.batch.run(inp, out, model=MODEL)

    assert again.sent == 0 and again.complete
    assert len(fake.requests) == requests
    assert sorted(out.read_text().splitlines()) == sorted(whole)


@pytest.mark.parametrize(
    ("model", "create"),
    [
        ("openai/gpt-4o-mini", "/v1/batches"),
        ("anthropic/claude-haiku-4-5", "/v1/messages/batches"),
        ("gemini/gemini-2.5-flash", ":batchGenerateContent"),
    ],
)
def test_provider_batches_from_the_library_submit_then_collect_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, model: str, create: str
) -> None:
    """``run(provider_batch=True, wait=False)`` submits and returns; a later ``run`` collects
    into the same output format; ``status(refresh=True)`` asks the provider meanwhile."""
    with FakeOpenAIServer(api_key=KEY, batch_delay=0.3) as server:
        for name, url in (
            ("OPENAI", server.base_url),
            ("ANTHROPIC", server.anthropic_base_url),
            ("GEMINI", server.gemini_base_url),
        ):
            monkeypatch.setenv(f"{name}_BASE_URL", url)
            monkeypatch.setenv(f"{name}_API_KEY", KEY)
        monkeypatch.setenv("CALLM_BATCH_POLL_S", "0.1")
        write(tmp_path / "in.jsonl", 4)
        out = tmp_path / "out.jsonl"
        events: list[str] = []

        submitted = callm.batch.run(
            tmp_path / "in.jsonl", out, model=model, provider_batch=True, wait=False,
            on_event=events.append,
        )  # fmt: skip

        assert submitted.progress.done == 0 and not submitted.complete
        assert any("submitted 4 lines" in event for event in events), events
        [batch] = callm.batch.status(out, refresh=True).provider_batches
        assert batch["batch_id"] and batch["state"] == "submitted"

        collected = callm.batch.run(tmp_path / "in.jsonl", out, model=model, provider_batch=True)

        assert collected.complete and collected.progress.done == 4
        lines = [json.loads(line) for line in out.read_text().splitlines()]
        assert sorted(line["id"] for line in lines) == [1, 2, 3, 4]
        assert all(line["text"] and line["usage"]["output_tokens"] > 0 for line in lines)
        creations = [r for r in server.requests if r.method == "POST" and r.path.endswith(create)]
        assert len(creations) == 1  # the second run collected, it did not submit again
        [batch] = callm.batch.status(out).provider_batches
        assert batch["state"] == "collected"
