"""Token counts read from a provider's usage object, whatever type they arrive as.

Some servers send counts as text (``"prompt_tokens": "12"``) or as floats: those are read.
A count that is no number of tokens at all is refused with a clear error, never passed on to
fail later as a TypeError in the cost.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ..._core.errors import APIResponseError

_EMPTY: Mapping[str, Any] = {}


def tokens(values: Mapping[str, Any], name: str) -> int:
    """The count ``values[name]`` (0 when absent)."""
    value = values.get(name)
    if type(value) is int and value >= 0:
        return value
    if value is None:
        return 0
    number = _read(value)
    if number is None:
        raise APIResponseError(
            f"the provider's usage has {name}={str(value)[:80]!r}, which is not a number of tokens"
        )
    return number


def _read(value: object) -> int | None:
    if isinstance(value, str):
        text = value.strip()
        return int(text) if text.isdigit() else None
    if isinstance(value, float) and math.isfinite(value) and value >= 0 and value.is_integer():
        return int(value)
    return None


def details(values: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """A nested details object (``prompt_tokens_details`` …), empty when absent or not one."""
    found = values.get(name)
    return found if isinstance(found, Mapping) else _EMPTY
