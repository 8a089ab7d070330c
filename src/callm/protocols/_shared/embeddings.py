"""What the embeddings codecs of every protocol share: reading vectors as they travel.

Vectors come as JSON numbers or, when asked (``encoding_format="base64"``), as base64 of
little-endian float32. The second is several times faster to read: ``array.frombytes`` and
``tolist`` are C loops, where JSON numbers go through the float parser one by one.
"""

from __future__ import annotations

import binascii
import sys
from array import array
from base64 import b64decode

from ..._core.endpoint import Endpoint
from ..._core.errors import APIResponseError

_SWAP = sys.byteorder != "little"


def vector_of(value: object, endpoint: Endpoint) -> list[float]:
    """One vector as a list of floats, from JSON numbers or a base64 float32 string."""
    if isinstance(value, str):
        return floats_from_base64(value, endpoint)
    if isinstance(value, list):
        return value
    raise APIResponseError(
        f"an embedding is neither a list of numbers nor base64: {str(value)[:100]!r}",
        provider=endpoint.provider,
    )


def floats_from_base64(text: str, endpoint: Endpoint) -> list[float]:
    """Base64 of little-endian float32 values, as Python floats."""
    try:
        data = b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        data = b"\x00"  # not base64: reported below, as any other wrong length
    if len(data) % 4:
        raise APIResponseError(
            f"an embedding's base64 is not a whole number of float32 values: {text[:60]!r}",
            provider=endpoint.provider,
        )
    values = array("f")
    values.frombytes(data)
    if _SWAP:
        values.byteswap()
    return values.tolist()


def floats_to_base64(vector: list[float]) -> str:
    """The reverse (the gateway's and the fakes' side): float32, little-endian, base64."""
    from base64 import b64encode

    values = array("f", vector)
    if _SWAP:
        values.byteswap()
    return b64encode(values.tobytes()).decode("ascii")
