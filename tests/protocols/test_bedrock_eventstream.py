"""AWS's binary event stream, decoded sans-I/O: frames cut anywhere, CRCs checked.

The frames come from the fake's encoder (``callm.testing._aws_wire``), written apart from
the decoder with ``struct`` and ``zlib``; the header-type cases are packed by hand here.
"""

from __future__ import annotations

import json
import struct
import zlib

import pytest

from callm.protocols._shared.sse import SSEEvent
from callm.protocols.bedrock.eventstream import (
    EventStreamDecoder,
    EventStreamError,
    decode_headers,
)
from callm.testing._aws_wire import event_frame, exception_frame, frame

TEXT = event_frame("contentBlockDelta", {"delta": {"text": "héllo ✓"}, "contentBlockIndex": 0})
STOP = event_frame("messageStop", {"stopReason": "end_turn"})


def decoded(frames: bytes, cuts: list[int]) -> list[SSEEvent]:
    decoder = EventStreamDecoder()
    events: list[SSEEvent] = []
    start = 0
    for cut in [*cuts, len(frames)]:
        events += decoder.feed(frames[start:cut])
        start = cut
    events += decoder.close()
    return events


def test_one_frame_is_one_event_named_by_its_event_type() -> None:
    (event,) = decoded(TEXT, [])
    assert event.event == "contentBlockDelta"
    assert json.loads(event.data)["delta"] == {"text": "héllo ✓"}


def test_frames_split_at_every_byte_boundary_decode_the_same() -> None:
    stream = TEXT + STOP + TEXT
    whole = decoded(stream, [])
    assert [e.event for e in whole] == ["contentBlockDelta", "messageStop", "contentBlockDelta"]
    for cut in range(1, len(stream)):
        assert decoded(stream, [cut]) == whole, cut


def test_one_byte_at_a_time_decodes_the_same() -> None:
    stream = TEXT + STOP
    assert decoded(stream, list(range(1, len(stream)))) == decoded(stream, [])


def test_a_frame_cut_off_at_the_end_is_pending_not_decoded() -> None:
    decoder = EventStreamDecoder()
    assert decoder.feed(TEXT + STOP[:-5]) != []
    assert decoder.pending == STOP[:-5]
    assert decoder.close() == []


def test_a_wrong_prelude_crc_is_refused() -> None:
    broken = bytearray(TEXT)
    broken[8] ^= 0xFF
    with pytest.raises(EventStreamError, match="prelude CRC"):
        EventStreamDecoder().feed(bytes(broken))


def test_a_wrong_message_crc_is_refused() -> None:
    broken = bytearray(TEXT)
    broken[-10] ^= 0x01  # one bit of the payload
    with pytest.raises(EventStreamError, match="message's CRC"):
        EventStreamDecoder().feed(bytes(broken))


def test_an_impossible_length_is_refused_before_buffering_it() -> None:
    prelude = struct.pack(">II", 2**31, 0)
    with pytest.raises(EventStreamError, match="corrupt"):
        EventStreamDecoder().feed(prelude + struct.pack(">I", zlib.crc32(prelude)))


def test_an_exception_message_is_marked_as_one() -> None:
    (event,) = decoded(exception_frame("throttlingException", "Too many requests"), [])
    assert event.event == "exception:throttlingException"
    assert json.loads(event.data) == {"message": "Too many requests"}


def test_an_error_message_carries_its_code_and_message_in_headers() -> None:
    headers = {":message-type": "error", ":error-code": "InternalFailure", ":error-message": "oops"}
    (event,) = decoded(frame(headers, b""), [])
    assert event.event == "exception:InternalFailure"
    assert json.loads(event.data) == {"message": "oops"}


def _header(name: str, kind: int, value: bytes) -> bytes:
    return struct.pack(">B", len(name)) + name.encode() + struct.pack(">B", kind) + value


def test_every_header_type_is_read() -> None:
    block = b"".join(
        (
            _header("t", 0, b""),
            _header("f", 1, b""),
            _header("b", 2, struct.pack(">b", -2)),
            _header("s", 3, struct.pack(">h", -300)),
            _header("i", 4, struct.pack(">i", 70000)),
            _header("l", 5, struct.pack(">q", 2**40)),
            _header("y", 6, struct.pack(">H", 3) + b"\x00\x01\x02"),
            _header("str", 7, struct.pack(">H", 2) + b"ok"),
            _header("ts", 8, struct.pack(">q", 1_700_000_000_000)),
            _header("u", 9, bytes(range(16))),
        )
    )
    assert decode_headers(block) == {
        "t": True,
        "f": False,
        "b": -2,
        "s": -300,
        "i": 70000,
        "l": 2**40,
        "y": b"\x00\x01\x02",
        "str": "ok",
        "ts": 1_700_000_000_000,
        "u": bytes(range(16)),
    }


def test_a_header_cut_short_is_refused() -> None:
    with pytest.raises(EventStreamError, match="header"):
        decode_headers(_header("str", 7, struct.pack(">H", 9) + b"ok"))
