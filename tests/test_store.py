"""The SQLite store: migrations, the call log table, spend, the cache, redaction."""

from __future__ import annotations

import base64
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callm import (
    Document,
    Image,
    Message,
    RateLimitError,
    RawPart,
    Reasoning,
    Request,
    Response,
    StreamInterruptedError,
    Text,
    Tool,
    ToolCall,
    Usage,
)
from callm._store import (
    MIGRATIONS,
    CallRecord,
    Store,
    applied,
    migrate,
    new_id,
    redact_json,
    redact_text,
)
from callm._store._redact import redacted_json_text

# Fake keys shaped like real ones, assembled here so no key-shaped literal sits in the tree.
OPENAI_KEY = "sk-proj-" + "FakeTestKey0" * 4 + "_-abcd"
ANTHROPIC_KEY = "sk-ant-api03-" + "FakeTestKey1" * 4 + "-QQQQ"
GOOGLE_KEY = "AIza" + "SyFakeTestKey2" + "x" * 21
AZURE_KEY = "0123456789abcdef0123456789abcdef"
PNG = bytes(range(256)) * 40  # 10,240 bytes of "image"


def at(day: int, hour: int = 12) -> datetime:
    return datetime(2025, 3, day, hour, tzinfo=UTC)


def record(**kw: object) -> CallRecord:
    fields: dict[str, object] = {
        "provider": "openai",
        "model": "gpt-4o-mini",
        "request": {"messages": [{"role": "user", "content": [{"kind": "text", "text": "hi"}]}]},
        "response_text": "hello",
        "input_tokens": 10,
        "output_tokens": 5,
        "cost": Decimal("0.000004500"),
    }
    fields.update(kw)
    return CallRecord(**fields)  # type: ignore[arg-type]


def raw_bytes(path: Path) -> bytes:
    """Everything SQLite has on disk for ``path``: the file, the WAL and the shared memory."""
    files = [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]
    return b"".join(f.read_bytes() for f in files if f.exists())


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "t.db") as s:
        yield s


# -- opening and migrations --------------------------------------------------------------


