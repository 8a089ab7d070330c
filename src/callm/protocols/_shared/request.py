"""Checks the server codecs share when reading a caller's JSON body.

Each raises :class:`InvalidRequestError` naming the field (``messages[2].content``) and
what it should be, so a caller of the gateway learns what to fix.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..._core.errors import InvalidRequestError


def require_mapping(value: object, where: str) -> Mapping[str, object]:
    """``value`` when it is a JSON object."""
    if not isinstance(value, Mapping):
        raise InvalidRequestError(f"{where} must be a JSON object, not {_kind(value)}")
    return value


def require_list(value: object, where: str, what: str = "an array") -> list[object]:
    """``value`` when it is a JSON array."""
    if not isinstance(value, list):
        raise InvalidRequestError(f"{where} must be {what}, not {_kind(value)}")
    return value


def require_str(value: object, where: str, *, allow_empty: bool = False) -> str:
    """``value`` when it is a (non-empty, unless allowed) string."""
    if not isinstance(value, str):
        raise InvalidRequestError(f"{where} must be a string, not {_kind(value)}")
    if not value and not allow_empty:
        raise InvalidRequestError(f"{where} must not be empty")
    return value


def optional_str(value: object, where: str) -> str | None:
    if value is None:
        return None
    return require_str(value, where, allow_empty=True)


def optional_int(value: object, where: str, *, minimum: int = 0) -> int | None:
    """An integer field (a bool is not one), at least ``minimum``."""
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidRequestError(f"{where} must be an integer, not {_kind(value)}")
    if value < minimum:
        raise InvalidRequestError(f"{where} must be at least {minimum}")
    return value


def optional_float(value: object, where: str) -> float | None:
    """A number field (a bool is not one)."""
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise InvalidRequestError(f"{where} must be a number, not {_kind(value)}")
    return float(value)


def stop_sequences(value: object, where: str) -> tuple[str, ...] | None:
    """A stop sequence or a list of them."""
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    items = require_list(value, where, "a string or an array of strings")
    return tuple(require_str(s, f"{where}[{i}]", allow_empty=True) for i, s in enumerate(items))


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__
