"""``callm`` with a callm.db it cannot use: the answer all the same and one warning line, or
— for what needs the database — exit 2 and one line saying what to do."""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_helpers import CallmProcess

from broken_stores import BREAKERS, SAID, as_ordinary_user, writable_again


@pytest.fixture
def home(cli_home: Path) -> Iterator[Path]:
    cli_home.mkdir(parents=True, exist_ok=True)
    yield cli_home
    writable_again(cli_home)


def run(callm_run: CallmProcess, *args: str) -> subprocess.CompletedProcess[str]:
    """``callm args`` as an ordinary user (read-only files bind it, even under root)."""
    return subprocess.run(
        as_ordinary_user(callm_run.argv(*args)),
        input="",
        capture_output=True,
        text=True,
        cwd=callm_run.cwd,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("kind", sorted(BREAKERS))
def test_a_prompt_is_answered_with_one_warning_line(
    callm_run: CallmProcess, home: Path, kind: str
) -> None:
    BREAKERS[kind](home)
    done = run(callm_run, "-m", "local/offline", "hello there")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith('[offline] You said: "hello there"')
    (line,) = done.stderr.splitlines()  # one line: no traceback, nothing said twice
    assert line.startswith("callm: ") and SAID[kind] in line and "callm.db" in line


@pytest.mark.parametrize("kind", sorted(BREAKERS))
def test_what_needs_the_database_is_refused_in_one_line(
    callm_run: CallmProcess, home: Path, kind: str
) -> None:
    BREAKERS[kind](home)
    for args in (["logs"], ["-m", "local/offline", "-c", "go on"]):
        done = run(callm_run, *args)
        assert done.returncode == 2, (args, done.stderr)
        (line,) = done.stderr.splitlines()
        assert line.startswith("callm: error: ") and SAID[kind] in line, args


def test_a_newer_schema_names_its_marker_and_the_fix(callm_run: CallmProcess, home: Path) -> None:
    BREAKERS["newer"](home)
    done = callm_run("logs")
    assert done.code == 2
    assert "m099_from_the_future" in done.stderr and "upgrade callm" in done.stderr


def test_callm_home_and_its_files_are_private_whatever_the_umask(
    callm_run: CallmProcess, cli_home: Path
) -> None:
    old = os.umask(0)  # inherited by the child
    try:
        done = callm_run("-m", "local/offline", "hi")
        callm_run("logs", "off")
    finally:
        os.umask(old)
    assert done.code == 0, done.stderr
    assert stat.S_IMODE(cli_home.stat().st_mode) == 0o700
    files = sorted(cli_home.glob("callm.db*"))
    assert files
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name


def test_keys_made_in_a_fresh_home_are_private(callm_run: CallmProcess, cli_home: Path) -> None:
    old = os.umask(0)
    try:
        done = callm_run("keys", "set", "openai", input="sk-test-" + "k" * 24 + "\n")
    finally:
        os.umask(old)
    assert done.code == 0, done.stderr
    assert stat.S_IMODE(cli_home.stat().st_mode) == 0o700
    assert stat.S_IMODE((cli_home / "keys.json").stat().st_mode) == 0o600
