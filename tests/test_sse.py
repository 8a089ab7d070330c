"""The incremental SSE decoder against the WHATWG event-stream rules (PROTOCOLS §7).

Unit tests pin each rule; property tests check that chunking never changes the events and
that the decoder agrees with a small, independent whole-text reference implementation.
"""

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callm.protocols._shared.sse import SSEDecoder, SSEEvent

BOM = "\ufeff".encode()


def decode_all(*chunks: bytes) -> list[SSEEvent]:
    decoder = SSEDecoder()
    events: list[SSEEvent] = []
    for chunk in chunks:
        events.extend(decoder.feed(chunk))
    events.extend(decoder.close())
    return events


def decode_bytewise(stream: bytes) -> list[SSEEvent]:
    return decode_all(*(stream[i : i + 1] for i in range(len(stream))))


# --- line endings -----------------------------------------------------------------------


@pytest.mark.parametrize("eol", ["\n", "\r", "\r\n"], ids=["LF", "CR", "CRLF"])
def test_every_line_ending_style_frames_events(eol: str) -> None:
    stream = f"data: one{eol}{eol}data: two{eol}data: three{eol}{eol}".encode()
    expected = [SSEEvent("one"), SSEEvent("two\nthree")]
    assert decode_all(stream) == expected
    assert decode_bytewise(stream) == expected


def test_mixed_line_endings_in_one_stream() -> None:
    stream = b"data: a\r\ndata: b\rdata: c\n\r\ndata: d\r\r"
    assert decode_all(stream) == [SSEEvent("a\nb\nc"), SSEEvent("d")]


def test_crlf_split_across_chunks_is_one_line_ending() -> None:
    # Were the CR and the LF counted as two line endings, the LF would be a blank line and
    # dispatch "a" on its own.
    events = decode_all(b"data: a\r", b"\ndata: b\r\n\r\n")
    assert events == [SSEEvent("a\nb")]


def test_cr_at_chunk_end_then_cr_is_two_line_endings() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\r") == [SSEEvent("a")]


def test_cr_then_lf_split_by_an_empty_chunk() -> None:
    events = decode_all(b"data: a\r", b"", b"\n", b"data: b\r\n", b"\r\n")
    assert events == [SSEEvent("a\nb")]


def test_cr_then_lf_split_across_a_partial_utf8_chunk() -> None:
    # The chunk after the CR holds only the first byte of "é": it decodes to nothing and
    # must not make the decoder forget the pending CR.
    e_acute = "é".encode()
    events = decode_all(b"data: a\r", e_acute[:1], e_acute[1:] + b"\n\n")
    # "é" starts a new line (a field named "é"), the LF ends it, the next LF dispatches "a".
    assert events == [SSEEvent("a")]


def test_lone_lf_after_cr_pair_in_later_chunk_is_blank_line() -> None:
    # CR LF (one ending) then another LF: a blank line that dispatches.
    events = decode_all(b"data: a\r", b"\n", b"\n")
    assert events == [SSEEvent("a")]


# --- fields -----------------------------------------------------------------------------


def test_comments_are_ignored() -> None:
    stream = b": OPENROUTER PROCESSING\n\n:keep-alive\ndata: x\n: in the middle\ndata: y\n\n"
    assert decode_all(stream) == [SSEEvent("x\ny")]


def test_comment_only_stream_dispatches_nothing() -> None:
    assert decode_all(b": ping\n\n: ping\n\n") == []


def test_multiline_data_joined_with_newline() -> None:
    assert decode_all(b'data: {\ndata: "a": 1\ndata: }\n\n') == [SSEEvent('{\n"a": 1\n}')]


def test_event_type_set_and_reset_after_dispatch() -> None:
    stream = b"event: message_start\ndata: 1\n\ndata: 2\n\nevent:\ndata: 3\n\n"
    assert decode_all(stream) == [
        SSEEvent("1", event="message_start"),
        SSEEvent("2", event="message"),
        SSEEvent("3", event="message"),
    ]


def test_id_persists_across_events() -> None:
    stream = b"id: 7\ndata: a\n\ndata: b\n\nid: 8\ndata: c\n\n"
    events = decode_all(stream)
    assert [(e.data, e.id) for e in events] == [("a", "7"), ("b", "7"), ("c", "8")]


