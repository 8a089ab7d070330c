"""The fake's Google Gemini (``/v1beta/models/{model}:generateContent``) routes."""

from __future__ import annotations

from typing import Any

from ._state import ServerState


def register(add: Any, state: ServerState) -> None:
    """Add this protocol's routes to the fake server's application."""
    del add, state
