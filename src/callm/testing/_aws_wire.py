"""What the Bedrock fake says in AWS's own words: event-stream frames, SigV4 checks, errors.

The frames are written here independently of callm's decoder (``struct`` and ``zlib``), so
the fake checks the decoder rather than agreeing with it by construction. Signatures are
checked with the canonical request of :mod:`callm._core.sigv4`, which its tests hold to
AWS's published test suite.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import struct
import zlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from .._core.sigv4 import ALGORITHM, canonical_request, parse_authorization, signing_key

EVENTSTREAM = "application/vnd.amazon.eventstream"
SIGNING_NAME = "bedrock"
_SKEW_SECONDS = 300  # AWS refuses a request signed more than five minutes away from now
_ERROR_URL = "http://internal.amazon.com/coral/com.amazon.bedrock/"
_BAD_SIGNATURE = (
    "The request signature we calculated does not match the signature you provided. Check "
    "your AWS Secret Access Key and signing method. Consult the service documentation for "
    "details."
)
_BAD_TOKEN = "The security token included in the request is invalid."
_BAD_API_KEY = "Authentication failed: Please make sure your API Key is valid."


def frame(headers: Mapping[str, str], payload: bytes) -> bytes:
    """One event-stream message with string headers, both CRCs computed."""
    block = b"".join(
        struct.pack(">B", len(name.encode()))
        + name.encode()
        + struct.pack(">BH", 7, len(value.encode()))
        + value.encode()
        for name, value in headers.items()
    )
    total = 12 + len(block) + len(payload) + 4
    prelude = struct.pack(">II", total, len(block))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    message = prelude + block + payload
    return message + struct.pack(">I", zlib.crc32(message))


def event_frame(event_type: str, payload: Mapping[str, Any]) -> bytes:
    """A ConverseStream event; like AWS, each payload carries a ``p`` field of padding."""
    body = {**payload, "p": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123"[: 8 + 3]}
    headers = {
        ":event-type": event_type,
        ":content-type": "application/json",
        ":message-type": "event",
    }
    return frame(headers, json.dumps(body, separators=(",", ":")).encode())


def exception_frame(exception_type: str, message: str) -> bytes:
    """An exception inside the stream (``throttlingException`` …), after which it ends."""
    headers = {
        ":exception-type": exception_type,
        ":content-type": "application/json",
        ":message-type": "exception",
    }
    return frame(headers, json.dumps({"message": message}).encode())


def aws_error(status: int, error_type: str, message: str, request_id: str) -> web.Response:
    """An error answer as Bedrock sends one: the type in a header, the message in the body."""
    return web.Response(
        status=status,
        body=json.dumps({"message": message}).encode(),
        headers={
            "Content-Type": "application/json",
            "x-amzn-RequestId": request_id,
            "x-amzn-ErrorType": f"{error_type}:{_ERROR_URL}",
        },
    )


def check_auth(
    request: web.Request,
    headers: Mapping[str, str],
    body: bytes,
    *,
    api_key: str | None,
    aws_keys: Mapping[str, str],
    request_id: str,
) -> web.Response | None:
    """None when the request may pass, else the 403 Bedrock would answer.

    A bearer token must be ``api_key`` when the server has one. A SigV4 signature must be
    well formed, scoped to ``bedrock`` and made within five minutes; when the access key id
    is one of ``aws_keys`` the signature itself is recomputed and compared. With no
    ``aws_keys`` at all, any well-formed signature passes (as any key passes without
    ``api_key``).
    """
    authorization = headers.get("authorization")
    if authorization is None:
        return aws_error(
            403, "MissingAuthenticationTokenException", "Missing Authentication Token", request_id
        )
    if authorization.startswith("Bearer "):
        if api_key is not None and authorization[len("Bearer ") :] != api_key:
            return aws_error(403, "AccessDeniedException", _BAD_API_KEY, request_id)
        return None
    problem = _signature_problem(request, headers, body, aws_keys)
    if problem is None:
        return None
    return aws_error(403, problem[0], problem[1], request_id)


def _signature_problem(
    request: web.Request, headers: Mapping[str, str], body: bytes, aws_keys: Mapping[str, str]
) -> tuple[str, str] | None:
    fields = parse_authorization(headers["authorization"])
    amz_date = headers.get("x-amz-date", "")
    if fields is None or not amz_date:
        return "IncompleteSignatureException", f"Authorization header requires {ALGORITHM}"
    scope = fields["Credential"].split("/")
    if len(scope) != 5 or scope[4] != "aws4_request" or scope[1] != amz_date[:8]:
        return "IncompleteSignatureException", "Credential is not a valid credential scope"
    key_id, _, region, service, _ = scope
    if service != SIGNING_NAME:
        return (
            "InvalidSignatureException",
            f"Credential should be scoped to correct service: '{SIGNING_NAME}'.",
        )
    try:
        signed_at = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        return "IncompleteSignatureException", f"invalid X-Amz-Date {amz_date!r}"
    if abs((datetime.now(UTC) - signed_at).total_seconds()) > _SKEW_SECONDS:
        return (
            "InvalidSignatureException",
            f"Signature expired: {amz_date} is now earlier than the time allowed.",
        )
    if not aws_keys:
        return None
    secret = aws_keys.get(key_id)
    if secret is None:
        return "UnrecognizedClientException", _BAD_TOKEN
    names = fields["SignedHeaders"].split(";")
    if "host" not in names or any(n not in headers for n in names):
        return "IncompleteSignatureException", "a signed header is missing from the request"
    signed = {n: headers[n] for n in names}
    url = f"http://{headers['host']}{request.raw_path}"
    _, canonical = canonical_request(request.method, url, signed, hashlib.sha256(body).hexdigest())
    to_sign = "\n".join(
        (ALGORITHM, amz_date, "/".join(scope[1:]), hashlib.sha256(canonical.encode()).hexdigest())
    )
    key = signing_key(secret, amz_date[:8], region, service)
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, fields["Signature"]):
        return "InvalidSignatureException", _BAD_SIGNATURE
    return None
