"""The Amazon Bedrock Converse protocol.

This package is the protocol as the client sees it (see :class:`callm.protocols.WireProtocol`):
``client`` encodes requests and decodes replies, ``stream`` decodes ConverseStream's events,
``eventstream`` cuts AWS's binary event-stream framing into them.
"""

from __future__ import annotations

from .client import (
    decode,
    decode_count_tokens,
    decode_failure,
    decode_models,
    encode,
    encode_count_tokens,
    encode_models,
    stream_decoder,
    stream_framing,
)

__all__ = [
    "decode",
    "decode_count_tokens",
    "decode_failure",
    "decode_models",
    "encode",
    "encode_count_tokens",
    "encode_models",
    "stream_decoder",
    "stream_framing",
]
