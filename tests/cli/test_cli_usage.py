"""``callm usage`` end to end: real calls through the CLI, then the summary from the CLI."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import CallmProcess

from callm._store import CallRecord, Store
from callm.cli._output import money
from callm.cli._usage import parse_since
from callm.testing import FakeOpenAIServer, Fault, Reply

MODEL = "openai/gpt-4o-mini"


def call_json(callm_run: CallmProcess, *args: str) -> dict[str, Any]:
    result = callm_run("--json", *args)
    assert result.code == 0, result.stderr
    reported = json.loads(result.stdout)
    assert isinstance(reported, dict)
    return reported


def usage_json(callm_run: CallmProcess, *args: str) -> dict[str, Any]:
    result = callm_run("usage", "--json", *args)
    assert result.code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert isinstance(summary, dict)
    return summary


def table(output: str) -> dict[str, list[str]]:
    """The table's rows by key, each split on its column gaps (two spaces or more)."""
    lines = [line for line in output.splitlines()[1:] if not line.startswith("-")]
    rows = [re.split(r"\s{2,}", line.strip()) for line in lines]
    return {row[0]: row[1:] for row in rows}


def store_calls(home: Path, *records: CallRecord) -> None:
    with Store(home / "callm.db") as store:
        store.insert_calls(records)


def record(*, at: datetime, cost: str | None = "0.01", **fields: Any) -> CallRecord:
    """A call to acme/m1 of 10 input and 20 output tokens at ``at``, unless told otherwise."""
    values: dict[str, Any] = {"provider": "acme", "model": "m1", "request": {"messages": []}}
    values.update(input_tokens=10, output_tokens=20)
    values.update(fields)
    return CallRecord(**values, cost=None if cost is None else Decimal(cost), time=at)


def test_usage_sums_what_the_calls_reported(
    fake: FakeOpenAIServer, callm_run: CallmProcess
) -> None:
    fake.queue(Reply("A short one."), Reply("A somewhat longer answer, this one."))
    sent = [call_json(callm_run, "-m", MODEL, prompt) for prompt in ("first", "second question")]
    local = call_json(callm_run, "-m", "local/offline", "third")

    summary = usage_json(callm_run, "--by", "model")

    rows = {row["key"]: row for row in summary["rows"]}
    assert list(rows) == ["local/offline", MODEL]
    openai = rows[MODEL]
    assert openai["calls"] == 2
    assert openai["errors"] == 0
    assert openai["input_tokens"] == sum(s["usage"]["input_tokens"] for s in sent)
    assert openai["output_tokens"] == sum(s["usage"]["output_tokens"] for s in sent)
    assert Decimal(openai["cost"]) == sum(Decimal(s["cost"]) for s in sent)
    total = summary["total"]
    assert total["calls"] == 3
    assert total["output_tokens"] == openai["output_tokens"] + local["usage"]["output_tokens"]
    assert Decimal(total["cost"]) == Decimal(openai["cost"]) + Decimal(local["cost"])
    assert (summary["by"], summary["since"]) == ("model", None)


def test_the_table_has_a_row_per_key_and_a_total(
    fake: FakeOpenAIServer, callm_run: CallmProcess
) -> None:
    fake.queue(Reply("Yes."), Fault.context_length())
    sent = call_json(callm_run, "-m", MODEL, "ok?")
    assert callm_run("-m", MODEL, "too long").code == 1

    result = callm_run("usage", "--by", "provider")

    assert (result.code, result.stderr) == (0, "")
    heading = re.split(r"\s{2,}", result.stdout.splitlines()[0])
    assert heading == ["provider", "calls", "errors", "input tokens", "output tokens", "cost"]
    expected = [
        "2",
        "1",
        str(sent["usage"]["input_tokens"]),
        str(sent["usage"]["output_tokens"]),
        money(Decimal(sent["cost"])),
    ]
    assert table(result.stdout) == {"openai": expected, "total": expected}


def test_by_day_is_the_default_and_uses_utc_days(callm_run: CallmProcess, cli_home: Path) -> None:
    store_calls(
        cli_home,
        record(at=datetime(2025, 1, 1, 23, 30, tzinfo=UTC)),
        record(at=datetime(2025, 1, 2, 0, 30, tzinfo=UTC), cost="0.005"),
        record(
            at=datetime(2025, 1, 2, 12, 0, tzinfo=UTC),
            status="RateLimitError",
            cost=None,
            input_tokens=0,
            output_tokens=0,
        ),
    )

    rows = table(callm_run("usage").stdout)

    assert rows == {
        "2025-01-01": ["1", "0", "10", "20", "$0.01"],
        "2025-01-02": ["2", "1", "10", "20", "$0.005"],
        "total": ["3", "1", "20", "40", "$0.015"],
    }


