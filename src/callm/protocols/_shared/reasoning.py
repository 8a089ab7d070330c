"""Carrying another protocol's reasoning companions through a caller's own format.

A reply from one protocol can hold opaque reasoning companions (Gemini's thought signatures,
OpenAI's reasoning item ids and encrypted content, Anthropic's thinking signatures) that the
upstream needs back on the next turn. When the caller speaks a different format, its own
opaque slot (Anthropic's ``signature``, Gemini's ``thoughtSignature``, OpenAI's
``encrypted_content``) carries them as a sealed token: :func:`seal` writes it,
:func:`unseal` reads it back when the caller returns the history, so a tool loop through
the gateway keeps working whatever the two formats are.

The token is ``callm1.`` and the base64url JSON ``[protocol, signature, id, data]``, with
the provider's verbatim record (``Reasoning.detail``, an OpenRouter ``reasoning_details``
entry) as a fifth element when there is one: it holds nothing the caller did not already
receive, and nothing secret.
"""

from __future__ import annotations

import base64
import binascii
import json

from ..._core.types import Reasoning

_PREFIX = "callm1."
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def is_foreign(part: Reasoning, protocol: str) -> bool:
    """True when ``part`` has companions that only another protocol understands."""
    if part.protocol in (None, protocol):
        return False
    return bool(part.signature or part.id or part.data or part.detail)


def seal(part: Reasoning) -> str:
    """The token that carries ``part``'s protocol and companions."""
    fields: list[object] = [part.protocol, part.signature, part.id, part.data]
    if part.detail is not None:
        fields.append(dict(part.detail))
    packed = base64.urlsafe_b64encode(_dumps(fields).encode()).decode("ascii")
    return _PREFIX + packed


def seal_as_bytes(part: Reasoning) -> str:
    """The token for a slot that holds bytes, base64 on the wire (Gemini's
    ``thoughtSignature``): the token's own text would not be valid base64 there."""
    return base64.b64encode(seal(part).encode()).decode("ascii")


_BYTES_PREFIX = base64.b64encode(_PREFIX.encode()).decode("ascii")[:8]  # "Y2FsbG0x"


def unseal(token: str | None, text: str) -> Reasoning | None:
    """The Reasoning a token sealed (with ``text``, plain or as bytes), or None when it is
    not a token."""
    if token and token.startswith(_BYTES_PREFIX):
        try:
            token = base64.b64decode(token, validate=True).decode()
        except (binascii.Error, ValueError):
            return None
    if not token or not token.startswith(_PREFIX):
        return None
    try:
        fields = json.loads(base64.urlsafe_b64decode(token[len(_PREFIX) :]))
    except (binascii.Error, ValueError):
        return None
    if not (isinstance(fields, list) and len(fields) in (4, 5)):
        return None
    detail = fields.pop() if len(fields) == 5 else None
    if not all(f is None or isinstance(f, str) for f in fields):
        return None
    if detail is not None and not isinstance(detail, dict):
        return None
    protocol, signature, item_id, data = fields
    return Reasoning(
        text, signature=signature, id=item_id, data=data, protocol=protocol, detail=detail
    )
