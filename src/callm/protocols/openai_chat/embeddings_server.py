"""OpenAI's ``POST /v1/embeddings`` as a server speaks it (the gateway's side), pure.

:func:`decode_embed_body` reads a caller's body into an :class:`EmbedRequest` (the model as
the caller named it); :func:`encode_embed_body` answers with the vectors as JSON numbers or,
when the caller asked (the official SDKs do), base64 float32.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..._core.embeddings import Embeddings, EmbedRequest, EncodingFormat
from ..._core.errors import InvalidRequestError
from .._shared.embeddings import floats_to_base64


def decode_embed_body(body: Mapping[str, object]) -> tuple[EmbedRequest, EncodingFormat]:
    """The request a caller sent, and how it wants the vectors back."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequestError("you must provide a model parameter")
    value = body.get("input")
    inputs = [value] if isinstance(value, str) else value
    if not isinstance(inputs, list) or not inputs:
        raise InvalidRequestError("'input' must be a string or a non-empty array of strings")
    if not all(isinstance(text, str) for text in inputs):
        raise InvalidRequestError(
            "'input' must be text: arrays of token ids are not accepted by this gateway"
        )
    wanted = body.get("encoding_format", "float")
    if wanted not in ("float", "base64"):
        raise InvalidRequestError(f"'encoding_format' must be 'float' or 'base64', not {wanted!r}")
    dimensions = body.get("dimensions")
    if dimensions is not None and (
        isinstance(dimensions, bool) or not isinstance(dimensions, int) or dimensions < 1
    ):
        raise InvalidRequestError(f"'dimensions' must be a positive integer, not {dimensions!r}")
    user = body.get("user")
    request = EmbedRequest(
        model, tuple(inputs), dimensions, user=user if isinstance(user, str) else None
    )
    return request, "base64" if wanted == "base64" else "float"


def encode_embed_body(
    result: Embeddings, *, model: str, encoding_format: EncodingFormat
) -> dict[str, object]:
    """The ``{"object": "list", "data": [...], "model", "usage"}`` answer."""
    encode = floats_to_base64 if encoding_format == "base64" else None
    data = [
        {
            "object": "embedding",
            "index": index,
            "embedding": encode(vector) if encode is not None else vector,
        }
        for index, vector in enumerate(result.vectors)
    ]
    tokens = result.usage.input_tokens
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
