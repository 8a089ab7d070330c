"""``StoreError``: callm.db cannot be used, said in one line with what to do.

SQLite's own errors ("file is not a database", "attempt to write a readonly database",
"database is locked") name neither the file nor the fix. Every failure of the store is
raised as a :class:`StoreError` that does; ``retryable`` marks the ones that pass (a lock
held by another process, a full disk). Those who can do without the store — the call log,
conversations — warn once per process and per problem (:func:`warn_once`) and carry on.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

from .._core.errors import ConfigurationError

logger = logging.getLogger("callm")
_warned: set[tuple[str, str]] = set()
_warned_lock = threading.Lock()
# SQLite's primary result codes (https://sqlite.org/rescode.html).
_BUSY, _LOCKED, _READONLY, _PERM, _CANTOPEN = 5, 6, 8, 3, 14
_CORRUPT, _NOTADB, _FULL = 11, 26, 13
# What an unusable database means for a process that can do without it.
NOT_SAVED = "answers still come, but are not logged or saved there until it is fixed"


class StoreError(ConfigurationError):
    """callm's database cannot be used; the message says what is wrong and what to do."""

    def __init__(self, message: str, *, path: Path | str, kind: str, retryable: bool = False):
        super().__init__(message)
        self.path = str(path)
        self.kind = kind
        self.retryable = retryable


def unusable(path: Path | str, exc: sqlite3.Error, busy_timeout_s: float) -> StoreError:
    """The StoreError of an SQLite failure on the database at ``path``."""
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    if code in (_BUSY, _LOCKED) or "locked" in str(exc):
        return StoreError(
            f"{path} is locked by another process past the busy timeout ({busy_timeout_s:g} s)",
            path=path,
            kind="locked",
            retryable=True,
        )
    if code in (_READONLY, _PERM, _CANTOPEN) or "readonly" in str(exc):
        return StoreError(
            f"{path} cannot be written (a read-only file or folder?): fix its permissions, "
            "or point CALLM_HOME at a folder you can write",
            path=path,
            kind="read-only",
        )
    if code in (_CORRUPT, _NOTADB):
        return StoreError(
            f"{path} is not an SQLite database (damaged?): move it away and callm starts a new one",
            path=path,
            kind="corrupt",
        )
    if code == _FULL:
        return StoreError(
            f"the disk holding {path} is full", path=path, kind="full", retryable=True
        )
    return StoreError(f"{path} cannot be used: {exc}", path=path, kind="other")


def newer_schema(path: Path | str, unknown: list[str]) -> StoreError:
    return StoreError(
        f"{path} was written by a newer callm (it has migration {', '.join(unknown)}, which "
        "this callm does not know): upgrade callm, or point CALLM_HOME at another folder",
        path=path,
        kind="newer",
    )


def cannot_create(path: Path | str, exc: OSError) -> StoreError:
    return StoreError(
        f"{path} cannot be created ({exc.strerror or exc}): point CALLM_HOME at a folder "
        "callm can write",
        path=path,
        kind="cannot-create",
    )


def a_folder(path: Path | str) -> StoreError:
    return StoreError(
        f"{path} is a folder, not callm's database: move it away (callm makes the file)",
        path=path,
        kind="folder",
    )


def warn_once(error: StoreError, consequence: str) -> None:
    """One warning line per process for each database and problem: ``error`` and what it
    means for this process (``consequence``)."""
    key = (error.path, error.kind)
    with _warned_lock:
        if key in _warned:
            return
        _warned.add(key)
    logger.warning("callm: %s; %s", error, consequence)
