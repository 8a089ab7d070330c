"""What a call takes: the messages, the tools and the optional parameters, as users pass them.

These are the shapes the public methods accept; :mod:`callm._features.messages` turns them
into callm's own types.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TypeAlias, TypedDict

from .options import ResponseFormat, ToolChoice
from .timeouts import Timeout
from .types import Message, Tool

MessagesInput: TypeAlias = (
    str | Message | Mapping[str, object] | Sequence[Message | Mapping[str, object]]
)
# A callm Tool, an OpenAI-style dict, or a plain Python function (see callm.tool).
ToolInput: TypeAlias = Tool | Mapping[str, object] | Callable[..., object]


class CallParams(TypedDict, total=False):
    """The optional parameters of a chat call (keyword-only everywhere)."""

    system: str | None
    max_tokens: int
    temperature: float
    top_p: float
    top_k: int
    stop: str | Sequence[str]
    seed: int
    n: int
    user: str
    tools: Sequence[ToolInput]
    # A mode ("auto", "none", "required"), a tool's name, OpenAI's dict, or a ToolChoice.
    tool_choice: str | Mapping[str, object] | ToolChoice
    # OpenAI's dict ({"type": "json_object"}, {"type": "json_schema", …}) or a ResponseFormat.
    response_format: Mapping[str, object] | ResponseFormat
    extra_body: Mapping[str, object]
    extra_headers: Mapping[str, str]
    timeout: float | Timeout | None
    max_retries: int
    # Prompt caching: True places breakpoints / a derived key; a string is the cache key.
    cache: bool | str
    # Structured output: a pydantic model, dataclass, TypedDict or JSON-schema dict.
    output: object
    output_retries: int
    # Policies of one call: its tags (for budgets, the log), whether it is logged, and
    # whether the client's response cache may answer it.
    tags: Mapping[str, str]
    log: bool
    response_cache: bool
    # The conversation a call belongs to, kept in the call log (conversations set it).
    conversation_id: str
