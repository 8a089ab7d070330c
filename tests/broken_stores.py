"""Ways to leave CALLM_HOME with a callm.db callm cannot use, shared by the library and the
command-line tests, and a way to run a process that file permissions bind even under root."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from callm._store import Store


def corrupt(home: Path) -> None:
    (home / "callm.db").write_bytes(os.urandom(4096))


def a_folder(home: Path) -> None:
    (home / "callm.db").mkdir()


def read_only(home: Path) -> None:
    """Read-only for its owner, in a folder where no journal can be made either (run the
    reader through :func:`as_ordinary_user`: root writes read-only files)."""
    Store(home / "callm.db").close()
    for path in home.glob("callm.db*"):
        path.chmod(0o444)
    home.chmod(0o555)


def newer(home: Path) -> None:
    """Migrated by a callm from the future: a migration this one does not know."""
    with Store(home / "callm.db") as store:
        store._db.execute(
            "INSERT INTO _migrations (name, applied_at) VALUES ('m099_from_the_future', '')"
        )


BREAKERS: dict[str, Callable[[Path], None]] = {
    "corrupt": corrupt,
    "folder": a_folder,
    "read-only": read_only,
    "newer": newer,
}
# What the warning line says for each.
SAID = {
    "corrupt": "not an SQLite database",
    "folder": "is a folder",
    "read-only": "cannot be written",
    "newer": "newer callm",
}


def as_ordinary_user(argv: list[str]) -> list[str]:
    """``argv`` run without root's power to override file permissions (CAP_DAC_OVERRIDE),
    so a read-only file is read-only to it; unchanged for an ordinary user."""
    if os.geteuid() != 0:
        return argv
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: a read-only file cannot be shown")
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search", *argv]


def writable_again(home: Path) -> None:
    """Undo :func:`read_only`, so that the test's folder can be removed."""
    if home.exists():
        home.chmod(0o700)
