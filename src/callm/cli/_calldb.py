"""The call log the command line reads: where it is, and opening it without creating it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .._config.settings import Settings
from .._store import Store


def database_path(settings: Settings) -> Path:
    """The SQLite file every call is logged to (the one ``callm.Client`` writes)."""
    return settings.home / "callm.db"


@contextmanager
def existing_store(settings: Settings) -> Iterator[Store | None]:
    """The call log, or None when nothing was ever logged (no file is created to say so)."""
    path = database_path(settings)
    if not path.exists():
        yield None
        return
    with Store(path) as store:
        yield store


def empty_log_message(settings: Settings, what: str) -> str:
    """A friendly line for an empty log, saying where callm looked and whether logging is off."""
    message = f"No {what} in {database_path(settings)}."
    if not settings.log_enabled():
        message += f" {log_state(settings)}"
    return message


def log_state(settings: Settings) -> str:
    """One sentence: whether calls are logged, and what decides it."""
    value = settings.lookup("CALLM_LOG")
    if value is not None:
        state = "on" if settings.log_enabled() else "off"
        return f"Logging is {state}: CALLM_LOG is set to {value}."
    if settings.log_enabled():
        return f"Logging is on: calls are logged to {database_path(settings)}."
    return "Logging is off: `callm logs on` turns it back on."
