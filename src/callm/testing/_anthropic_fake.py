"""The fake's Anthropic Messages (``POST /v1/messages``) routes."""

from __future__ import annotations

from typing import Any

from ._state import ServerState


def register(add: Any, state: ServerState) -> None:
    """Add this protocol's routes to the fake server's application."""
    del add, state
