"""``callm logs`` end to end: real calls through the CLI, then the log read back by the CLI."""

from __future__ import annotations

import json
from dataclasses import fields
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import CallmProcess

from callm._store import CallRecord, Store
from callm.cli._output import money
from callm.testing import FakeOpenAIServer, FakeToolCall, Fault, Reply

MODEL = "openai/gpt-4o-mini"


def call_json(callm_run: CallmProcess, *args: str) -> dict[str, Any]:
    """Make one call with --json and return what the CLI reported about it."""
    result = callm_run("--json", *args)
    assert result.code == 0, result.stderr
    reported = json.loads(result.stdout)
    assert isinstance(reported, dict)
    return reported


def logged(callm_run: CallmProcess, *args: str) -> list[dict[str, Any]]:
    result = callm_run("logs", "--json", *args)
    assert result.code == 0, result.stderr
    records = json.loads(result.stdout)
    assert isinstance(records, list)
    return records


def header_of(output: str) -> str:
    [header] = [line for line in output.splitlines() if line.startswith("# ")]
    return header


def test_a_call_is_shown_with_its_prompt_reply_tokens_and_cost(
    fake: FakeOpenAIServer, callm_run: CallmProcess
) -> None:
    fake.queue(Reply("Hello there, friend."))
    sent = call_json(callm_run, "-m", MODEL, "-s", "Be terse.", "Say hello")

    result = callm_run("logs")

    assert (result.code, result.stderr) == (0, "")
    header = header_of(result.stdout)
    usage = sent["usage"]
    for piece in (
        MODEL,
        " ok ",
        f"{usage['input_tokens']} in / {usage['output_tokens']} out tokens",
        money(Decimal(sent["cost"])),
        "streamed",
        sent["request_id"],
    ):
        assert piece in header
    assert "\n## System\nBe terse.\n" in result.stdout
    assert "\n## Prompt\nSay hello\n" in result.stdout
    assert result.stdout.endswith("\n## Reply\nHello there, friend.\n")


def test_json_holds_every_field_of_the_record(
    fake: FakeOpenAIServer, callm_run: CallmProcess
) -> None:
    fake.queue(Reply("Four."))
    sent = call_json(callm_run, "-m", MODEL, "--no-stream", "-o", "temperature=0.5", "2+2?")

    [record] = logged(callm_run)

    assert set(record) == {f.name for f in fields(CallRecord)}
    assert (record["provider"], record["model"]) == ("openai", "gpt-4o-mini")
    assert record["response_text"] == sent["text"] == "Four."
    for name in ("input_tokens", "output_tokens", "cached_input_tokens", "reasoning_tokens"):
        assert record[name] == sent["usage"][name]
    assert record["cost"] == sent["cost"]
    assert isinstance(record["cost"], str)
    assert Decimal(record["cost"]) > 0
    assert (record["status"], record["error"], record["streamed"]) == ("ok", None, False)
    assert record["request_id"] == sent["request_id"]
    assert record["request"]["messages"] == [
        {"role": "user", "content": [{"kind": "text", "text": "2+2?"}]}
    ]
    assert record["request"]["parameters"] == {"temperature": 0.5}
    assert datetime.fromisoformat(record["time"]).tzinfo is not None


def test_the_latest_n_calls_are_shown_oldest_first(callm_run: CallmProcess) -> None:
    for word in ("one", "two", "three", "four"):
        assert callm_run("-m", "local/offline", word).code == 0

    assert [prompt_of(r) for r in logged(callm_run)] == ["two", "three", "four"]
    assert [prompt_of(r) for r in logged(callm_run, "-n", "1")] == ["four"]
    assert [prompt_of(r) for r in logged(callm_run, "-n", "0")] == ["one", "two", "three", "four"]
    shown = callm_run("logs", "-n", "2").stdout
    assert shown.index("## Prompt\nthree\n") < shown.index("## Prompt\nfour\n")
    assert "## Prompt\ntwo\n" not in shown


def prompt_of(record: dict[str, Any]) -> str:
    [message] = record["request"]["messages"]
    text = message["content"][0]["text"]
    assert isinstance(text, str)
    return text


