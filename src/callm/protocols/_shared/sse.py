"""An incremental Server-Sent Events decoder following the WHATWG event-stream rules.

Bytes may arrive split anywhere — inside a line, between a CR and its LF, or inside a
multi-byte UTF-8 character — and the events produced are the same however the stream is cut.
"""

from __future__ import annotations

import codecs
from typing import NamedTuple


class SSEEvent(NamedTuple):
    """One dispatched event: its type (``message`` by default), data, last id and retry."""

    data: str
    event: str = "message"
    id: str | None = None
    retry: int | None = None


class SSEDecoder:
    """Feed bytes in, get complete events out. ``close()`` at EOF drops an unfinished event."""

    __slots__ = ("_buffer", "_data", "_event", "_id", "_retry", "_skip_lf", "_started", "_utf8")

    def __init__(self) -> None:
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buffer = ""
        self._started = False
        self._skip_lf = False
        self._data: list[str] = []
        self._event = ""
        self._id: str | None = None
        self._retry: int | None = None

    @property
    def last_event_id(self) -> str | None:
        return self._id

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Decode one network chunk; return the events it completed."""
        text = self._utf8.decode(chunk)
        if not self._started and text:
            self._started = True
            if text[0] == "\ufeff":
                text = text[1:]
        if self._skip_lf and text:
            self._skip_lf = False
            if text[0] == "\n":
                text = text[1:]
        if not text:
            return []
        buffer = self._buffer + text
        if "\r" in buffer:
            return self._feed_lines_with_cr(buffer)
        *lines, self._buffer = buffer.split("\n")
        return self._process(lines)

    def _feed_lines_with_cr(self, buffer: str) -> list[SSEEvent]:
        # A CR at the very end may be the first half of a CRLF split across chunks:
        # the line ends here, and an LF starting the next chunk must be skipped.
        if buffer.endswith("\r"):
            self._skip_lf = True
            buffer += "\n"
        lines = buffer.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        self._buffer = lines.pop()
        return self._process(lines)

    def _process(self, lines: list[str]) -> list[SSEEvent]:
        events: list[SSEEvent] = []
        data = self._data
        for line in lines:
            if line[:6] == "data: ":  # the common case, first
                data.append(line[6:])
            elif not line:
                if data:
                    events.append(self._dispatch())
                    data = self._data
                else:
                    self._event = ""
            elif line[0] != ":":
                self._field(line)
        return events

    def _field(self, line: str) -> None:
        name, colon, value = line.partition(":")
        if colon and value[:1] == " ":
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self._id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self._retry = int(value)
        elif name == "error":
            # Not a WHATWG field: llama.cpp servers of 2025 send mid-stream errors as an
            # `error:` line. Surfacing it as an "error" event beats silently dropping it.
            self._data.append(value)
            self._event = "error"

    def _dispatch(self) -> SSEEvent:
        data, event = self._data, self._event
        self._data, self._event = [], ""
        text = data[0] if len(data) == 1 else "\n".join(data)
        return SSEEvent(text, event or "message", self._id, self._retry)

    def close(self) -> list[SSEEvent]:
        """End of stream: per the spec, an event not ended by a blank line is discarded."""
        self._utf8.decode(b"", final=True)
        self._buffer = ""
        self._data, self._event = [], ""
        return []
