"""How much of a body callm reads: an error page only in part, a compressed body only while
it expands like data rather than like a bomb.

An error answer is read up to :data:`ERROR_BODY_LIMIT` — enough to say what went wrong — so
a 100 MB HTML page neither takes long to arrive nor sits in an exception. A compressed body
(the async transports ask for gzip) may not grow past :data:`BOMB_FLOOR` at more than
:data:`BOMB_RATIO` times the bytes that came over the wire: text compresses some ten times,
a gzip bomb a thousand.
"""

from __future__ import annotations

from collections.abc import Mapping

from .._core.errors import APIResponseError

ERROR_BODY_LIMIT = 1 << 20
BOMB_FLOOR = 16 << 20
BOMB_RATIO = 100


def check_expansion(headers: Mapping[str, str], size: int, wire_bytes: int | None) -> None:
    """Refuse a compressed body grown to ``size`` from ``wire_bytes`` like a bomb would."""
    if size > BOMB_FLOOR and wire_bytes and size > BOMB_RATIO * wire_bytes:
        encoding = headers.get("content-encoding", "compressed")
        raise APIResponseError(
            f"the server's {encoding} body expands more than {BOMB_RATIO} times (past "
            f"{BOMB_FLOOR >> 20} MiB from {wire_bytes:,} bytes): refused as a decompression bomb"
        )
