"""Streamed structured output: the JSON parsed so far, as the text arrives.

Streams do not re-ask: a reply that fails validation at the end raises StructuredOutputError,
whose ``response`` is the whole streamed Response.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._core.types import PartialOutput, Response
from .output import InvalidOutput, OutputSpec, give_up, json_text, judge

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from .._core.types import StreamEvent

_UNSET = object()


class PartialParser:
    """Feeds on text deltas; says when the partially parsed value has changed."""

    __slots__ = ("_last", "_spec", "_text")

    def __init__(self, spec: OutputSpec) -> None:
        self._spec = spec
        self._text = ""
        self._last: object = _UNSET

    def feed(self, text: str) -> PartialOutput | None:
        """A PartialOutput when the text so far parses to something new, else None."""
        from pydantic_core import from_json

        self._text += text
        try:
            value = from_json(json_text(self._text), allow_partial="trailing-strings")
        except ValueError:  # nothing parseable yet (or a closing fence arriving)
            return None
        if self._spec.wrapped and isinstance(value, dict):
            value = value.get("value", _UNSET)
        if value is _UNSET or value == self._last:
            return None
        self._last = value
        return PartialOutput(value)

    def finish(self, response: Response) -> Response:
        """The finished reply, validated; raises StructuredOutputError when it is not valid."""
        try:
            return judge(self._spec, response)
        except InvalidOutput as exc:
            raise give_up(response, exc.errors, 1) from None

    def events(self, events: Iterator[StreamEvent]) -> Iterator[StreamEvent]:
        """The events, each text delta followed by a PartialOutput when the value grew."""
        for event in events:
            yield event
            if event.type == "text":
                partial = self.feed(event.text)
                if partial is not None:
                    yield partial

    async def aevents(self, events: AsyncIterator[StreamEvent]) -> AsyncIterator[StreamEvent]:
        """The async twin of :meth:`events`."""
        async for event in events:
            yield event
            if event.type == "text":
                partial = self.feed(event.text)
                if partial is not None:
                    yield partial