def test_id_without_event_still_sets_last_event_id() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"id: 42\n\n") == []
    assert decoder.last_event_id == "42"
    assert decoder.feed(b"data: x\n\n") == [SSEEvent("x", id="42")]


def test_id_containing_nul_is_ignored() -> None:
    stream = b"id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n"
    events = decode_all(stream)
    assert [e.id for e in events] == ["1", "1"]


def test_empty_id_resets_last_event_id() -> None:
    events = decode_all(b"id: 1\ndata: a\n\nid\ndata: b\n\n")
    assert [e.id for e in events] == ["1", ""]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("retry: 3000", 3000),
        ("retry:15", 15),
        ("retry: 10a", None),
        ("retry: -1", None),
        ("retry: 1.5", None),
        ("retry: ", None),
        ("retry: \u0661\u0662", None),  # Arabic-Indic digits are not ASCII digits
        ("retry:  5", None),  # only one leading space is stripped; " 5" is not all digits
    ],
)
def test_retry_accepts_only_ascii_digits(line: str, expected: int | None) -> None:
    events = decode_all(f"{line}\ndata: x\n\n".encode())
    assert events == [SSEEvent("x", retry=expected)]


def test_retry_persists_and_invalid_value_keeps_previous() -> None:
    events = decode_all(b"retry: 100\ndata: a\n\nretry: x\ndata: b\n\n")
    assert [e.retry for e in events] == [100, 100]


def test_one_leading_space_stripped_from_value() -> None:
    stream = b"data:nospace\n\ndata: one\n\ndata:  two\n\ndata:\tthree\n\n"
    assert [e.data for e in decode_all(stream)] == ["nospace", "one", " two", "\tthree"]


def test_value_keeps_later_colons() -> None:
    assert decode_all(b'data: {"a": "b:c"}\n\n') == [SSEEvent('{"a": "b:c"}')]


def test_data_without_colon_appends_empty_line() -> None:
    assert decode_all(b"data\ndata: x\n\n") == [SSEEvent("\nx")]


def test_bare_data_line_dispatches_empty_string() -> None:
    # The data buffer is "\n" (not empty), so an event fires with data "" (WHATWG step 2/3).
    assert decode_all(b"data\n\n") == [SSEEvent("")]
    assert decode_all(b"data:\n\n") == [SSEEvent("")]


def test_field_name_with_trailing_space_is_ignored() -> None:
    assert decode_all(b"data : x\n\n") == []


def test_unknown_fields_ignored() -> None:
    assert decode_all(b"foo: bar\nDATA: x\ndata: y\n\n") == [SSEEvent("y")]


def test_blank_line_without_data_dispatches_nothing() -> None:
    assert decode_all(b"event: ping\n\n\n\n") == []
    # ... and the event type does not leak into the next event.
    assert decode_all(b"event: ping\n\ndata: x\n\n") == [SSEEvent("x")]


# --- BOM --------------------------------------------------------------------------------


def test_leading_bom_dropped() -> None:
    assert decode_all(BOM + b"data: x\n\n") == [SSEEvent("x")]


def test_leading_bom_split_across_chunks_dropped() -> None:
    stream = BOM + b"data: x\n\n"
    assert decode_bytewise(stream) == [SSEEvent("x")]


def test_only_first_bom_dropped() -> None:
    # The second BOM becomes part of the field name "\ufeffdata", which is ignored.
    assert decode_all(BOM + BOM + b"data: x\n\n") == []


def test_bom_later_in_stream_not_dropped() -> None:
    assert decode_all(b"data: a\n\n", BOM + b"data: b\n\n") == [SSEEvent("a")]


def test_bom_after_empty_first_chunk_still_dropped() -> None:
    assert decode_all(b"", BOM + b"data: x\n\n") == [SSEEvent("x")]


# --- EOF and chunking ---------------------------------------------------------------------


@pytest.mark.parametrize("tail", [b"data: x", b"data: x\n", b"data: x\r", b"data: x\r\n"])
def test_event_pending_at_eof_is_dispatched(tail: bytes) -> None:
    # Unlike the WHATWG rule (discard), and like the SDKs' readers: a final event whose
    # blank line never came still counts.
    decoder = SSEDecoder()
    assert decoder.feed(b"data: first\n\n" + tail) == [SSEEvent("first")]
    assert decoder.close() == [SSEEvent("x")]
    assert decoder.close() == []  # once


