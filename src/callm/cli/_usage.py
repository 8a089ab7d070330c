"""``callm usage``: calls, errors, tokens and spend by day, model or provider."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar, cast

import click

from .._config.settings import Settings
from .._store import SummaryKey, UsageRow
from ._calldb import empty_log_message, existing_store
from ._group import debug_option
from ._output import dumps, money

F = TypeVar("F", bound=Callable[..., Any])
_AGO = re.compile(r"(\d+)([mhdw])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_HEADINGS = ("calls", "errors", "input tokens", "output tokens", "cost")


def moment_option(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    """A ``--since`` / ``--before`` value as a UTC moment."""
    # A callback rather than a ParamType: ParamType is generic only from click 8.2 on.
    if value is None:
        return None
    try:
        return parse_since(value, now=datetime.now(UTC))
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a date (2025-01-31) nor an age (24h, 7d, 2w)"
        ) from None


def since_option(help: str) -> Callable[[F], F]:
    """A ``--since DATE|AGE`` option with this help text."""
    return click.option("--since", callback=moment_option, metavar="DATE|AGE", help=help)


def parse_since(text: str, *, now: datetime) -> datetime:
    """The UTC moment ``text`` names: an age before ``now``, or a date or time (naive: UTC)."""
    ago = _AGO.fullmatch(text.strip())
    if ago:
        return now - timedelta(**{_UNITS[ago[2]]: int(ago[1])})
    moment = datetime.fromisoformat(text.strip())
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


@click.command("usage", short_help="Show calls, tokens and cost by day, model or provider.")
@click.option(
    "--by",
    type=click.Choice(["day", "model", "provider"]),
    default="day",
    show_default=True,
    help="Group by UTC day, provider/model or provider.",
)
@since_option("Only calls since then: 2025-01-31, 24h, 7d.")
@click.option("--json", "as_json", is_flag=True, help="Print the rows and the total as JSON.")
@debug_option
def usage_command(by: str, since: datetime | None, as_json: bool) -> None:
    """Show calls, errors, tokens and cost from the call log, with a total.

    Cost is exact where prices are known; a row with calls of unknown price shows
    "≥ $X (N unpriced)", never an understated total.

    \b
    Examples:
      callm usage                        by UTC day
      callm usage --by model --since 30d
      callm usage --by provider --json | jq .total.cost
    """
    settings = Settings()
    with existing_store(settings) as store:
        rows = [] if store is None else store.usage_summary(cast(SummaryKey, by), since)
    if as_json:
        click.echo(dumps(usage_json(rows, by=by, since=since)))
    elif not rows:
        click.echo(empty_log_message(settings, "calls logged" + _since_words(since)))
    else:
        click.echo(usage_table(rows, by))


def _since_words(since: datetime | None) -> str:
    return "" if since is None else f" since {since.isoformat(timespec='seconds')}"


def total(rows: Sequence[UsageRow]) -> UsageRow:
    """The sum of ``rows`` as one row keyed ``total``."""
    return UsageRow(
        "total",
        sum(r.calls for r in rows),
        sum(r.errors for r in rows),
        sum(r.cached_calls for r in rows),
        sum(r.input_tokens for r in rows),
        sum(r.output_tokens for r in rows),
        sum((r.known_cost for r in rows), Decimal(0)),
        sum(r.unpriced_calls for r in rows),
    )


def cost_cell(row: UsageRow) -> str:
    """``$X``, or ``≥ $X (N unpriced)`` when some calls have no known price."""
    if row.cost is not None:
        return money(row.cost)
    return f"≥ {money(row.known_cost)} ({row.unpriced_calls} unpriced)"


def usage_table(rows: Sequence[UsageRow], by: str) -> str:
    """An aligned text table of ``rows`` and their total: the key left, numbers right."""
    cells = [(by, *_HEADINGS)] + [_cells(r) for r in (*rows, total(rows))]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    lines = [_line(row, widths) for row in cells]
    lines.insert(-1, "-" * len(lines[0]))
    return "\n".join(line.rstrip() for line in lines)


def _line(cells: Sequence[str], widths: Sequence[int]) -> str:
    key = cells[0].ljust(widths[0])
    numbers = [cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True)]
    return "  ".join([key, *numbers])


def _cells(row: UsageRow) -> tuple[str, ...]:
    counts = (row.calls, row.errors, row.input_tokens, row.output_tokens)
    return (row.key, *(f"{n:,}" for n in counts), cost_cell(row))


def usage_json(rows: Sequence[UsageRow], *, by: str, since: datetime | None) -> dict[str, object]:
    """The summary for machines: every row, the total, and what it was grouped by."""
    return {
        "by": by,
        "since": None if since is None else since.isoformat(),
        "rows": [row_json(r) for r in rows],
        "total": row_json(total(rows)),
    }


def row_json(row: UsageRow) -> dict[str, object]:
    """One row with its amounts as exact strings (``cost`` is null when some are unpriced)."""
    return {
        "key": row.key,
        "calls": row.calls,
        "errors": row.errors,
        "cached_calls": row.cached_calls,
        "input_tokens": row.input_tokens,
        "output_tokens": row.output_tokens,
        "cost": None if row.cost is None else str(row.cost),
        "known_cost": str(row.known_cost),
        "unpriced_calls": row.unpriced_calls,
    }
