"""Redaction applied to everything before it is stored: no key, no base64 payload.

Two kinds of secrets are removed, wherever they appear — JSON values, response text,
error messages and **message text too** (users paste keys into prompts; a log that keeps
them is a leak waiting to be shared):

- **keys**: every key callm knows, by value (:mod:`callm._core.secrets`: keys from
  arguments, config, environment, keys file and keyring, tokens, base-URL credentials —
  whatever their shape); strings shaped like a provider key (``sk-…``, ``sk-ant-…``, ``sk-proj-…``,
  ``AIza…``, ``gsk_…``, ``xai-…``, ``hf_…``, GitHub and AWS key ids), bearer tokens, the
  value after a secret-named header or field (``authorization``, ``x-api-key``,
  ``api-key``, ``api_key``, ``x-goog-api-key``) and a ``key=`` URL query parameter become
  ``***``. In a JSON object, the value of a field whose *name* is secret-shaped becomes
  ``***`` whatever it looks like (Azure keys are 32 plain hex digits: only their place
  gives them away).
- **base64 payloads**: a ``data:<type>;base64,…`` URL becomes
  ``data:<type>;base64,<N bytes redacted>``; any other unbroken run of 256 or more base64
  characters (an inline Anthropic/Gemini image, encrypted reasoning, a pasted blob)
  becomes ``<base64: N bytes redacted>``, and so does a base64 value of any length in a
  field named for a payload (``data``, ``bytes``, ``b64_json``, ``signature``,
  ``thought_signature``, ``encrypted_content``).

False positives are accepted where a key could otherwise slip through: prose such as
"sk-" followed by 16 word characters, or a 256-character run of letters without a space,
is masked too.

Redaction is one-way and idempotent: redacting twice gives the same text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from .._core import secrets

REDACTED = "***"

# Field and header names whose values are secrets, compared case-insensitively with
# "-" and "_" treated alike.
_SECRET_NAMES = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "x-api-key",
        "api-key",
        "apikey",
        "x-goog-api-key",
        "api-secret",
        "client-secret",
        "access-token",
        "refresh-token",
        "password",
        "cookie",
        "set-cookie",
    }
)

_PLAIN, _SECRET, _PAYLOAD = 0, 1, 2
_SCALARS = frozenset({int, float, bool})

_DATA_URL = re.compile(
    r"data:([\w.+-]+/[\w.+-]+)?((?:;[\w.+-]+=[\w.+-]+)*);base64,([A-Za-z0-9+/=_-]+)"
)
_LONG_BASE64 = re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/_-]{256,}={0,2}")
_KEY_SHAPES = re.compile(
    r"""
      \bsk-[A-Za-z0-9_-]{16,}                  # OpenAI, Anthropic (sk-ant-), DeepSeek, OpenRouter
    | \bAIza[0-9A-Za-z_-]{30,}                  # Google / Gemini
    | \bgsk_[A-Za-z0-9]{20,}                    # Groq
    | \bxai-[A-Za-z0-9]{20,}                    # xAI
    | \bhf_[A-Za-z0-9]{20,}                     # Hugging Face
    | \bgh[pousr]_[A-Za-z0-9]{20,}              # GitHub tokens
    | \bgithub_pat_[A-Za-z0-9_]{20,}
    | \b(?:AKIA|ASIA)[0-9A-Z]{16}\b             # AWS access key ids
    """,
    re.VERBOSE,
)
# Only "Bearer" stands alone: "token" and "basic" are ordinary words in prose, and a
# real bearer token is long.
_BEARER = re.compile(r"\b([Bb]earer|BEARER)(\s+)[A-Za-z0-9._~+/=:-]{16,}")
# "Authorization: Bearer x", "x-api-key=x", '"api_key": "x"' inside free text.
_ASSIGNMENT_HINTS = ("authorization", "api-key", "api_key", "apikey")
_SECRET_ASSIGNMENT = re.compile(
    r"""(?ix)
    (\b(?:proxy-)?authorization|\bx-api-key|\bapi[-_]?key|\bx-goog-api-key)
    (["']?\s*[:=]\s*["']?)
    (?:(bearer|basic|token)\s+)?
    [^\s"',;})\]&]+
    """
)
# Fields that carry opaque binary payloads in provider JSON (Anthropic "source.data",
# Gemini "inlineData.data", images' "b64_json", reasoning signatures and encrypted content).
_PAYLOAD_NAMES = frozenset(
    {
        "data",
        "bytes",
        "b64-json",
        "encrypted-content",
        "signature",
        "thought-signature",
        "thoughtsignature",
    }
)
_BASE64_VALUE = re.compile(r"[A-Za-z0-9+/_-]{16,}={0,2}")
_KEY_PARAM = re.compile(r"([?&](?:key|api[-_]?key)=)[^&\s\"'#]+", re.IGNORECASE)


def redact_text(text: str) -> str:
    """``text`` with keys replaced by ``***`` and base64 payloads by a byte count."""
    if not text:
        return text
    # Substring tests first: most text holds none of the markers, and they cost far less
    # than the regular expressions they guard.
    lower = text.lower()
    if "base64," in lower:
        text = _DATA_URL.sub(_data_url_summary, text)
    if len(text) >= 256:
        text = _LONG_BASE64.sub(_base64_summary, text)
    return mask_keys(text, lower)


def mask_keys(text: str, lower: str | None = None) -> str:
    """``text`` with keys replaced by ``***``, base64 payloads left as they are (``lower``:
    the text's lower-case form when the caller has it, for the substring guards)."""
    if not text:
        return text
    if lower is None:
        lower = text.lower()
    if any(name in lower for name in _ASSIGNMENT_HINTS):
        text = _SECRET_ASSIGNMENT.sub(_assignment_redacted, text)
    if "bearer" in lower:
        text = _BEARER.sub(rf"\1\2{REDACTED}", text)
    if "key=" in lower:
        text = _KEY_PARAM.sub(rf"\1{REDACTED}", text)
    return _KEY_SHAPES.sub(REDACTED, secrets.scrub(text))


def redact_json(value: Any) -> Any:
    """A copy of a JSON-like value with every string redacted and secret fields masked."""
    kind = type(value)
    if kind is str:
        return redact_text(value)
    if kind is dict:
        return {str(k): _redact_field(str(k), v) for k, v in value.items()}
    if kind is list or kind is tuple:
        return [redact_json(v) for v in value]
    if value is None or kind in _SCALARS:
        return value
    # Rarer containers (a MappingProxyType, a frozen tuple subclass …) take the slow checks.
    if isinstance(value, Mapping):
        return {str(k): _redact_field(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_json(v) for v in value]
    return value


_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode
# What could make redaction change a JSON text, looked for in the encoded text itself: a
# superset of every trigger of redact_text and redact_json (hint words, secret and payload
# field names, key prefixes, long base64 runs), found by regular expressions at C speed.
# Key prefixes go without the word boundaries of _KEY_SHAPES: in encoded JSON an escape
# such as "\\n" can glue a letter to the front of a key. Any hit takes the slow path.
_SUSPECT_WORDS = re.compile(
    r"base64|bearer|key=|api[-_]?key|authoriz|secret|access[-_]token|refresh[-_]token"
    r'|password|cookie|"data":|"bytes":|"b64|encrypted|signature'
)
_SUSPECT_PREFIX = re.compile(r"sk-|AIza|gsk_|xai-|hf_|gh[pousr]_|github_pat_|AKIA|ASIA")
_SUSPECT_RUN = re.compile(r"[A-Za-z0-9+/_-]{256,}")


def redacted_json_text(value: Any) -> str:
    """``value`` redacted (see :func:`redact_json`) and encoded as compact JSON text.

    Most values hold nothing to redact: they are encoded once and checked for anything
    suspect, and only a value with a suspect is walked by :func:`redact_json`.
    """
    text = _encode(value)
    if (
        _SUSPECT_WORDS.search(text.lower())
        or _SUSPECT_PREFIX.search(text)
        or (len(text) >= 256 and _SUSPECT_RUN.search(text))
        or secrets.holds_secret(text)
    ):
        return _encode(redact_json(value))
    return text


def is_secret_name(name: str) -> bool:
    """Whether a header or field called ``name`` holds a secret (``Authorization``, ``api_key``)."""
    return _name_class(name) == _SECRET


def _redact_field(name: str, value: Any) -> Any:
    role = _name_class(name)
    if role == _SECRET and value:
        return REDACTED
    if role == _PAYLOAD and type(value) is str and _BASE64_VALUE.fullmatch(value):
        return f"<base64: {_base64_len(value)} bytes redacted>"
    return redact_json(value)


@lru_cache(maxsize=1024)
def _name_class(name: str) -> int:
    normal = name.lower().replace("_", "-")
    if normal in _SECRET_NAMES:
        return _SECRET
    return _PAYLOAD if normal in _PAYLOAD_NAMES else _PLAIN


def _base64_len(payload: str) -> int:
    body = payload.rstrip("=")
    return len(body) * 3 // 4


def _data_url_summary(m: re.Match[str]) -> str:
    media_type = m.group(1) or ""
    return f"data:{media_type}{m.group(2)};base64,<{_base64_len(m.group(3))} bytes redacted>"


def _base64_summary(m: re.Match[str]) -> str:
    return f"<base64: {_base64_len(m.group(0))} bytes redacted>"


def _assignment_redacted(m: re.Match[str]) -> str:
    # The value may already be "***" (redacting twice): the result is the same either way.
    scheme = f"{m.group(3)} " if m.group(3) else ""
    return f"{m.group(1)}{m.group(2)}{scheme}{REDACTED}"
