"""Keys in the OS keyring (macOS Keychain, Windows Credential Locker, Secret Service …),
through the ``keyring`` library, when one is available.

The keyring cannot list what it holds, and asking it can be slow (a D-Bus round trip), so the
names of the providers whose keys went there are kept in ``keyring.json`` in CALLM_HOME —
names only, never a key — and only those are ever looked up.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from .folders import private_folder

SERVICE = "callm"


def keyring_available() -> bool:
    """Whether a real keyring backend is there (not keyring's fail or null placeholders)."""
    try:
        import keyring
        from keyring.backends import fail
    except ImportError:
        return False
    try:
        backend = keyring.get_keyring()
    except Exception:  # a broken backend configuration: use the file instead
        return False
    name = type(backend).__module__
    return not isinstance(backend, fail.Keyring) and not name.startswith("keyring.backends.null")


class KeyringStore:
    """Provider keys in the OS keyring, with the index of their names beside CALLM_HOME's files."""

    def __init__(self, home: Path) -> None:
        self.index_path = home / "keyring.json"

    def providers(self) -> list[str]:
        """The providers whose keys were put in the keyring (names only)."""
        try:
            names = json.loads(self.index_path.read_text())
        except (FileNotFoundError, ValueError):
            return []
        return [str(n) for n in names] if isinstance(names, list) else []

    def load(self) -> dict[str, str]:
        """provider → key, for every indexed provider the keyring still has a key for."""
        names = self.providers()
        if not names or not keyring_available():
            return {}
        import keyring

        keys = {}
        for name in names:
            key = keyring.get_password(SERVICE, name)
            if key:
                keys[name] = key
        return keys

    def set(self, provider: str, key: str) -> None:
        import keyring

        keyring.set_password(SERVICE, provider, key)
        self._write_index(sorted({*self.providers(), provider}))

    def remove(self, provider: str) -> bool:
        names = self.providers()
        if provider not in names:
            return False
        import keyring
        from keyring.errors import PasswordDeleteError

        # Already gone from the keyring: drop the name all the same.
        with contextlib.suppress(PasswordDeleteError):
            keyring.delete_password(SERVICE, provider)
        self._write_index([n for n in names if n != provider])
        return True

    def _write_index(self, names: list[str]) -> None:
        private_folder(self.index_path.parent)
        tmp = self.index_path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(names, f)
        os.replace(tmp, self.index_path)
