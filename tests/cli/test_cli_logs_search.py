"""``callm logs`` search, filters, ``logs rm`` and ``logs off|on``, through the real CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import CallmProcess

from callm._store import CallRecord, Store
from callm.testing import FakeOpenAIServer, Reply


def _record(
    prompt: str,
    reply: str | None = "fine",
    *,
    provider: str = "openai",
    model: str = "gpt-4o-mini",
    status: str = "ok",
    error: str | None = None,
    conversation_id: str | None = None,
    age: timedelta = timedelta(0),
) -> CallRecord:
    return CallRecord(
        provider=provider,
        model=model,
        request={"messages": [{"role": "user", "content": [{"kind": "text", "text": prompt}]}]},
        response_text=reply,
        status=status,
        error=error,
        conversation_id=conversation_id,
        time=datetime.now(UTC) - age,
    )


@pytest.fixture
def stored(cli_home: Path) -> list[CallRecord]:
    records = [
        _record("Write an invoice reminder", "Dear customer, your invoice is due."),
        _record("Translate bonjour", "hello", provider="anthropic", model="claude-x"),
        _record("Summarise the café menu", None, status="RateLimitError", error="429 slow down"),
        _record("Old question about invoices", "old answer", age=timedelta(days=40)),
        _record("Second turn", "sure", conversation_id="conv-1"),
    ]
    with Store(cli_home / "callm.db") as store:
        store.insert_calls(records)
    return records


def listed(callm_run: CallmProcess, *args: str) -> list[dict[str, Any]]:
    result = callm_run("logs", "-n", "0", "--json", *args)
    assert result.code == 0, result.stderr
    rows = json.loads(result.stdout)
    assert isinstance(rows, list)
    return rows


def prompts(rows: list[dict[str, Any]]) -> list[str]:
    return [r["request"]["messages"][0]["content"][0]["text"] for r in rows]


def test_query_searches_prompts_and_replies_by_word_and_prefix(
    stored: list[CallRecord], callm_run: CallmProcess
) -> None:
    assert prompts(listed(callm_run, "-q", "invoice")) == ["Write an invoice reminder"]
    assert prompts(listed(callm_run, "-q", "invoice*")) == [
        "Old question about invoices",
        "Write an invoice reminder",
    ]
    assert prompts(listed(callm_run, "-q", "customer due")) == ["Write an invoice reminder"]
    assert prompts(listed(callm_run, "-q", "cafe")) == ["Summarise the café menu"]  # accents
    assert prompts(listed(callm_run, "-q", "slow")) == ["Summarise the café menu"]  # errors
    # FTS syntax in the words is searched as text, never a query error.
    assert listed(callm_run, "-q", 'AND "unbalanced ( NEAR') == []


def test_filters_by_model_provider_status_conversation_and_since(
    stored: list[CallRecord], callm_run: CallmProcess
) -> None:
    assert prompts(listed(callm_run, "-m", "claude-x")) == ["Translate bonjour"]
    assert prompts(listed(callm_run, "--model", "anthropic/claude-x")) == ["Translate bonjour"]
    assert listed(callm_run, "-m", "openai/claude-x") == []
    assert len(listed(callm_run, "-m", "openai/gpt-4o-mini")) == 4
    assert prompts(listed(callm_run, "--provider", "anthropic")) == ["Translate bonjour"]
    assert prompts(listed(callm_run, "--status", "error")) == ["Summarise the café menu"]
    assert prompts(listed(callm_run, "--status", "RateLimitError")) == ["Summarise the café menu"]
    assert len(listed(callm_run, "--status", "ok")) == 4
    assert prompts(listed(callm_run, "--cid", "conv-1")) == ["Second turn"]
    assert "Old question about invoices" not in prompts(listed(callm_run, "--since", "30d"))
    assert len(listed(callm_run, "--since", "30d")) == 4
    assert prompts(listed(callm_run, "-q", "invoice*", "--since", "7d")) == [
        "Write an invoice reminder"
    ]
    every_filter = ("-m", "gpt-4o-mini", "--provider", "openai", "--status", "ok")
    assert prompts(listed(callm_run, *every_filter, "--cid", "conv-1", "--since", "1d")) == [
        "Second turn"
    ]


def test_text_output_and_an_empty_search_say_what_was_looked_for(
    stored: list[CallRecord], callm_run: CallmProcess
) -> None:
    result = callm_run("logs", "-q", "bonjour")
    assert result.code == 0
    assert "anthropic/claude-x" in result.stdout
    assert f"id {stored[1].id}" in result.stdout
    empty = callm_run("logs", "-q", "zebra", "--provider", "openai")
    assert empty.stdout.startswith("No calls logged to provider openai matching 'zebra' in ")


def test_rm_deletes_by_id_filter_or_all_and_the_index_follows(
    stored: list[CallRecord], callm_run: CallmProcess
) -> None:
    removed = callm_run("logs", "rm", stored[0].id)
    assert (removed.code, removed.stderr) == (0, "Deleted 1 call from the log.\n")
    assert listed(callm_run, "-q", "invoice") == []
    assert callm_run("logs", "rm", "--before", "30d").stderr == "Deleted 1 call from the log.\n"
    by_model = callm_run("logs", "rm", "-m", "anthropic/claude-x")
    assert by_model.stderr == "Deleted 1 call from the log.\n"
    assert listed(callm_run, "--provider", "anthropic") == []
    assert prompts(listed(callm_run, "-q", "invoice*")) == []
    refused = callm_run("logs", "rm")
    assert refused.code == 2
    assert refused.stderr.startswith("callm: error: say which calls to delete")
    assert callm_run("logs", "rm", "--all").stderr == "Deleted 2 calls from the log.\n"
    assert listed(callm_run) == []


def test_logs_off_stops_logging_until_on(
    fake: FakeOpenAIServer, callm_run: CallmProcess, cli_home: Path
) -> None:
    fake.queue(Reply("one"), Reply("two"), Reply("three"))
    assert callm_run("-m", "openai/gpt-4o-mini", "first").code == 0
    off = callm_run("logs", "off")
    assert (off.code, off.stderr) == (0, "Logging is off: `callm logs on` turns it back on.\n")
    assert callm_run("-m", "openai/gpt-4o-mini", "--no-stream", "second").stdout == "two\n"
    assert "Logging is off" in callm_run("logs", "status").stdout
    assert callm_run("logs", "on").code == 0
    assert callm_run("-m", "openai/gpt-4o-mini", "third").code == 0

    assert prompts(listed(callm_run)) == ["first", "third"]
    status = callm_run("logs", "status").stdout
    assert status.splitlines() == [
        f"Logging is on: calls are logged to {cli_home / 'callm.db'}.",
        f"2 calls stored in {cli_home / 'callm.db'}.",
    ]


def test_the_environment_overrides_logs_off(
    fake: FakeOpenAIServer, callm_run: CallmProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert callm_run("logs", "off").code == 0
    monkeypatch.setenv("CALLM_LOG", "1")
    fake.queue(Reply("logged anyway"))
    assert callm_run("-m", "openai/gpt-4o-mini", "hello").code == 0
    assert [r["response_text"] for r in listed(callm_run)] == ["logged anyway"]


def test_an_old_database_gets_its_calls_indexed_on_open(tmp_path: Path) -> None:
    import sqlite3

    from callm._store import MIGRATIONS, migrate
    from callm._store._search import CallFilter, find_calls

    path = tmp_path / "old.db"
    db = sqlite3.connect(path, isolation_level=None)
    before = [m for m in MIGRATIONS if m.__name__ != "m006_calls_search"]
    migrate(db, before)
    db.execute(
        "INSERT INTO calls (id, time, provider, model, request, response, status) "
        "VALUES ('a', '2025-01-01T00:00:00+00:00', 'openai', 'm', ?, 'a zebra reply', 'ok')",
        (json.dumps({"messages": [{"role": "user", "content": [{"kind": "text", "text": "q"}]}]}),),
    )
    db.close()
    with Store(path) as store:
        [found] = find_calls(store, CallFilter(query="zebra"), 10)
    assert found.id == "a"


def test_a_search_finds_calls_logged_after_the_previous_search(
    stored: list[CallRecord], cli_home: Path, callm_run: CallmProcess
) -> None:
    from callm._store._search import CallFilter, find_calls

    assert prompts(listed(callm_run, "-q", "zebra*")) == []
    with Store(cli_home / "callm.db") as store:
        store.insert_calls([_record("A zebra crossing", "stripes")])
        [found] = find_calls(store, CallFilter(query="zebra"), 10)  # same connection
        assert found.response_text == "stripes"
        store.insert_calls([_record("Zebras run", "fast")])
    assert prompts(listed(callm_run, "-q", "zebra*")) == ["A zebra crossing", "Zebras run"]
    # Deleting the newest calls frees their rowids for the next ones: those are found too.
    assert callm_run("logs", "rm", "-q", "zebra*").stderr == "Deleted 2 calls from the log.\n"
    with Store(cli_home / "callm.db") as store:
        store.insert_calls([_record("One more zebra", "hello")])
    assert prompts(listed(callm_run, "-q", "zebra")) == ["One more zebra"]
    assert prompts(listed(callm_run, "-q", "invoice")) == ["Write an invoice reminder"]


def test_calls_logged_by_another_process_are_found(
    fake: FakeOpenAIServer, callm_run: CallmProcess, cli_home: Path
) -> None:
    from callm._store._search import CallFilter, find_calls

    fake.queue(Reply("a striped horse"), Reply("black and white"))
    assert callm_run("-m", "openai/gpt-4o-mini", "what is a zebra").code == 0
    with Store(cli_home / "callm.db") as store:
        [first] = find_calls(store, CallFilter(query="zebra"), 10)
        assert first.response_text == "a striped horse"
        # Logged by another callm process while this store is open and has searched.
        assert callm_run("-m", "openai/gpt-4o-mini", "--no-stream", "zebra colours").code == 0
        found = find_calls(store, CallFilter(query="zebra"), 10)
        assert [r.response_text for r in found] == ["black and white", "a striped horse"]
        assert [r.id for r in find_calls(store, CallFilter(query="striped"), 10)] == [first.id]


def test_a_log_of_many_calls_never_searched_is_indexed_whole(tmp_path: Path) -> None:
    from callm._store._search import CallFilter, count_calls, find_calls, index_new_calls

    with Store(tmp_path / "many.db") as store:
        store.insert_calls(_record(f"question number{i}", f"answer{i}") for i in range(12_001))
        assert count_calls(store, CallFilter(query="question")) == 12_001
        for i in (0, 4_999, 5_000, 5_001, 12_000):
            [found] = find_calls(store, CallFilter(query=f"number{i}"), 10)
            assert found.response_text == f"answer{i}"
        assert index_new_calls(store) == 0  # indexed once
        store.insert_calls([_record("question number12001", "late")])
        assert index_new_calls(store) == 1