def test_eof_after_a_dispatched_event_adds_nothing() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"event: a\ndata: 1\n\nevent: b\n") == [SSEEvent("1", event="a")]
    assert decoder.close() == []  # an event type alone is no event


def test_pending_line_reports_the_unfinished_line() -> None:
    decoder = SSEDecoder()
    decoder.feed(b"data: one\ndata: tw")
    assert decoder.pending == "data: tw"
    decoder.feed(b"o\n")
    assert decoder.pending == ""
    assert decoder.close() == [SSEEvent("one\ntwo")]


def test_huge_event_in_small_chunks_decodes_whole() -> None:
    # 4 MiB in 1 KiB chunks: every piece is kept (the speed is measured in bench/, the
    # linear bookkeeping is checked below).
    payload = "x" * (4 * 1024 * 1024)
    stream = ("data: " + payload + "\n\n").encode()
    decoder = SSEDecoder()
    events: list[SSEEvent] = []
    for count, start in enumerate(range(0, len(stream) - 1024, 1024), 1):
        events += decoder.feed(stream[start : start + 1024])
        # The unfinished line is kept as pieces, not re-joined (and re-scanned) per chunk.
        assert len(decoder._line) == count
    events += decoder.feed(stream[start + 1024 :])
    assert [len(e.data) for e in events] == [len(payload)]
    assert events[0].data == payload


def test_huge_event_split_into_lines_and_crlf_chunks() -> None:
    lines = [f"data: {i:07d}" + "y" * 1000 for i in range(3000)]
    stream = ("\r\n".join(lines) + "\r\n\r\n").encode()
    chunks = [stream[i : i + 777] for i in range(0, len(stream), 777)]
    events = decode_all(*chunks)
    assert len(events) == 1
    assert events[0].data.split("\n") == [line[6:] for line in lines]


# --- un-framed JSON (Gemini / Vertex errors mid-stream) -----------------------------------


def test_unframed_json_line_is_one_event() -> None:
    error = '{"error": {"code": 429, "message": "Exhausted", "status": "RESOURCE_EXHAUSTED"}}'
    stream = b'data: {"a": 1}\r\n\r\n' + error.encode() + b"\n"
    assert [e.data for e in decode_all(stream)] == ['{"a": 1}', error]


def test_pretty_printed_unframed_json_is_read_whole() -> None:
    body = (
        '[{\n  "error": {\n    "code": 503,\n    "message": "a } and a { in text",\n'
        '    "status": "UNAVAILABLE"\n  }\n}\n]'
    )
    stream = b'data: {"a": 1}\n\n' + body.encode() + b'\ndata: {"b": 2}\n\n'
    whole = decode_all(stream)
    assert [e.data for e in whole] == ['{"a": 1}', body, '{"b": 2}']
    assert decode_bytewise(stream) == whole


def test_unframed_json_cut_off_goes_out_at_eof() -> None:
    assert decode_all(b'{\n  "error": {\n') == [SSEEvent('{\n  "error": {\n')]


def test_multibyte_characters_split_anywhere() -> None:
    text = 'data: {"t": "é 日本 🎉"}\n\n'
    stream = text.encode()
    expected = [SSEEvent('{"t": "é 日本 🎉"}')]
    for cut in range(len(stream) + 1):
        assert decode_all(stream[:cut], stream[cut:]) == expected, cut
    assert decode_bytewise(stream) == expected


def test_events_returned_by_the_chunk_that_completes_them() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n") == []
    assert decoder.feed(b"\ndata: b\n\ndata: c") == [SSEEvent("a"), SSEEvent("b")]
    assert decoder.feed(b"\n\n") == [SSEEvent("c")]


def test_openai_style_stream() -> None:
    stream = (
        b'data: {"choices":[{"delta":{"content":"Hel"}}]}\n\n'
        b": keep-alive\n\n"
        b'data: {"choices":[{"delta":{"content":"lo"}}]}\n\n'
        b"data: [DONE]\n\n"
    )
    assert [e.data for e in decode_all(stream)] == [
        '{"choices":[{"delta":{"content":"Hel"}}]}',
        '{"choices":[{"delta":{"content":"lo"}}]}',
        "[DONE]",
    ]


