"""callm's one fast JSON loader and its compact encoder.

Every reply body and every stream event goes through :func:`loads`, so it skips what
``json.loads`` does on each call (type checks, building a decoder) and runs the C scanner
``json.loads`` itself uses; anything unusual falls back to ``json.loads``, whose error says
what is wrong.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

__all__ = ["dumps", "loads"]

# Compact, and UTF-8 as it is (no \\u escapes): what every provider is sent.
dumps: Callable[[object], str] = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_loads = json.loads
_scan_once: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def loads(text: str) -> Any:
    """``json.loads(text)``, faster; surrounding whitespace is allowed (some servers pad)."""
    try:
        value, end = _scan_once(text, 0)
    except StopIteration:
        return _loads(text)  # leading whitespace, or not JSON: json.loads decides
    if end == len(text) or not text[end:].strip():
        return value
    return _loads(text)  # trailing garbage: let json say so
