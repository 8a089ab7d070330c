"""An incremental Server-Sent Events decoder following the WHATWG event-stream rules.

Bytes may arrive split anywhere — inside a line, between a CR and its LF, or inside a
multi-byte UTF-8 character — and the events produced are the same however the stream is cut.

Work is linear in the size of the stream: each chunk is scanned once, and an unfinished
line is kept as a list of pieces joined only when its line ending arrives, so one huge
event sent in many small chunks costs no more than the same bytes sent at once.

Two departures from the specification, both shared with the official SDKs' readers:

- an event still pending when the body ends is dispatched by :meth:`SSEDecoder.close`
  rather than dropped, so a final event whose blank line never came is not lost;
- a JSON value written without ``data:`` framing — a line starting with ``{`` or ``[``,
  on one line or pretty-printed over several, as Gemini and Vertex send an error that
  strikes mid-stream — is read whole (brackets counted outside strings) and dispatched as
  one event, where the specification would ignore its lines as unknown fields.
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
    """Feed bytes in, get complete events out; ``close()`` at EOF gives the pending one."""

    __slots__ = (
        "_data",
        "_event",
        "_id",
        "_line",
        "_raw",
        "_raw_state",
        "_retry",
        "_skip_lf",
        "_started",
        "_utf8",
    )

    def __init__(self) -> None:
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._line: list[str] = []  # pieces of the line whose ending has not arrived
        self._started = False
        self._skip_lf = False
        self._data: list[str] = []
        self._event = ""
        self._id: str | None = None
        self._retry: int | None = None
        self._raw: list[str] | None = None  # lines of an un-framed JSON value being read
        self._raw_state = (0, False, False)  # bracket depth, inside a string, after a "\\"

    @property
    def last_event_id(self) -> str | None:
        return self._id

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Decode one network chunk; return the events it completed."""
        text = self._utf8.decode(chunk)
        if not text:
            return []
        if not self._started:
            self._started = True
            if text[0] == "\ufeff":
                text = text[1:]
        if self._skip_lf:
            self._skip_lf = False
            if text[:1] == "\n":
                text = text[1:]
        if "\r" in text:
            # A CR at the very end may be the first half of a CRLF split across chunks:
            # the line ends here, and an LF starting the next chunk must be skipped.
            self._skip_lf = text[-1] == "\r"
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        elif "\n" not in text:
            if text:
                self._line.append(text)
            return []
        lines = text.split("\n")
        if self._line:
            self._line.append(lines[0])
            lines[0] = "".join(self._line)
            self._line = []
        tail = lines.pop()
        if tail:
            self._line.append(tail)
        return self._process(lines)

    def _process(self, lines: list[str]) -> list[SSEEvent]:
        events: list[SSEEvent] = []
        data = self._data
        for line in lines:
            if line[:6] == "data: ":  # the common case, first
                data.append(line[6:])
            elif self._raw is not None or line[:1] in _JSON_START:
                self._raw_line(line, events)
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

    def _raw_line(self, line: str, events: list[SSEEvent]) -> None:
        """One line of an un-framed JSON value: dispatched once its brackets balance."""
        if self._raw is None:
            self._raw = []
        self._raw.append(line)
        self._raw_state = state = _json_depth(line, self._raw_state)
        if state[0] <= 0:
            events.append(self._dispatch_raw())

    def _dispatch_raw(self) -> SSEEvent:
        text = "\n".join(self._raw or ())
        self._raw, self._raw_state = None, (0, False, False)
        return SSEEvent(text, "message", self._id, self._retry)

    def _dispatch(self) -> SSEEvent:
        data, event = self._data, self._event
        self._data, self._event = [], ""
        text = data[0] if len(data) == 1 else "\n".join(data)
        return SSEEvent(text, event or "message", self._id, self._retry)

    @property
    def pending(self) -> str:
        """Text of an unfinished line still waiting for its line ending."""
        return "".join(self._line)

    def close(self) -> list[SSEEvent]:
        """End of stream: the last line ends here, and a pending event is dispatched."""
        tail = self._utf8.decode(b"", final=True)
        if tail:
            self._line.append(tail)
        lines = [self.pending, ""] if self._line else [""]
        self._line = []
        events = self._process(lines)
        if self._raw:  # a JSON value cut off: what arrived goes on, to be found unreadable
            events.append(self._dispatch_raw())
        return events


_JSON_START = ("{", "[")


def _json_depth(line: str, state: tuple[int, bool, bool]) -> tuple[int, bool, bool]:
    """Bracket depth after ``line``, counting only brackets outside JSON strings."""
    depth, in_string, escaped = state
    for char in line:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "{[":
            depth += 1
        elif char in "}]":
            depth -= 1
    return depth, in_string, escaped
