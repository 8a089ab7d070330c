"""The OpenAI Responses protocol.

This package is the protocol as the client sees it (see :class:`callm.protocols.WireProtocol`):
``client`` encodes requests and decodes replies, ``stream`` decodes the event stream.
"""

from __future__ import annotations

from .client import decode, decode_failure, decode_models, encode, encode_models
from .stream import stream_decoder

__all__ = ["decode", "decode_failure", "decode_models", "encode", "encode_models", "stream_decoder"]
