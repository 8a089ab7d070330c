"""Virtual keys: made from random bytes, shown once, kept only as a keyed hash.

The hash is HMAC-SHA256 with a server secret, so a stolen database alone does not let
anyone test guesses offline. The secret comes from ``CALLM_SERVER_SECRET`` (give every
instance of a fleet the same one) or from a 0600 file made once in ``CALLM_HOME``.
"""

from __future__ import annotations

import hmac
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from .._config.folders import private_folder
from .._core.errors import ConfigurationError

KEY_PREFIX = "sk-callm-"
SHOWN_PREFIX = len(KEY_PREFIX) + 4  # what listings show: "sk-callm-AbCd"
SECRET_ENV = "CALLM_SERVER_SECRET"
_SECRET_FILE = "gateway-secret"


def new_key() -> str:
    """A fresh virtual key: ``sk-callm-`` and 32 random URL-safe characters (192 bits)."""
    return KEY_PREFIX + secrets.token_urlsafe(24)


def new_key_id() -> str:
    return "key_" + secrets.token_hex(8)


def shown_prefix(key: str) -> str:
    return key[:SHOWN_PREFIX]


_REMEMBERED = 4096  # keys whose hash is kept (callers repeat their keys)


class KeyHasher:
    """HMAC-SHA256 of keys with the server secret."""

    __slots__ = ("_recent", "_secret")

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ConfigurationError(f"{SECRET_ENV} must be at least 16 characters long")
        self._secret = secret
        # Hashing is one C call, yet OpenSSL looks the digest up by name on each (~2 us
        # in a loop, ~30 us when a request finds its caches cold): a key's hash is kept.
        # It is the same function of the key either way; the process holds the secret and
        # sees every key anyway, and whether a key is live is asked of the ledger each time.
        self._recent: dict[str, str] = {}

    def __repr__(self) -> str:
        return "KeyHasher(***)"

    def hash(self, key: str) -> str:
        found = self._recent.get(key)
        if found is None:
            found = hmac.digest(self._secret, key.encode(), "sha256").hex()
            if len(self._recent) >= _REMEMBERED:
                self._recent.clear()
            self._recent[key] = found
        return found


def server_secret(home: Path, environ: Mapping[str, str]) -> bytes:
    """The secret keys are hashed with: the environment's, else the file's (made once)."""
    given = environ.get(SECRET_ENV)
    if given:
        return given.encode()
    path = home / _SECRET_FILE
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    private_folder(home)  # 0700 whatever the umask: the secret keys every key's hash
    secret = secrets.token_hex(32).encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first: use theirs
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as f:
        f.write(secret)
    return secret


def same_secret(given: str, expected: str) -> bool:
    """Constant-time comparison, for the master key."""
    return hmac.compare_digest(given.encode(), expected.encode())
