"""callm's one fast JSON loader and its compact encoder.

Every reply body and every stream event goes through :func:`loads`, so it skips what
``json.loads`` does on each call (type checks, building a decoder) and runs the C scanner
``json.loads`` itself uses; anything unusual falls back to ``json.loads``, whose error says
what is wrong.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, TypeVar, overload

__all__ = [
    "as_list",
    "as_object",
    "dumps",
    "get_int",
    "get_list",
    "get_object",
    "get_str",
    "loads",
]

# Compact, and UTF-8 as it is (no \\u escapes): what every provider is sent. NaN and the
# infinities raise ValueError: JSON has no such numbers, and a server would refuse the body.
dumps: Callable[[object], str] = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), allow_nan=False
).encode
_loads = json.loads
_scan_once: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def loads(text: str) -> object:
    """``json.loads(text)``, faster; surrounding whitespace is allowed (some servers pad)."""
    try:
        value, end = _scan_once(text, 0)
    except StopIteration:
        return _loads(text)  # leading whitespace, or not JSON: json.loads decides
    if end == len(text) or not text[end:].strip():
        return value
    return _loads(text)  # trailing garbage: let json say so


# --- reading decoded JSON ----------------------------------------------------------------
# A decoded value is an ``object`` until it is checked. These read one field of a JSON object
# as the type the caller needs, or a default when it is missing or of another type: a
# provider's odd answer is then an empty value, never a TypeError deep in a decoder. They
# return what they read, never a copy.

_NO_OBJECT: Mapping[str, object] = MappingProxyType({})
_D = TypeVar("_D")


def as_object(value: object) -> Mapping[str, object] | None:
    """``value`` if it is a JSON object, else None."""
    return value if isinstance(value, dict) else None


def as_list(value: object) -> Sequence[object]:
    """``value`` if it is a JSON array, else an empty one."""
    return value if isinstance(value, list) else ()


def get_object(data: Mapping[str, object], key: str) -> Mapping[str, object]:
    """``data[key]`` if it is a JSON object, else an empty (read-only) one."""
    value = data.get(key)
    return value if isinstance(value, dict) else _NO_OBJECT


def get_list(data: Mapping[str, object], key: str) -> Sequence[object]:
    """``data[key]`` if it is a JSON array, else an empty one."""
    value = data.get(key)
    return value if isinstance(value, list) else ()


@overload
def get_str(data: Mapping[str, object], key: str) -> str: ...
@overload
def get_str(data: Mapping[str, object], key: str, default: _D) -> str | _D: ...
def get_str(data: Mapping[str, object], key: str, default: object = "") -> object:
    """``data[key]`` if it is a string, else ``default`` (``""`` unless given)."""
    value = data.get(key)
    return value if isinstance(value, str) else default


@overload
def get_int(data: Mapping[str, object], key: str) -> int: ...
@overload
def get_int(data: Mapping[str, object], key: str, default: _D) -> int | _D: ...
def get_int(data: Mapping[str, object], key: str, default: object = 0) -> object:
    """``data[key]`` if it is an integer (true and false are not), else ``default`` (0)."""
    value = data.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else default
