"""Conversations: a history kept across calls and fitted to the model's context window.

(Being built: see the conversations issue.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._client import AsyncClient, Client


class Conversation:
    def __init__(self, client: Client, model: str | None, **options: Any) -> None:
        raise NotImplementedError


class AsyncConversation:
    def __init__(self, client: AsyncClient, model: str | None, **options: Any) -> None:
        raise NotImplementedError