def test_model_filters_by_model_or_provider_slash_model(
    fake: FakeOpenAIServer, callm_run: CallmProcess
) -> None:
    fake.queue(Reply("from openai"))
    assert callm_run("-m", MODEL, "to openai").code == 0
    assert callm_run("-m", "local/offline", "to local").code == 0

    assert [r["response_text"] for r in logged(callm_run, "-m", MODEL)] == ["from openai"]
    assert [prompt_of(r) for r in logged(callm_run, "-m", "offline")] == ["to local"]
    result = callm_run("logs", "-m", "openai/other")
    assert result.stdout.startswith("No calls logged for openai/other in ")


def test_no_log_leaves_the_call_out(callm_run: CallmProcess) -> None:
    assert callm_run("-m", "local/offline", "kept").code == 0
    result = callm_run("--no-log", "-m", "local/offline", "forgotten")
    assert result.code == 0
    assert "forgotten" in result.stdout

    assert [prompt_of(r) for r in logged(callm_run, "-n", "0")] == ["kept"]


def test_callm_log_0_turns_logging_off(
    callm_run: CallmProcess, cli_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CALLM_LOG", "0")
    assert callm_run("-m", "local/offline", "unlogged").code == 0

    result = callm_run("logs")

    assert result.code == 0
    assert result.stdout == (
        f"No calls logged in {cli_home / 'callm.db'}. Logging is off: CALLM_LOG is set to 0.\n"
    )


def test_an_empty_log_says_so_and_creates_nothing(callm_run: CallmProcess, cli_home: Path) -> None:
    result = callm_run("logs")
    assert (result.code, result.stderr) == (0, "")
    assert result.stdout == f"No calls logged in {cli_home / 'callm.db'}.\n"
    assert not (cli_home / "callm.db").exists()
    assert logged(callm_run) == []


def test_a_failed_call_shows_its_error(fake: FakeOpenAIServer, callm_run: CallmProcess) -> None:
    fake.queue(Fault.unauthorized())
    assert callm_run("-m", MODEL, "who am I").code == 1

    result = callm_run("logs")
    [record] = logged(callm_run)

    assert record["status"] not in ("ok", None)
    assert record["error"]
    assert f" {record['status']} " in header_of(result.stdout)
    assert f"\n## Error\n{record['status']}: {record['error']}" in result.stdout
    assert "## Reply" not in result.stdout


def test_tool_calls_are_shown(fake: FakeOpenAIServer, callm_run: CallmProcess) -> None:
    fake.queue(Reply(tool_calls=[FakeToolCall("get_weather", {"city": "Oslo"})]))
    assert callm_run("-m", MODEL, "weather in Oslo?").code == 0

    result = callm_run("logs")

    assert '\n## Tool calls\nget_weather({"city": "Oslo"})' in result.stdout


def test_unpriced_and_cached_calls_are_marked(
    callm_run: CallmProcess, cli_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A POSIX TZ rule needs no zoneinfo files: nine hours east of UTC.
    monkeypatch.setenv("TZ", "JST-9")
    when = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)
    record = CallRecord(
        provider="acme",
        model="mystery-1",
        request={"messages": [{"role": "user", "content": [{"kind": "text", "text": "hi"}]}]},
        response_text="hello",
        input_tokens=1234,
        output_tokens=5,
        latency_s=1.5,
        cached=True,
        time=when,
    )
    with Store(cli_home / "callm.db") as store:
        store.insert_call(record)

    header = header_of(callm_run("logs").stdout)

    assert header == (
        "# 2025-03-04T14:06:07+09:00 · acme/mystery-1 · ok · 1,234 in / 5 out tokens"
        f" · cost unknown · 1.50s · cached · id {record.id}"
    )


def test_other_message_parts_and_earlier_turns_are_summarised(
    callm_run: CallmProcess, cli_home: Path
) -> None:
    def text(role: str, value: str) -> dict[str, Any]:
        return {"role": role, "content": [{"kind": "text", "text": value}]}

    image = {"kind": "image", "url": "https://example.com/cat.png"}
    messages = [
        text("user", "hello"),
        text("assistant", "hi!"),
        {"role": "user", "content": [{"kind": "text", "text": "what is this? "}, image]},
    ]
    with Store(cli_home / "callm.db") as store:
        store.insert_call(CallRecord(provider="p", model="m", request={"messages": messages}))

    output = callm_run("logs").stdout

    assert "\n## Prompt (after 2 earlier messages)\nwhat is this? [image]\n" in output
