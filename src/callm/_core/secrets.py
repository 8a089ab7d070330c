"""The secrets callm knows, by value, so they can be scrubbed wherever they come back.

Redaction by shape (``callm._store._redact``) catches strings that look like keys; many keys
do not (Azure's 32 hex digits, Mistral's 32 letters and digits, Together's 64 hex digits).
So every secret callm handles — keys from arguments, the config file, the environment,
``.env``, the keys file or the OS keyring; tokens from token providers; passwords and tokens
in base URLs; secret-named environment variables — is remembered here by value, and
:func:`scrub` replaces each occurrence with ``***``: in error messages and bodies (a server
that echoes the key it was sent), in what the call log and conversations store (a key
pasted into a prompt), on the command line.

The set is process-wide because secrets are: the environment and the keys file belong to
the process, and an error can be raised far from the client that knew the key. It is
bounded (the oldest values go first) and holds only values long enough to be secrets.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any

REDACTED = "***"
_MIN_LENGTH = 8  # shorter values ("1", "true", a port) are not secrets worth masking
_LIMIT = 512  # token providers mint fresh tokens: keep the most recent ones

_lock = threading.Lock()
_known: dict[str, None] = {}  # insertion-ordered: the oldest go first past _LIMIT
_values: tuple[str, ...] = ()  # longest first, so a key is masked before a part of it

# Environment variables whose values are secrets: ``OPENAI_API_KEY``, ``CALLM_MASTER_KEY``,
# ``AWS_SECRET_ACCESS_KEY``, ``AZURE_OPENAI_AD_TOKEN``, ``HF_TOKEN``, ``DB_PASSWORD`` …
_SECRET_ENV = re.compile(r"(?:^|_)(?:API_?KEY|KEY|TOKEN|SECRET|PASSWORD|PASSWD|PAT)(?:_|$)")
# Words that make a header or URL parameter name a secret's: ``x-api-key``,
# ``cf-aig-authorization``, ``x-gateway-token``, ``helicone-auth``, ``?sig=``, ``?code=``.
_SECRET_WORDS = frozenset(
    {
        "auth",
        "authorization",
        "key",
        "apikey",
        "token",
        "secret",
        "password",
        "passwd",
        "pass",
        "pwd",
        "cookie",
        "session",
        "signature",
        "sig",
        "credential",
        "credentials",
        "code",
    }
)
_NAME_PARTS = re.compile(r"[^a-z0-9]+")


def remember(*values: str | None) -> None:
    """Know these values as secrets from now on (short or empty ones are ignored)."""
    fresh = [v for v in values if v and len(v) >= _MIN_LENGTH and v not in _known]
    if not fresh:
        return
    global _values  # noqa: PLW0603 — one set per process, replaced whole (readers need no lock)
    with _lock:
        for value in fresh:
            _known[value] = None
        while len(_known) > _LIMIT:
            del _known[next(iter(_known))]
        _values = tuple(sorted(_known, key=len, reverse=True))


def remember_environment(environ: Mapping[str, str]) -> None:
    """Know the values of the secret-named variables of ``environ`` (keys, tokens …)."""
    remember(
        *(
            value
            for name, value in environ.items()
            if _SECRET_ENV.search(name.upper()) and value and value[0] not in "/~."
        )
    )


def holds_secret(text: str) -> bool:
    """Whether ``text`` contains a known secret."""
    return any(value in text for value in _values)


def scrub(text: str) -> str:
    """``text`` with every known secret replaced by ``***``."""
    for value in _values:
        if value in text:
            text = text.replace(value, REDACTED)
    return text


def scrub_json(value: Any) -> Any:
    """A JSON-like value with every known secret in its strings (keys included) replaced."""
    if not _values:
        return value
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, bytes):
        return scrub(value.decode("utf-8", "replace")).encode() if _holds(value) else value
    if isinstance(value, Mapping):
        return {scrub_json(k): scrub_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub_json(v) for v in value]
    return value


def _holds(data: bytes) -> bool:
    return any(value.encode() in data for value in _values)


def looks_secret(name: str) -> bool:
    """Whether a header or URL parameter called ``name`` carries a secret."""
    lower = name.lower()
    parts = _NAME_PARTS.split(lower)
    if any(part in _SECRET_WORDS for part in parts):
        return True
    # Run together: "xapikey", "gatewaytoken", "myauth".
    return lower.endswith(("key", "token", "secret", "auth", "password"))


def secret_values(pairs: Iterable[tuple[str, str]]) -> list[str]:
    """The values of the pairs whose names look secret (see :func:`looks_secret`)."""
    return [value for name, value in pairs if looks_secret(name)]
