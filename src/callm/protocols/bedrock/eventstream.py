"""AWS's binary event stream (``application/vnd.amazon.eventstream``), decoded sans-I/O.

Bedrock's ConverseStream sends its events in this framing instead of SSE. Each message is::

    total length (uint32) · headers length (uint32) · prelude CRC32 (uint32)
    headers · payload · message CRC32 (uint32)

all big-endian; each header is a name (uint8 length, UTF-8), a type byte and a typed value.
:class:`EventStreamDecoder` is fed bytes cut anywhere and returns the messages they complete,
checking both CRCs, as :class:`~callm.protocols._shared.sse.SSEDecoder` does for SSE; it
hands them on as :class:`SSEEvent` values so a protocol's stream decoder reads either framing
alike: ``event`` is the ``:event-type`` header (``contentBlockDelta`` …), or
``exception:<type>`` for an exception or error message, and ``data`` the payload text.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Callable, Mapping

from ..._core.errors import APIResponseError
from .._shared.sse import SSEEvent

CONTENT_TYPE = "application/vnd.amazon.eventstream"
EXCEPTION = "exception:"
_PRELUDE = 12
_CRC = 4
_MIN_MESSAGE = _PRELUDE + _CRC
# botocore's limits: a message past them is not one this decoder should buffer.
_MAX_HEADERS = 128 * 1024
_MAX_MESSAGE = 24 * 1024 * 1024 + _MAX_HEADERS + _MIN_MESSAGE

HeaderValue = bool | int | bytes | str
# header type byte -> (fixed size or None for length-prefixed, reader)
_FIXED: Mapping[int, tuple[int, Callable[[bytes], HeaderValue]]] = {
    2: (1, lambda b: struct.unpack(">b", b)[0]),
    3: (2, lambda b: struct.unpack(">h", b)[0]),
    4: (4, lambda b: struct.unpack(">i", b)[0]),
    5: (8, lambda b: struct.unpack(">q", b)[0]),
    8: (8, lambda b: struct.unpack(">q", b)[0]),  # a timestamp, in epoch milliseconds
    9: (16, bytes),  # a UUID
}


class EventStreamError(APIResponseError):
    """The event stream's framing is broken: a CRC that does not match, a length past limits."""


class EventStreamDecoder:
    """Feed bytes in, get complete messages out (as :class:`SSEEvent`); bytes may be cut
    anywhere, even inside the prelude."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = bytearray()

    @property
    def pending(self) -> bytes:
        """Bytes of a message whose end has not arrived."""
        return bytes(self._buffer)

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Decode one network chunk; return the events of the messages it completed."""
        buffer = self._buffer
        buffer += chunk
        events: list[SSEEvent] = []
        start = 0
        while len(buffer) - start >= _PRELUDE:
            total = _check_prelude(buffer, start)
            if len(buffer) - start < total:
                break
            events.append(_message(memoryview(buffer)[start : start + total]))
            start += total
        if start:
            del buffer[:start]
        return events

    def close(self) -> list[SSEEvent]:
        """End of stream. A message cut off is not decoded: the caller sees the stream end
        before the reply finished."""
        self._buffer.clear()
        return []


def _check_prelude(buffer: bytearray, start: int) -> int:
    total, headers = struct.unpack_from(">II", buffer, start)
    crc = struct.unpack_from(">I", buffer, start + 8)[0]
    if zlib.crc32(memoryview(buffer)[start : start + 8]) != crc:
        raise EventStreamError("the event stream is corrupt: a message's prelude CRC is wrong")
    if total < _MIN_MESSAGE or total > _MAX_MESSAGE or headers > min(_MAX_HEADERS, total):
        raise EventStreamError(
            f"the event stream is corrupt: a message of {total} bytes with {headers} bytes of "
            "headers"
        )
    return int(total)


def _message(message: memoryview) -> SSEEvent:
    total = len(message)
    crc = struct.unpack_from(">I", message, total - _CRC)[0]
    if zlib.crc32(message[: total - _CRC]) != crc:
        raise EventStreamError("the event stream is corrupt: a message's CRC is wrong")
    headers_length = struct.unpack_from(">I", message, 4)[0]
    headers = decode_headers(bytes(message[_PRELUDE : _PRELUDE + headers_length]))
    payload = bytes(message[_PRELUDE + headers_length : total - _CRC])
    return _event(headers, payload)


def decode_headers(data: bytes) -> dict[str, HeaderValue]:
    """The headers block of one message."""
    headers: dict[str, HeaderValue] = {}
    at = 0
    try:
        while at < len(data):
            size = data[at]
            name = data[at + 1 : at + 1 + size].decode()
            at += 1 + size
            kind = data[at]
            at += 1
            value, at = _header_value(data, at, kind)
            headers[name] = value
    except (IndexError, struct.error, UnicodeDecodeError):
        raise EventStreamError("the event stream is corrupt: a header is cut short") from None
    return headers


def _header_value(data: bytes, at: int, kind: int) -> tuple[HeaderValue, int]:
    if kind in (0, 1):
        return kind == 0, at
    fixed = _FIXED.get(kind)
    if fixed is not None:
        size, read = fixed
        if at + size > len(data):
            raise IndexError(at)
        return read(data[at : at + size]), at + size
    if kind in (6, 7):
        (length,) = struct.unpack_from(">H", data, at)
        raw = data[at + 2 : at + 2 + length]
        if len(raw) != length:
            raise IndexError(at)
        return (raw.decode() if kind == 7 else raw), at + 2 + length
    raise EventStreamError(f"the event stream is corrupt: unknown header type {kind}")


def _event(headers: Mapping[str, HeaderValue], payload: bytes) -> SSEEvent:
    text = payload.decode("utf-8", "replace")
    kind = headers.get(":message-type")
    if kind == "exception":
        return SSEEvent(text, EXCEPTION + str(headers.get(":exception-type") or "exception"))
    if kind == "error":
        # A service-level failure: its code and message travel as headers, not a payload.
        message = str(headers.get(":error-message") or text or "")
        data = json.dumps({"message": message})
        return SSEEvent(data, EXCEPTION + str(headers.get(":error-code") or "error"))
    return SSEEvent(text, str(headers.get(":event-type") or "message"))