def test_invalid_utf8_is_replaced_not_raised() -> None:
    assert decode_all(b"data: a\xffb\n\n") == [SSEEvent("a\ufffdb")]


# --- reference implementation and property tests ---------------------------------------


def reference_decode(stream: bytes) -> list[SSEEvent]:
    """The WHATWG algorithm applied to the whole text at once, written independently."""
    text = stream.decode("utf-8", errors="replace")
    if text.startswith("\ufeff"):
        text = text[1:]
    # Split into lines; the end of the body ends the last line, and a pending event is
    # dispatched at EOF (callm's rule, like the SDKs', where WHATWG would discard it).
    lines = [*re.split(r"\r\n|\r|\n", text), ""]
    events: list[SSEEvent] = []
    data = ""
    event_type = ""
    last_id: str | None = None
    retry: int | None = None
    for line in lines:
        if line == "":
            if data == "":
                event_type = ""
                continue
            data = data.removesuffix("\n")
            events.append(SSEEvent(data, event_type or "message", last_id, retry))
            data, event_type = "", ""
            continue
        if line.startswith(":"):
            continue
        if ":" in line:
            index = line.index(":")
            name, value = line[:index], line[index + 1 :]
            if value.startswith(" "):
                value = value[1:]
        else:
            name, value = line, ""
        if name == "data":
            data += value + "\n"
        elif name == "event":
            event_type = value
        elif name == "id":
            if "\x00" not in value:
                last_id = value
        elif name == "retry" and value and all(c in "0123456789" for c in value):
            retry = int(value)
    return events


VALUE_PIECES = [
    "a",
    "Z",
    "0",
    "42",
    "\u0663",
    "-",
    " ",
    ":",
    "é",
    "日本",
    "🎉",
    "\x00",
    "[DONE]",
    '{"k":1}',
]
values = st.lists(st.sampled_from(VALUE_PIECES), max_size=5).map("".join)
field_names = st.sampled_from(["data", "data", "data", "event", "id", "retry", "foo", "data "])


@st.composite
def field_lines(draw: st.DrawFn) -> str:
    name = draw(field_names)
    if name == "retry" and draw(st.booleans()):
        tricky = st.sampled_from(["\u0663", "\u0661\u0662", "1a", "-1", "1.5", "", " 7"])
        return f"retry: {draw(st.one_of(st.integers(0, 10**6).map(str), tricky))}"
    form = draw(st.sampled_from(["colon_space", "colon", "bare"]))
    value = draw(values)
    if form == "bare":
        return name
    return f"{name}: {value}" if form == "colon_space" else f"{name}:{value}"


lines = st.one_of(
    field_lines(),
    field_lines(),
    st.just(""),  # blank line: dispatch
    values.map(lambda v: ":" + v),  # comment
)
line_endings = st.sampled_from(["\n", "\r", "\r\n"])


@st.composite
def event_streams(draw: st.DrawFn) -> bytes:
    parts: list[str] = []
    for line in draw(st.lists(lines, max_size=25)):
        parts.append(line + draw(line_endings))
    text = "".join(parts)
    if draw(st.booleans()):
        text += draw(line_endings)  # often end with a blank line
    if draw(st.booleans()):
        text += draw(field_lines())  # an unterminated tail
    raw = text.encode()
    if draw(st.integers(0, 4)) == 0:
        raw = BOM + raw
    return raw


@st.composite
def streams_and_cuts(draw: st.DrawFn) -> tuple[bytes, list[int]]:
    stream = draw(event_streams())
    cuts = draw(st.lists(st.integers(0, len(stream)), max_size=12))
    return stream, sorted(cuts)


def split_at(stream: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *cuts, len(stream)]
    return [stream[a:b] for a, b in itertools.pairwise(bounds)]


@settings(max_examples=200, deadline=None)
@given(streams_and_cuts())
def test_any_chunking_gives_the_same_events(case: tuple[bytes, list[int]]) -> None:
    stream, cuts = case
    whole = decode_all(stream)
    assert decode_all(*split_at(stream, cuts)) == whole
    assert decode_bytewise(stream) == whole


