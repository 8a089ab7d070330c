"""AWS Signature Version 4: sign an :class:`HttpRequest` with a set of AWS credentials.

Pure computation (hashlib, hmac), no I/O and no clock of its own: the caller passes the
time, so the signature of a given request at a given instant is reproducible — which is how
the tests check it against AWS's published test suite.

The steps follow AWS's description of SigV4: a canonical request (method, the path encoded
once more, the sorted query, the sorted lower-case headers with trimmed values, the names
signed, the body's SHA-256), the string to sign (algorithm, time, scope, the canonical
request's hash), a signing key derived from the secret by HMAC over date, region, service
and ``aws4_request``, and the ``Authorization`` header that names the key id, the scope, the
signed headers and the signature. The secret never leaves this module.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from urllib.parse import quote, unquote, urlsplit

from .http import HttpRequest

ALGORITHM = "AWS4-HMAC-SHA256"
SECRET_HEADERS = frozenset({"authorization", "x-amz-security-token"})
# Headers a proxy or the transport may change on the way: signing them would break the
# signature without making the request any safer (botocore leaves out the same ones).
_UNSIGNED = frozenset({"authorization", "user-agent", "expect", "x-amzn-trace-id"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class AwsCredentials:
    """An access key id, its secret and, for temporary credentials, a session token."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        shown = self.access_key_id[:4] + "…" if self.access_key_id else ""
        token = ", session_token=***" if self.session_token else ""
        return f"AwsCredentials(access_key_id={shown!r}, secret_access_key=***{token})"


def sign(
    request: HttpRequest,
    credentials: AwsCredentials,
    *,
    region: str,
    service: str,
    now: datetime,
) -> HttpRequest:
    """``request`` with ``x-amz-date`` (and the session token) added and signed.

    ``now`` must be in UTC. The headers the request already has are signed as they are;
    ``authorization`` and ``x-amz-security-token`` become secret headers, hidden wherever
    the request is shown.
    """
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    headers = {k.lower(): v for k, v in request.headers.items() if k.lower() != "authorization"}
    headers["x-amz-date"] = amz_date
    if credentials.session_token:
        headers["x-amz-security-token"] = credentials.session_token
    # The transport writes the host header from the URL, as host_of() does: it is signed
    # but not added (a second one would make the request malformed).
    signed_names, canonical = canonical_request(
        request.method,
        request.url,
        {"host": host_of(request.url), **headers},
        payload_hash(request.body),
    )
    scope = f"{amz_date[:8]}/{region}/{service}/aws4_request"
    to_sign = "\n".join((ALGORITHM, amz_date, scope, _sha256_hex(canonical.encode())))
    key = signing_key(credentials.secret_access_key, amz_date[:8], region, service)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"{ALGORITHM} Credential={credentials.access_key_id}/{scope}, "
        f"SignedHeaders={signed_names}, Signature={signature}"
    )
    return replace(request, headers=headers, secret_headers=request.secret_headers | SECRET_HEADERS)


def canonical_request(
    method: str, url: str, headers: Mapping[str, str], body_hash: str
) -> tuple[str, str]:
    """``(signed header names, canonical request)`` of a request as it will be sent."""
    parts = urlsplit(url)
    names = sorted(n for n in (k.lower() for k in headers) if n not in _UNSIGNED)
    values = {k.lower(): v for k, v in headers.items()}
    header_lines = "".join(f"{n}:{_canonical_value(values[n])}\n" for n in names)
    signed = ";".join(names)
    text = "\n".join(
        (
            method.upper(),
            canonical_path(parts.path),
            canonical_query(parts.query),
            header_lines,
            signed,
            body_hash,
        )
    )
    return signed, text


def canonical_path(path: str) -> str:
    """The path as sent, URI-encoded once more (every service but S3 signs it so)."""
    return quote(path or "/", safe="/-_.~")


def canonical_query(query: str) -> str:
    """The query's pairs, each name and value encoded the AWS way, sorted."""
    if not query:
        return ""
    pairs = []
    for item in query.split("&"):
        name, _, value = item.partition("=")
        pairs.append((_encode(unquote(name)), _encode(unquote(value))))
    return "&".join(f"{n}={v}" for n, v in sorted(pairs))


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    """The key derived for one day, region and service (``kSigning`` in AWS's words)."""
    key = ("AWS4" + secret).encode()
    for piece in (date, region, service, "aws4_request"):
        key = hmac.new(key, piece.encode(), hashlib.sha256).digest()
    return key


def payload_hash(body: bytes | None) -> str:
    return _sha256_hex(body or b"")


def host_of(url: str) -> str:
    """The ``host`` header a client sends for ``url``: the port only when not the default."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal keeps its brackets
        host = f"[{host}]"
    port = parts.port
    if port is not None and port != _DEFAULT_PORTS.get(parts.scheme):
        return f"{host}:{port}"
    return host


def parse_authorization(value: str) -> dict[str, str] | None:
    """The ``Credential``, ``SignedHeaders`` and ``Signature`` of a SigV4 header, or None."""
    algorithm, _, rest = value.partition(" ")
    if algorithm != ALGORITHM:
        return None
    fields = dict(_pairs(rest.split(",")))
    if not {"Credential", "SignedHeaders", "Signature"} <= fields.keys():
        return None
    return fields


def _pairs(items: Iterable[str]) -> Iterable[tuple[str, str]]:
    for item in items:
        name, eq, value = item.strip().partition("=")
        if eq:
            yield name, value


def _encode(text: str) -> str:
    return quote(text, safe="-_.~")


def _canonical_value(value: str) -> str:
    return " ".join(value.split())


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
