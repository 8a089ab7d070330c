"""Reading the admin API's JSON: each field checked, each mistake named."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from .._core.errors import InvalidRequestError

LIMIT_FIELDS = (
    "models",
    "budget_usd",
    "budget_period",
    "rpm",
    "tpm",
    "max_parallel",
    "expires_at",
    "unknown_price",
)
KEY_FIELDS = ("name", *LIMIT_FIELDS)
_PERIOD = re.compile(r"^(\d+)\s*([smhdw])$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def period_seconds(period: str | None) -> float | None:
    """``"30d"`` → seconds; None for no period; InvalidRequestError for anything else."""
    if period is None:
        return None
    match = _PERIOD.match(period.strip())
    if match is None or int(match.group(1)) == 0:
        raise InvalidRequestError(
            f"budget_period {period!r} must be a count and a unit, like 30d, 7d, 24h or 1w"
        )
    return int(match.group(1)) * _SECONDS[match.group(2)]


def key_limit_fields(data: Mapping[str, Any]) -> dict[str, Any]:
    """The KeyLimits fields present in ``data``, checked and converted."""
    unknown = set(data) - set(KEY_FIELDS)
    if unknown:
        raise InvalidRequestError(
            f"unknown field(s) {', '.join(sorted(unknown))}; a key takes {', '.join(KEY_FIELDS)}"
        )
    fields: dict[str, object] = {}
    for name in LIMIT_FIELDS:
        if name in data:
            fields[name] = _CHECKS[name](data[name], name)
    return fields


def key_name(data: Mapping[str, object], default: str = "") -> str:
    name = data.get("name", default)
    if not isinstance(name, str) or len(name) > 200:
        raise InvalidRequestError("name must be a string of at most 200 characters")
    return name


def _models(value: Any, name: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise InvalidRequestError(f"{name} must be a list of model names or globs ('openai/*')")
    return tuple(value)


def _money(value: Any, name: str) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise InvalidRequestError(f'{name} must be an amount in USD, like "10" or 10.5')
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise InvalidRequestError(f"{name} must be an amount in USD, not {value!r}") from None
    if not amount.is_finite() or amount < 0:
        raise InvalidRequestError(f"{name} must be zero or more")
    return amount


def _period(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidRequestError(f"{name} must be a string like 30d, or null")
    period_seconds(value)
    return value.strip()


def _count(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidRequestError(f"{name} must be a whole number of at least 1, or null")
    return value


def _when(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            return when.timestamp()
    raise InvalidRequestError(
        f"{name} must be an ISO 8601 time ('2026-01-31T00:00:00Z') or Unix seconds"
    )


def _unknown_price(value: Any, name: str) -> str:
    if value not in ("refuse", "tokens_only"):
        raise InvalidRequestError(f"{name} must be 'refuse' or 'tokens_only'")
    return str(value)


_CHECKS = {
    "models": _models,
    "budget_usd": _money,
    "budget_period": _period,
    "rpm": _count,
    "tpm": _count,
    "max_parallel": _count,
    "expires_at": _when,
    "unknown_price": _unknown_price,
}
