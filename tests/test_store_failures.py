"""A database callm cannot use never costs an answer: one clear warning line, nothing half
written; a newer schema is refused by its migration marker; a locked database is retried,
not dropped; callm's files are private whatever the umask; full batches are written at once.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import callm
from broken_stores import BREAKERS, SAID, as_ordinary_user, writable_again
from callm._policies import calllog
from callm._policies.calllog import CallLog
from callm._store import CallRecord, Store
from callm.testing import FakeOpenAIServer
from helpers import sync_client

MODEL = "local/offline"


IN_PROCESS = sorted(set(BREAKERS) - {"read-only"})  # root writes read-only files


@pytest.fixture
def home(isolated_env: Path) -> Iterator[Path]:
    isolated_env.mkdir(parents=True, exist_ok=True)
    yield isolated_env
    writable_again(isolated_env)


@pytest.mark.parametrize("kind", IN_PROCESS)
def test_an_unusable_database_costs_one_warning_line_not_the_answer(
    home: Path, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    BREAKERS[kind](home)
    with caplog.at_level(logging.WARNING, "callm"), callm.Client() as client:
        conv = client.conversation(MODEL)
        first = conv.send("hello")
        second = conv.send("and again")
        client.complete(MODEL, "a third call")
    assert first.text and second.text  # the answers arrive all the same
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    line = warnings[0].getMessage()
    assert SAID[kind] in line and "callm.db" in line and "\n" not in line
    assert warnings[0].exc_info is None  # a line, not a traceback


def test_a_read_only_database_costs_one_warning_line_not_the_answer(home: Path) -> None:
    BREAKERS["read-only"](home)
    before = (home / "callm.db").read_bytes()
    script = (
        "import callm\n"
        "with callm.Client() as client:\n"
        f"    conv = client.conversation({MODEL!r})\n"
        "    print(conv.send('hello').text[:9], conv.send('again').text[:9])\n"
        f"    print(client.complete({MODEL!r}, 'a third').text[:9])\n"
    )
    done = subprocess.run(
        as_ordinary_user([sys.executable, "-c", script]),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("[offline]") == 3  # every answer arrived
    (line,) = done.stderr.splitlines()  # one line, no traceback
    assert SAID["read-only"] in line and "callm.db" in line
    assert (home / "callm.db").read_bytes() == before  # nothing half-written


def test_a_newer_schema_is_refused_by_the_commands_that_need_it(home: Path) -> None:
    BREAKERS["newer"](home)
    with pytest.raises(callm.ConfigurationError, match=r"newer callm.*m099_from_the_future"):
        Store(home / "callm.db")


def test_a_locked_database_is_retried_not_dropped(tmp_path: Path) -> None:
    path = tmp_path / "calls.db"
    Store(path).close()
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")  # another process, busy writing for a while
    released = threading.Timer(1.5, lambda: holder.execute("COMMIT"))
    released.start()
    try:
        with CallLog(lambda: Store(path, busy_timeout_s=0.2), flush_interval=0.05) as log:
            for n in range(3):
                log.log(CallRecord(provider="p", model="m", request={}, response_text=f"#{n}"))
            assert log.flush(timeout=5)  # returns: the rows wait for the lock, kept
            assert log.dropped == 0
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and _count(path) < 3:
                time.sleep(0.1)
            assert log.dropped == 0
    finally:
        released.join()
        holder.close()
    assert _count(path) == 3


def _count(path: Path) -> int:
    try:
        with Store(path, busy_timeout_s=0.05) as store:
            return len(store.recent_calls(100))
    except callm.ConfigurationError:  # locked still
        return 0


def test_callm_home_and_its_database_are_private_whatever_the_umask(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "fresh" / "callm-home"
    monkeypatch.setenv("CALLM_HOME", str(home))
    old = os.umask(0)
    try:
        with callm.Client() as client:
            client.conversation(MODEL).send("hi")
    finally:
        os.umask(old)
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    for path in home.glob("callm.db*"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name


@pytest.fixture
def slow_writer(isolated_env: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CallLog]:
    """The clients' call log, told to wait a minute unless batch_size records wait."""
    path = isolated_env / "callm.db"
    with CallLog(path, flush_interval=60, batch_size=3) as log:
        monkeypatch.setitem(calllog._call_logs, str(path), log)
        yield log


def test_a_full_batch_is_written_at_once_though_the_transports_built_it(
    slow_writer: CallLog, isolated_env: Path, fake_openai: FakeOpenAIServer
) -> None:
    with sync_client(fake_openai.base_url) as client:
        for _ in range(4):  # each request builds the record of the one before
            client.complete("fake/m", "hi")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and _count(isolated_env / "callm.db") < 3:
            time.sleep(0.05)
        assert _count(isolated_env / "callm.db") >= 3  # not a minute later