def test_unpriced_calls_make_the_cost_a_lower_bound(
    callm_run: CallmProcess, cli_home: Path
) -> None:
    now = datetime.now(UTC)
    store_calls(
        cli_home,
        record(at=now, model="priced", cost="0.25"),
        record(at=now, model="mystery", cost="0.5"),
        record(at=now, model="mystery", cost=None, input_tokens=1_500_000),
    )

    rows = table(callm_run("usage", "--by", "model").stdout)
    summary = usage_json(callm_run, "--by", "model")

    assert rows["acme/priced"] == ["1", "0", "10", "20", "$0.25"]
    assert rows["acme/mystery"] == ["2", "0", "1,500,010", "40", "≥ $0.5 (1 unpriced)"]
    assert rows["total"] == ["3", "0", "1,500,020", "60", "≥ $0.75 (1 unpriced)"]
    mystery, priced = summary["rows"]
    assert (mystery["cost"], mystery["known_cost"], mystery["unpriced_calls"]) == (None, "0.5", 1)
    assert (priced["cost"], priced["known_cost"]) == ("0.25", "0.25")
    assert (summary["total"]["cost"], summary["total"]["known_cost"]) == (None, "0.75")


@pytest.mark.parametrize(
    ("since", "expected_calls"),
    [("3d", 1), ("7d", 2), ("2w", 3), ("2024-06-01", 4), ("2020-01-01", 5), ("1h", 0)],
)
def test_since_keeps_only_later_calls(
    callm_run: CallmProcess, cli_home: Path, since: str, expected_calls: int
) -> None:
    now = datetime.now(UTC)
    store_calls(
        cli_home,
        *(record(at=now - timedelta(days=days)) for days in (2, 5, 10)),
        record(at=datetime(2024, 6, 1, tzinfo=UTC)),
        record(at=datetime(2024, 5, 31, 23, 59, tzinfo=UTC)),
    )

    summary = usage_json(callm_run, "--since", since)

    assert summary["total"]["calls"] == expected_calls
    assert sum(row["calls"] for row in summary["rows"]) == expected_calls
    assert datetime.fromisoformat(summary["since"]) <= now


def test_an_empty_log_says_so(callm_run: CallmProcess, cli_home: Path) -> None:
    result = callm_run("usage")
    assert (result.code, result.stderr) == (0, "")
    assert result.stdout == f"No calls logged in {cli_home / 'callm.db'}.\n"
    assert not (cli_home / "callm.db").exists()
    summary = usage_json(callm_run)
    assert summary["rows"] == []
    assert summary["total"]["calls"] == 0


def test_nothing_since_then_says_so(callm_run: CallmProcess, cli_home: Path) -> None:
    store_calls(cli_home, record(at=datetime(2024, 1, 1, tzinfo=UTC)))
    result = callm_run("usage", "--since", "2025-01-01")
    assert result.stdout.startswith("No calls logged since 2025-01-01T00:00:00+00:00 in ")


def test_no_log_calls_are_not_counted(callm_run: CallmProcess) -> None:
    assert callm_run("-m", "local/offline", "counted").code == 0
    assert callm_run("--no-log", "-m", "local/offline", "not counted").code == 0
    assert usage_json(callm_run)["total"]["calls"] == 1


@pytest.mark.parametrize("since", ["yesterday", "7", "3x", "2025-13-01"])
def test_a_bad_since_is_a_usage_error(callm_run: CallmProcess, since: str) -> None:
    result = callm_run("usage", "--since", since)
    assert result.code == 2
    assert "Invalid value for '--since'" in result.stderr


def test_parse_since_reads_ages_dates_and_times() -> None:
    now = datetime(2025, 5, 10, 12, 0, tzinfo=UTC)
    assert parse_since("24h", now=now) == datetime(2025, 5, 9, 12, 0, tzinfo=UTC)
    assert parse_since("7d", now=now) == datetime(2025, 5, 3, 12, 0, tzinfo=UTC)
    assert parse_since("30m", now=now) == datetime(2025, 5, 10, 11, 30, tzinfo=UTC)
    assert parse_since("2025-05-01", now=now) == datetime(2025, 5, 1, tzinfo=UTC)
    stamp = "2025-05-01T08:00:00+02:00"
    assert parse_since(stamp, now=now) == datetime(2025, 5, 1, 6, 0, tzinfo=UTC)