def test_default_path_is_in_callm_home_and_uses_wal(isolated_env: Path) -> None:
    with Store() as s:
        assert s.path == isolated_env / "callm.db"
        assert (isolated_env / "callm.db").is_file()
    db = sqlite3.connect(isolated_env / "callm.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()


def test_every_migration_is_recorded_once_in_order(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    Store(path).close()
    Store(path).close()  # reopening applies nothing twice
    db = sqlite3.connect(path, isolation_level=None)
    assert applied(db) == [m.__name__ for m in MIGRATIONS]
    assert migrate(db) == []
    db.close()


def test_migration_names_are_numbered_and_unique() -> None:
    names = [m.__name__ for m in MIGRATIONS]
    assert len(set(names)) == len(names)
    assert [int(n[1:4]) for n in names] == list(range(1, len(names) + 1))


def test_an_old_database_is_upgraded_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old = sqlite3.connect(path, isolation_level=None)
    assert migrate(old, MIGRATIONS[:1]) == ["m001_calls"]
    old.execute(
        "INSERT INTO calls (id, time, provider, model, request, response, status, cost) "
        "VALUES ('old-1', '2024-01-02T03:04:05.000000+00:00', 'openai', 'gpt-4', "
        "'{\"messages\": []}', 'from the past', 'ok', '0.25')"
    )
    old.close()

    with Store(path) as s:
        assert applied(s._db) == [m.__name__ for m in MIGRATIONS]
        (kept,) = s.recent_calls()
        assert (kept.id, kept.response_text, kept.cost) == (
            "old-1",
            "from the past",
            Decimal("0.25"),
        )
        assert kept.time == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
        s.add_spend("team", Decimal("1.5"))  # the newer tables exist and work
        assert s.spend("team") == Decimal("1.5")


def test_a_failing_migration_changes_nothing(tmp_path: Path) -> None:
    def m005_broken(db: sqlite3.Connection) -> None:
        db.execute("ALTER TABLE calls ADD COLUMN extra TEXT")
        raise RuntimeError("boom")

    db = sqlite3.connect(tmp_path / "f.db", isolation_level=None)
    migrate(db)
    with pytest.raises(RuntimeError, match="boom"):
        migrate(db, [*MIGRATIONS, m005_broken])
    columns = [row[1] for row in db.execute("PRAGMA table_info(calls)")]
    assert "extra" not in columns
    assert "m005_broken" not in applied(db)
    db.close()


@pytest.mark.parametrize("attempt", range(5))
def test_several_stores_opening_a_new_file_at_once_migrate_it_once(
    tmp_path: Path, attempt: int
) -> None:
    # Opening a new file races on creating it, switching it to WAL and migrating it.
    path = tmp_path / f"race{attempt}.db"
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def open_store() -> None:
        try:
            start.wait()
            Store(path).close()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    db = sqlite3.connect(path, isolation_level=None)
    assert applied(db) == [m.__name__ for m in MIGRATIONS]
    db.close()


# -- the calls table ---------------------------------------------------------------------


def test_a_record_round_trips_with_python_types(store: Store) -> None:
    rec = record(
        tool_calls=({"id": "c1", "name": "f", "arguments": {"x": 1}},),
        finish_reason="tool_calls",
        cached_input_tokens=3,
        cache_write_tokens=2,
        reasoning_tokens=7,
        latency_s=0.25,
        ttft_s=0.125,
        request_id="req_1",
        conversation_id="conv-9",
        tags={"app": "demo"},
        streamed=True,
        time=datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
    )
    store.insert_call(rec)
    assert store.recent_calls() == [rec]


def test_record_ids_are_unique_and_time_ordered() -> None:
    ids = [new_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 32 for i in ids)
    assert [i[:16] for i in ids] == sorted(i[:16] for i in ids)


def test_inserting_the_same_record_twice_keeps_one_row(store: Store) -> None:
    rec = record()
    assert store.insert_calls([rec]) == 1
    assert store.insert_calls([rec, record()]) == 1
    assert len(store.recent_calls(10)) == 2


def test_time_is_stored_as_utc_iso_text(store: Store) -> None:
    paris = timezone(timedelta(hours=1))
    store.insert_call(record(id="x", time=datetime(2025, 6, 1, 12, 0, tzinfo=paris)))
    (stored,) = store._db.execute("SELECT time FROM calls").fetchone()
    assert stored == "2025-06-01T11:00:00.000000+00:00"


def test_recent_calls_newest_first_with_limit_and_model_filter(store: Store) -> None:
    store.insert_calls(
        [
            record(id="a", time=at(1), model="gpt-4o"),
            record(id="b", time=at(3), provider="anthropic", model="claude-x"),
            record(id="c", time=at(2), model="gpt-4o"),
            record(id="d", time=at(4), model="gpt-4o-mini"),
        ]
    )
    assert [r.id for r in store.recent_calls()] == ["d", "b", "c", "a"]
    assert [r.id for r in store.recent_calls(2)] == ["d", "b"]
    assert [r.id for r in store.recent_calls(model="gpt-4o")] == ["c", "a"]
    assert [r.id for r in store.recent_calls(model="anthropic/claude-x")] == ["b"]
    assert store.recent_calls(model="openai/claude-x") == []


def test_usage_summary_by_day_model_and_provider(store: Store) -> None:
    store.insert_calls(
        [
            record(time=at(1, 9), input_tokens=100, output_tokens=10, cost=Decimal("0.1")),
            record(time=at(1, 23), input_tokens=200, output_tokens=20, cost=Decimal("0.2")),
            record(
                time=at(2), provider="anthropic", model="claude-x", input_tokens=1000,
                output_tokens=100, cost=Decimal("0.000000001"),
            ),
            # A cache hit: no provider tokens or cost, whatever the original call used.
            record(time=at(2), input_tokens=999, output_tokens=999, cached=True),
            # A failure before any token: free, not unpriced.
            record(time=at(2), input_tokens=0, output_tokens=0, cost=None,
                   status="RateLimitError"),
        ]
    )  # fmt: skip
    by_day = {r.key: r for r in store.usage_summary("day")}
    assert list(by_day) == ["2025-03-01", "2025-03-02"]
    first, second = by_day["2025-03-01"], by_day["2025-03-02"]
    assert (first.calls, first.input_tokens, first.output_tokens) == (2, 300, 30)
    assert first.cost == Decimal("0.3")  # exact: 0.1 + 0.2 as floats would not be
    assert (second.calls, second.errors, second.cached_calls) == (3, 1, 1)
    assert (second.input_tokens, second.output_tokens) == (1000, 100)
    assert second.cost == Decimal("0.000000001")

    by_model = [(r.key, r.calls, r.cost) for r in store.usage_summary("model")]
    assert by_model == [
        ("anthropic/claude-x", 1, Decimal("0.000000001")),
        ("openai/gpt-4o-mini", 4, Decimal("0.3")),
    ]
    by_provider = [(r.key, r.input_tokens) for r in store.usage_summary("provider")]
    assert by_provider == [("anthropic", 1000), ("openai", 300)]


def test_usage_summary_cost_is_none_when_any_call_is_unpriced(store: Store) -> None:
    store.insert_calls([record(time=at(1), cost=Decimal("0.5")), record(time=at(1), cost=None)])
    (row,) = store.usage_summary("model")
    assert row.cost is None
    assert (row.known_cost, row.unpriced_calls) == (Decimal("0.5"), 1)


def test_usage_summary_since(store: Store) -> None:
    store.insert_calls([record(time=at(1)), record(time=at(2)), record(time=at(3))])
    rows = store.usage_summary("day", since=at(2))
    assert [r.key for r in rows] == ["2025-03-02", "2025-03-03"]
    naive = datetime(2025, 3, 3, 0, 0)  # taken as UTC
    assert [r.key for r in store.usage_summary("day", since=naive)] == ["2025-03-03"]
    with pytest.raises(ValueError, match="day, model, provider"):
        store.usage_summary("week")  # type: ignore[arg-type]


# -- CallRecord.of -----------------------------------------------------------------------


def chat_request(**kw: object) -> Request:
    fields: dict[str, object] = {
        "model": "gpt-4o-mini",
        "messages": (Message.system("Be brief."), Message.user("What is 2+2?")),
        "max_tokens": 50,
        "temperature": 0.0,
        "tools": (Tool("add", "Add numbers", {"type": "object"}),),
    }
    fields.update(kw)
    return Request(**fields)  # type: ignore[arg-type]


def test_record_of_a_response() -> None:
    response = Response(
        id="r1",
        model="gpt-4o-mini-2024-07-18",
        provider="openai",
        content=(Text("4"), ToolCall("call_1", "add", {"a": 2, "b": 2})),
        finish_reason="tool_calls",
        usage=Usage(12, 3, cached_input_tokens=4, reasoning_tokens=1),
        request_id="req_abc",
        latency_s=0.5,
        ttft_s=0.1,
        cost=Decimal("0.0000036"),
    )
    rec = CallRecord.of(
        chat_request(), provider="openai", response=response, tags={"user": "u1"},
        conversation_id="conv-1",
    )  # fmt: skip
    assert (rec.provider, rec.model, rec.status, rec.error) == ("openai", "gpt-4o-mini", "ok", None)
    assert rec.response_text == "4"
    assert rec.tool_calls == ({"id": "call_1", "name": "add", "arguments": {"a": 2, "b": 2}},)
    assert rec.usage == Usage(12, 3, cached_input_tokens=4, reasoning_tokens=1)
    assert (rec.cost, rec.latency_s, rec.ttft_s) == (Decimal("0.0000036"), 0.5, 0.1)
    assert (rec.request_id, rec.conversation_id, rec.tags) == ("req_abc", "conv-1", {"user": "u1"})
    assert (rec.streamed, rec.cached, rec.finish_reason) == (False, False, "tool_calls")
    assert rec.request == {
        "messages": [
            {"role": "system", "content": [{"kind": "text", "text": "Be brief."}]},
            {"role": "user", "content": [{"kind": "text", "text": "What is 2+2?"}]},
        ],
        "parameters": {"max_tokens": 50, "temperature": 0.0},
        "tools": [{"name": "add", "description": "Add numbers", "parameters": {"type": "object"}}],
    }


def test_record_of_an_error_keeps_the_partial_stream() -> None:
    partial = Response(
        id="r2", model="m", provider="anthropic", content=(Text("Half an ans"),),
        finish_reason=None, usage=Usage(20, 4), request_id="req_p",
    )  # fmt: skip
    error = StreamInterruptedError("the stream broke off", provider="anthropic", partial=partial)
    rec = CallRecord.of(chat_request(stream=True), provider="anthropic", error=error, latency_s=1.5)
    assert rec.status == "StreamInterruptedError"
    assert rec.error == "anthropic: the stream broke off"
    assert (rec.response_text, rec.input_tokens, rec.output_tokens) == ("Half an ans", 20, 4)
    assert (rec.streamed, rec.latency_s, rec.request_id, rec.cost) == (True, 1.5, "req_p", None)


def test_record_of_an_error_without_a_response() -> None:
    error = RateLimitError("slow down", provider="openai", status_code=429, request_id="req_429")
    rec = CallRecord.of(chat_request(), provider="openai", error=error, cached=False)
    assert (rec.status, rec.response_text, rec.request_id) == ("RateLimitError", None, "req_429")
    assert rec.error == "openai: HTTP 429: slow down (request id req_429)"
    assert rec.usage == Usage()


# -- spend ---------------------------------------------------------------------------------


def test_spend_sums_exactly(store: Store) -> None:
    for _ in range(10):
        store.add_spend("key-1", Decimal("0.1"))
    store.add_spend("key-1", "0.000000000001")
    store.add_spend("key-1", 1_000_000)
    store.add_spend("other", Decimal("5"))
    assert store.spend("key-1") == Decimal("1000001.000000000001")
    assert store.spend("other") == Decimal("5")
    assert store.spend("nobody") == Decimal(0)


def test_spend_since(store: Store) -> None:
    store.add_spend("s", Decimal("1"))
    between = datetime.now(UTC)
    time.sleep(0.002)
    store.add_spend("s", Decimal("2"))
    assert store.spend("s", since=between) == Decimal("2")
    assert store.spend("s", since=between - timedelta(hours=1)) == Decimal("3")
    assert store.spend("s", since=between + timedelta(hours=1)) == Decimal(0)


def test_spend_refuses_floats_and_non_finite_amounts(store: Store) -> None:
    with pytest.raises(TypeError, match="not a float"):
        store.add_spend("s", 0.1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="finite"):
        store.add_spend("s", "NaN")
    assert store.spend("s") == Decimal(0)


def test_costs_keep_every_digit(store: Store) -> None:
    cost = Decimal("0.00000000375000000001")
    store.insert_call(record(cost=cost))
    assert store.recent_calls()[0].cost == cost
    assert str(store.recent_calls()[0].cost) == "3.75000000001E-9"


# -- the cache -----------------------------------------------------------------------------


def test_cache_put_get_replace(store: Store) -> None:
    assert store.cache_get("k") is None
    store.cache_put("k", b'{"text": "hi"}', ttl_s=60)
    assert store.cache_get("k") == b'{"text": "hi"}'
    store.cache_put("k", b"\x00\xffbinary", ttl_s=None)
    assert store.cache_get("k") == b"\x00\xffbinary"


def test_expired_entries_are_ignored_and_deleted(store: Store) -> None:
    store.cache_put("gone", b"old", ttl_s=0)
    store.cache_put("soon", b"x", ttl_s=0.05)
    store.cache_put("kept", b"y", ttl_s=3600)
    assert store.cache_get("gone") is None
    assert store._db.execute("SELECT COUNT(*) FROM cache WHERE key = 'gone'").fetchone() == (0,)
    assert store.cache_get("soon") == b"x"
    time.sleep(0.06)
    assert store.cache_purge() == 1
    assert store.cache_get("soon") is None
    assert store.cache_get("kept") == b"y"


# -- concurrency ---------------------------------------------------------------------------


def test_many_threads_share_one_store(store: Store) -> None:
    def work(n: int) -> None:
        for i in range(50):
            store.insert_call(record(id=f"{n}-{i}"))
            store.add_spend("shared", Decimal("0.01"))
            store.recent_calls(1)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(store.recent_calls(1000)) == 400
    assert store.spend("shared") == Decimal("4.00")


def test_two_stores_on_one_file_write_at_once(tmp_path: Path) -> None:
    path = tmp_path / "two.db"
    stores = [Store(path), Store(path)]

    def work(s: Store, n: int) -> None:
        for i in range(100):
            s.insert_call(record(id=f"{n}-{i}"))
            s.add_spend("both", Decimal("0.001"))

    threads = [threading.Thread(target=work, args=(s, n)) for n, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert stores[0].spend("both") == stores[1].spend("both") == Decimal("0.200")
    assert len(stores[1].recent_calls(1000)) == 200
    for s in stores:
        s.close()


# -- redaction -----------------------------------------------------------------------------


def anthropic_image_source() -> dict[str, str]:
    data = base64.b64encode(PNG[:90]).decode()
    return {"type": "base64", "media_type": "image/png", "data": data}


def leaky_request() -> Request:
    pasted = f"my key is {OPENAI_KEY}, why does it fail?"
    return Request(
        model="gpt-4o",
        messages=(
            Message.user(
                Text(pasted),
                Image.from_bytes(PNG, "image/png"),
                Document.from_bytes(b"%PDF-1.7 " + PNG, "application/pdf"),
            ),
            Message(
                "assistant",
                (
                    Reasoning("thinking", signature=base64.b64encode(PNG[:300]).decode()),
                    RawPart("anthropic", "image", {"source": anthropic_image_source()}),
                ),
            ),
        ),
        extra_headers={
            "Authorization": f"Bearer {OPENAI_KEY}",
            "x-api-key": ANTHROPIC_KEY,
            "api-key": AZURE_KEY,
            "X-Trace": "trace-123",
        },
        extra_body={"metadata": {"note": f"google {GOOGLE_KEY}"}},
    )


def test_no_key_and_no_base64_reaches_the_database_file(tmp_path: Path) -> None:
    path = tmp_path / "leak.db"
    error = RateLimitError(
        f"Incorrect API key provided: {ANTHROPIC_KEY} (header authorization: Bearer {OPENAI_KEY})",
        provider="openai",
    )
    rec = CallRecord.of(leaky_request(), provider="openai", error=error)
    with Store(path) as s:
        s.insert_call(rec)
        s.insert_call(record(id="ok", response_text=f"Sure, use {GOOGLE_KEY}"))
        (stored,) = s.recent_calls(model="gpt-4o")
    on_disk = raw_bytes(path)
    secrets = [
        OPENAI_KEY,
        ANTHROPIC_KEY,
        GOOGLE_KEY,
        AZURE_KEY,
        base64.b64encode(PNG)[:64].decode(),
    ]
    for secret in secrets:
        assert secret.encode() not in on_disk, secret[:12]
    for payload in (PNG[:300], PNG[:90]):
        assert base64.b64encode(payload)[:40] not in on_disk

    user, assistant = stored.request["messages"]
    text, image, document = user["content"]
    assert text["text"] == "my key is ***, why does it fail?"
    assert image["url"] == "data:image/png;base64,<10240 bytes redacted>"
    assert document["url"] == "data:application/pdf;base64,<10249 bytes redacted>"
    reasoning, raw = assistant["content"]
    assert reasoning == {"kind": "reasoning", "text": "thinking",
                         "signature": "<base64: 300 bytes redacted>"}  # fmt: skip
    assert raw["data"]["source"]["data"] == "<base64: 90 bytes redacted>"
    assert stored.request["parameters"]["extra_headers"] == {
        "Authorization": "***", "x-api-key": "***", "api-key": "***", "X-Trace": "trace-123",
    }  # fmt: skip
    assert stored.request["parameters"]["extra_body"] == {"metadata": {"note": "google ***"}}
    assert stored.error == (
        "openai: Incorrect API key provided: *** (header authorization: Bearer ***)"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"key {OPENAI_KEY}", "key ***"),
        (f"{ANTHROPIC_KEY}.", "***."),
        (f"k={GOOGLE_KEY}&x=1", "k=***&x=1"),
        ("gsk_abcdefghijklmnopqrstuvwx and xai-abcdefghijklmnopqrstuvwx", "*** and ***"),
        ("Authorization: Bearer abc.def.ghi-jkl_mno", "Authorization: Bearer ***"),
        ("curl -H 'x-api-key: 0123abcd'", "curl -H 'x-api-key: ***'"),
        ('{"api_key": "0123456789abcdef"}', '{"api_key": "***"}'),
        ("https://g.example/v1/models?key=abc123&alt=sse", "https://g.example/v1/models?key=***&alt=sse"),
        ("see data:image/jpeg;base64,/9j/4AAQSkZJRg== here",
         "see data:image/jpeg;base64,<10 bytes redacted> here"),
        ("A" * 400, "<base64: 300 bytes redacted>"),
    ],
)  # fmt: skip
def test_redact_text(text: str, expected: str) -> None:
    assert redact_text(text) == expected
    assert redact_text(expected) == expected  # idempotent


@pytest.mark.parametrize(
    "prose",
    [
        "The token limit is 4096 and the basic plan allows 3 calls per minute.",
        "Use the Authorization header to send your key; see the api key docs.",
        "The task-management tool and sk-learn are fine; bearer bonds are old.",
        "https://example.com/a/b/c.png?size=large&key_id=7",
        "A SHA-256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    ],
)
def test_ordinary_text_is_left_alone(prose: str) -> None:
    assert redact_text(prose) == prose


def test_redact_json_masks_secret_fields_by_name() -> None:
    value = {"headers": {"API_KEY": "plainsecret", "Cookie": "s=1", "Accept": "json"}, "n": 3}
    assert redact_json(value) == {
        "headers": {"API_KEY": "***", "Cookie": "***", "Accept": "json"},
        "n": 3,
    }


# The call log's fast path encodes first and walks the value only when the text holds a
# suspect; whatever the value, it must store exactly what the full walk would.
_NAME_LIST = (
    ["text", "data", "Data", "api_key", "X-Goog-Api-Key", "signature", "thoughtSignature",
     "bytes", "b64_json", "encrypted_content", "Authorization", "cookie", "content", "url"]
)  # fmt: skip
_PIECE_LIST = (
    [OPENAI_KEY, ANTHROPIC_KEY, GOOGLE_KEY, "Bearer " + "t" * 20, "\n" + OPENAI_KEY,
     "data:image/png;base64,iVBORw0KGgo=", "QUJD" * 70, "x-api-key: abc", "?key=zz",
     "hello", "ok then", "", "\n", '"', "é", "QUJDREVGR0hJSktMTU5PUA=="]
)  # fmt: skip
_NAMES = st.sampled_from(_NAME_LIST)
_PIECES = st.sampled_from(_PIECE_LIST)
_STRINGS = st.lists(_PIECES, max_size=4).map("".join)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | _STRINGS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_NAMES, inner, max_size=4),
    max_leaves=12,
)


def _full_walk(value: Any) -> str:
    return json.dumps(redact_json(value), ensure_ascii=False, separators=(",", ":"))


@settings(max_examples=400)
@given(_JSON)
def test_fast_redacted_json_text_matches_the_full_walk(value: Any) -> None:
    assert redacted_json_text(value) == _full_walk(value)


@pytest.mark.parametrize("piece", _PIECE_LIST)
@pytest.mark.parametrize("name", _NAME_LIST)
def test_every_trigger_alone_takes_the_full_walk(name: str, piece: str) -> None:
    for value in (piece, [piece], {name: piece}, {"x": {name: piece}}):
        assert redacted_json_text(value) == _full_walk(value)