@settings(max_examples=200, deadline=None)
@given(event_streams())
def test_matches_reference_implementation(stream: bytes) -> None:
    assert decode_all(stream) == reference_decode(stream)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.sampled_from([b"data: ", b"\xe6", b"\x97\xa5", b"\xff", b"\xf0\x9f", b"x", b"\n"]),
        max_size=20,
    ),
    st.lists(st.integers(0, 60), max_size=8),
)
def test_invalid_and_truncated_utf8_chunking_invariant(
    pieces: list[bytes], cuts: list[int]
) -> None:
    stream = b"".join(pieces) + b"\n\n"
    cuts = sorted(c for c in cuts if c <= len(stream))
    expected = reference_decode(stream)
    assert decode_all(stream) == expected
    assert decode_all(*split_at(stream, cuts)) == expected


# --- the official SDKs' own stream cases (openai-python, anthropic-sdk-python) -------------


def test_sdk_case_multiple_data_lines_with_empty_line() -> None:
    chunks = [b"event: ping\n", b"data: {\n", b'data: "foo":\n', b"data: \n", b"data:\n"]
    chunks += [b"data: true}\n", b"\n\n"]
    assert decode_all(*chunks) == [SSEEvent('{\n"foo":\n\n\ntrue}', event="ping")]


def test_sdk_case_escaped_double_new_line_stays_in_the_json() -> None:
    chunks = [b"event: ping\n", b'data: {"foo": "my long\\n\\ncontent"}', b"\n\n"]
    assert decode_all(*chunks) == [SSEEvent('{"foo": "my long\\n\\ncontent"}', event="ping")]


def test_sdk_case_line_separator_is_not_a_line_ending() -> None:
    # U+2028 inside the JSON must not split the line (str.splitlines would).
    chunks = [b'data: {"content":" culpa"}\n', b"\n", b'data: {"content":" \xe2\x80\xa8"}\n', b"\n"]
    assert [e.data for e in decode_all(*chunks)] == [
        '{"content":" culpa"}',
        '{"content":" \u2028"}',
    ]


def test_sdk_case_multibyte_characters_across_chunks() -> None:
    chunks = [b'data: {"content":"', b"\xd0", b"\xb8\xd0\xb7\xd0"]
    chunks += [b"\xb2\xd0\xb5\xd1\x81\xd1\x82\xd0\xbd\xd0\xb8", b'"}\n', b"\n"]
    assert decode_all(*chunks) == [SSEEvent('{"content":"известни"}')]


@pytest.mark.parametrize("ending", [b"\n", b"\r", b"\r\n"], ids=["LF", "CR", "CRLF"])
def test_sdk_case_every_chunk_boundary(ending: bytes) -> None:
    frame = b"data:ok" + ending + ending
    for split in range(len(frame) + 1):
        assert decode_all(frame[:split], b"", frame[split:]) == [SSEEvent("ok")], split


def test_sdk_case_many_complete_events_in_one_chunk() -> None:
    assert decode_all(b"data:ok\n\n" * 2000) == [SSEEvent("ok")] * 2000


def test_sdk_case_large_legitimate_events() -> None:
    value = "x" * (2 * 1024 * 1024) + "известни\u2028"
    frame = ("data:" + value + "\r\n\r\n").encode()
    assert decode_all(*(frame[i : i + 4093] for i in range(0, len(frame), 4093))) == [
        SSEEvent(value)
    ]
    assert decode_all(b"data:x\n" * 10000 + b"\n") == [SSEEvent("\n".join(["x"] * 10000))]


@pytest.mark.parametrize("line", [b":x\n", b"ignored:x\n"])
def test_sdk_case_ignored_lines_are_dropped_as_they_come(line: bytes) -> None:
    decoder = SSEDecoder()
    for _ in range(10000):
        assert decoder.feed(line) == []
    assert decoder.pending == "" and decoder._data == []
    assert decoder.feed(b"data:ok\n\n") == [SSEEvent("ok")]


def test_sdk_case_mixed_endings_and_eof() -> None:
    frame = "id:one\r\ndata:известни\r\n\ndata:two\n\rdata:unfinished".encode()
    events = decode_all(*(frame[i : i + 1] for i in range(len(frame))))
    # openai-python drops the unfinished last event; callm keeps it (see the module notes).
    assert [(e.data, e.id) for e in events] == [
        ("известни", "one"),
        ("two", "one"),
        ("unfinished", "one"),
    ]
