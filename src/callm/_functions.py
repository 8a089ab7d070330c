"""Tools from Python functions: the signature, type hints and docstring become a schema.

(Being built: see the tools issue.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def tool(
    function: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    description: str | None = None,
) -> Any:
    """A Tool made from ``function`` (also usable as a decorator)."""
    raise NotImplementedError
