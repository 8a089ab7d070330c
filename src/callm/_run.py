"""Client.run(): call the model, execute the tools it asks for, repeat until it answers.

(Being built: see the tools issue.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._messages import MessagesInput
from ._types import Response, ToolCall

if TYPE_CHECKING:
    from ._client import AsyncClient, CallParams, Client


def run_tools(
    client: Client,
    model: str | None,
    messages: MessagesInput,
    params: CallParams,
    *,
    max_steps: int,
    approve: Callable[[ToolCall], Any] | None,
) -> Response:
    raise NotImplementedError


async def run_tools_async(
    client: AsyncClient,
    model: str | None,
    messages: MessagesInput,
    params: CallParams,
    *,
    max_steps: int,
    approve: Callable[[ToolCall], Any] | None,
) -> Response:
    raise NotImplementedError


class RunStream:
    def __init__(self, client: Client, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError


class AsyncRunStream:
    def __init__(self, client: AsyncClient, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError
