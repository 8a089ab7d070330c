"""The call log writer: off the call path, batched, thread- and asyncio-safe, nothing lost."""

from __future__ import annotations

import asyncio
import gc
import logging
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from callm import Message, Request, Response, Usage
from callm._policies import calllog
from callm._policies.calllog import CallLog
from callm._store import CallRecord, Store
from callm.testing import FakeOpenAIServer
from helpers import async_client, sync_client


def record(n: int = 0) -> CallRecord:
    return CallRecord(
        provider="openai",
        model="gpt-4o-mini",
        request={"messages": [{"role": "user", "content": [{"kind": "text", "text": f"#{n}"}]}]},
        response_text=f"reply {n}",
        input_tokens=n,
        cost=Decimal("0.000001"),
    )


def count(path: Path) -> int:
    with Store(path) as s:
        return len(s.recent_calls(1_000_000))


class CountingStore(Store):
    """A real store that remembers the size of each batch it was given."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.batches: list[int] = []

    def insert_call_rows(self, rows: list[tuple[Any, ...]]) -> int:
        self.batches.append(len(rows))
        return super().insert_call_rows(rows)


def test_log_then_flush_writes_every_record(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    with CallLog(path) as log:
        for n in range(5):
            log.log(record(n))
        assert log.flush(timeout=5)
        assert count(path) == 5
        log.log(record(99))
    # close() wrote the last one too
    with Store(path) as s:
        assert [r.response_text for r in s.recent_calls(1)] == ["reply 99"]


def test_log_call_builds_the_record_in_the_writer_thread(tmp_path: Path) -> None:
    built_in: list[str] = []

    class Spy(Response):
        @property
        def text(self) -> str:
            built_in.append(threading.current_thread().name)
            return "four"

    response = Spy(id="r", model="m", provider="openai", content=(), finish_reason="stop",
                   usage=Usage(7, 1), cost=Decimal("0.5"))  # fmt: skip
    request = Request(model="gpt-4o", messages=(Message.user("2+2?"),))
    before = datetime.now(UTC)
    with CallLog(tmp_path / "deferred.db") as log:
        log.log_call(request, provider="openai", response=response, tags={"k": "v"})
        assert built_in == []  # nothing built on the caller's thread
        log.flush(timeout=5)
        assert built_in == ["callm-calllog"]
    with Store(tmp_path / "deferred.db") as s:
        (rec,) = s.recent_calls()
    assert (rec.model, rec.response_text, rec.input_tokens, rec.cost) == (
        "gpt-4o", "four", 7, Decimal("0.5"),
    )  # fmt: skip
    assert rec.tags == {"k": "v"}
    assert before <= rec.time <= datetime.now(UTC)


def test_a_database_that_cannot_be_opened_drops_records_until_it_can(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "later"
    blocker.write_text("a file where the database's folder should be")
    path = blocker / "calls.db"
    with caplog.at_level(logging.WARNING, logger="callm"), CallLog(path) as log:
        log.log(record(1))
        assert log.flush(timeout=5)
        assert log.dropped == 1
        blocker.unlink()
        log.log(record(2))
        assert log.flush(timeout=5)
        assert log.dropped == 1
    assert "calls.db cannot be created (Not a directory)" in caplog.text
    assert count(path) == 1


def test_a_record_that_cannot_be_built_is_dropped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> CallRecord:
        raise KeyError("oops")

    with caplog.at_level(logging.WARNING, logger="callm"), CallLog(tmp_path / "b.db") as log:
        log.log(broken)
        log.log(record(1))
        assert log.flush(timeout=5)
        assert log.dropped == 1
    assert count(tmp_path / "b.db") == 1
    assert "could not be built" in caplog.text


def test_the_default_store_is_callm_home(isolated_env: Path) -> None:
    with CallLog() as log:
        log.log(record())
    assert count(isolated_env / "callm.db") == 1


def test_records_are_written_within_the_flush_interval(tmp_path: Path) -> None:
    path = tmp_path / "interval.db"
    with CallLog(path, flush_interval=0.05) as log:
        log.log(record())
        deadline = time.monotonic() + 5
        while count(path) == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert count(path) == 1


def test_records_are_batched_one_transaction_per_batch(tmp_path: Path) -> None:
    store = CountingStore(tmp_path / "batch.db")
    with CallLog(store, batch_size=10, flush_interval=5) as log:
        for n in range(25):
            log.log(record(n))
        assert log.flush(timeout=5)
    # 25 records arrive well inside the interval: no batch over 10, so at least three.
    assert sum(store.batches) == 25
    assert max(store.batches) <= 10
    assert len(store.batches) >= 3
    assert len(store.recent_calls(100)) == 25
    store.close()  # a store passed in is the caller's to close


def test_a_trickle_of_records_is_written_as_one_batch_after_the_interval(tmp_path: Path) -> None:
    store = CountingStore(tmp_path / "trickle.db")
    with CallLog(store, flush_interval=0.4) as log:
        for n in range(5):
            log.log(record(n))
            time.sleep(0.01)
        assert store.batches == []  # still inside the interval: nothing written yet
        deadline = time.monotonic() + 5
        while not store.batches and time.monotonic() < deadline:
            time.sleep(0.02)
    assert store.batches == [5]
    store.close()


def test_batch_size_one_writes_at_once(tmp_path: Path) -> None:
    store = CountingStore(tmp_path / "one.db")
    with CallLog(store, flush_interval=60, batch_size=1) as log:
        log.log(record())
        deadline = time.monotonic() + 5
        while not store.batches and time.monotonic() < deadline:
            time.sleep(0.01)
        assert store.batches == [1]
    store.close()


def test_log_after_close_raises(tmp_path: Path) -> None:
    log = CallLog(tmp_path / "closed.db")
    log.log(record())
    log.close()
    log.close()  # twice is fine
    with pytest.raises(RuntimeError, match="closed"):
        log.log(record())


def test_many_threads_log_at_once(tmp_path: Path) -> None:
    path = tmp_path / "threads.db"
    with CallLog(path, batch_size=50) as log:

        def work() -> None:
            for n in range(250):
                log.log(record(n))

        threads = [threading.Thread(target=work) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert log.flush(timeout=10)
    assert count(path) == 2000


async def test_asyncio_tasks_log_without_awaiting(tmp_path: Path) -> None:
    path = tmp_path / "tasks.db"
    log = CallLog(path)

    async def call(n: int) -> None:
        await asyncio.sleep(0)
        log.log(record(n))

    await asyncio.gather(*(call(n) for n in range(200)))
    await asyncio.to_thread(log.close)
    assert count(path) == 200


def test_a_refused_batch_is_dropped_and_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    class BrokenStore(Store):
        def insert_call_rows(self, rows: list[tuple[Any, ...]]) -> int:
            raise OSError("disk full")

    store = BrokenStore(tmp_path / "broken.db")
    with caplog.at_level(logging.WARNING, logger="callm"), CallLog(store) as log:
        log.log(record(1))
        log.log(record(2))
        assert log.flush(timeout=5)
        assert log.dropped == 2
    assert "2 call log records dropped" in caplog.text
    store.close()


def test_a_log_dropped_without_close_stops_its_thread(tmp_path: Path) -> None:
    log = CallLog(tmp_path / "gc.db")
    log.log(record())
    thread = log._thread
    assert thread is not None
    assert thread.is_alive()
    del log
    for _ in range(50):  # under load a collection can come late: give it a few chances
        gc.collect()
        thread.join(timeout=0.2)
        if not thread.is_alive():
            break
    assert not thread.is_alive()
    assert count(tmp_path / "gc.db") == 1


def run_python(code: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_nothing_is_lost_at_exit_and_the_thread_does_not_hold_the_process(
    tmp_path: Path,
) -> None:
    path = tmp_path / "exit.db"
    started = time.monotonic()
    done = run_python(
        f"""
        from decimal import Decimal
        from callm._policies.calllog import CallLog
        from callm._store import CallRecord

        # A long interval: without the exit hook these records would still be queued.
        log = CallLog({str(path)!r}, flush_interval=60, batch_size=10_000)
        for n in range(1000):
            log.log(CallRecord(provider="p", model="m", request={{}}, cost=Decimal(n)))
        # no close(), no flush(): the script simply ends
        """
    )
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 20
    assert count(path) == 1000
    with Store(path) as s:
        assert s.usage_summary("provider")[0].cost == Decimal(sum(range(1000)))


def test_a_forked_child_logs_to_its_own_connection(tmp_path: Path) -> None:
    path = tmp_path / "fork.db"
    done = run_python(
        f"""
        import os
        from callm._policies.calllog import CallLog
        from callm._store import CallRecord

        def rec(who):
            return CallRecord(provider=who, model="m", request={{}})

        log = CallLog({str(path)!r})
        log.log(rec("parent"))
        log.flush()
        pid = os.fork()
        if pid == 0:
            for _ in range(3):
                log.log(rec("child"))
            raise SystemExit(0)  # a normal exit: the child's atexit hook flushes
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        log.log(rec("parent"))
        """
    )
    assert done.returncode == 0, done.stderr
    with Store(path) as s:
        rows = {r.key: r.calls for r in s.usage_summary("provider")}
    assert rows == {"child": 3, "parent": 2}


@pytest.fixture
def clients_writer(isolated_env: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CallLog]:
    """The call-log writer of the clients' database, made to wait a minute before it builds
    anything itself, so that only the callers' requests build rows."""
    path = isolated_env / "callm.db"
    with CallLog(path, flush_interval=60) as log:
        monkeypatch.setitem(calllog._call_logs, str(path), log)
        yield log


def test_a_sync_call_builds_waiting_records_while_its_request_is_in_flight(
    clients_writer: CallLog,
    isolated_env: Path,
    fake_openai: FakeOpenAIServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    built_in: list[str] = []

    def builder(n: int) -> Callable[[], CallRecord]:
        def build() -> CallRecord:
            built_in.append(threading.current_thread().name)
            if n == 1:
                raise ValueError("this record cannot be built")
            return record(n)

        return build

    path, log = isolated_env / "callm.db", clients_writer
    for n in range(3):
        log.log(builder(n))
    with sync_client(fake_openai.base_url, log=False) as client:
        for _ in range(4):  # one waiting record built per request; the fourth has none
            assert client.complete("fake/gpt-4o-mini", "hi").text
        assert built_in == [threading.current_thread().name] * 3
        # Nothing waits any more: requests no longer carry the log's helper.
        assert log.helper() is None
        assert count(path) == 0  # built, not yet written: that stays the writer's job
    # Closing the client writes out its database's log.
    assert log.dropped == 1
    assert count(path) == 2
    assert "could not be built" in caplog.text


def test_calls_over_a_caller_s_httpx_client_leave_the_records_to_the_writer(
    clients_writer: CallLog, fake_openai: FakeOpenAIServer
) -> None:
    built_in: list[str] = []

    def build() -> CallRecord:
        built_in.append(threading.current_thread().name)
        return record()

    import httpx2

    clients_writer.log(build)
    with (
        httpx2.Client() as http,
        sync_client(fake_openai.base_url, log=False, http_client=http) as c,
    ):
        c.complete("fake/gpt-4o-mini", "hi")
        assert built_in == []
    assert clients_writer.flush(timeout=5)  # closing the client flushed it already
    assert built_in == ["callm-calllog"]


def test_threads_calling_at_once_log_every_call_exactly_once(
    fake_openai: FakeOpenAIServer, isolated_env: Path
) -> None:
    # Callers build waiting records between request and answer while the writer drains:
    # every call must still be stored once, none lost, none twice.
    with sync_client(fake_openai.base_url) as client:

        def calls(worker: int) -> None:
            for n in range(25):
                client.complete("fake/gpt-4o-mini", f"worker {worker} call {n}")

        threads = [threading.Thread(target=calls, args=(w,)) for w in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    with Store(isolated_env / "callm.db") as store:
        logged = store.recent_calls(1000)
    prompts = [c.request["messages"][0]["content"][0]["text"] for c in logged]
    assert sorted(prompts) == sorted(f"worker {w} call {n}" for w in range(8) for n in range(25))


async def test_an_async_call_builds_a_waiting_record_in_the_event_loop_thread(
    clients_writer: CallLog, isolated_env: Path, fake_openai: FakeOpenAIServer
) -> None:
    # Not in the writer thread, which would contend with the event loop for the GIL.
    built_in: list[str] = []

    def build() -> CallRecord:
        built_in.append(threading.current_thread().name)
        return record()

    clients_writer.log(build)
    async with async_client(fake_openai.base_url, log=False) as ac:
        await ac.complete("fake/gpt-4o-mini", "hi")
        s = await ac.stream("fake/gpt-4o-mini", "hi")  # nothing waits any more
        async with s:
            assert (await s.get_response()).text
        assert built_in == [threading.current_thread().name]
    assert clients_writer.flush(timeout=5)
    assert count(isolated_env / "callm.db") == 1
