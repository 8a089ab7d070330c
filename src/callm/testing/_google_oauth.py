"""A fake of Google's OAuth 2.0 token endpoint, and the bearer check of the Vertex routes.

``POST /token`` takes the grant a service account's credentials send
(``urn:ietf:params:oauth:grant-type:jwt-bearer``): a JWT signed RS256 with its private key.
The signature is verified with the public key given to
:meth:`FakeOpenAIServer.accept_google_key` under the JWT's ``kid``; ``aud`` must be this
endpoint (or Google's own), ``exp`` in the future, and ``scope`` name cloud-platform. (User
credentials always refresh at Google's own endpoint — google-auth ignores their
``token_uri`` — so there is nothing here for them.)

It answers ``{"access_token", "expires_in", "token_type"}``, or ``invalid_grant`` as Google
does. Once any key is trusted, the Vertex routes want a token issued here and not yet
expired (else 401 ``UNAUTHENTICATED``); before that, any bearer token passes.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any

from aiohttp import web

from ._http import AddRoute, record_request
from ._state import OAuthState, ServerState

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# google-auth addresses every service-account JWT to Google's token endpoint, whatever the
# key file's token_uri says; Google accepts that audience, so the fake does too.
GOOGLE_TOKEN_ENDPOINT = "https://oauth2.googleapis.com/token"
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
_UNAUTHENTICATED = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login "
    "cookie or other valid authentication credential. See "
    "https://developers.google.com/identity/sign-in/web/devconsole-project."
)


def register(add: AddRoute, state: ServerState) -> None:
    """Add the token endpoint to the fake server's application."""

    async def token(request: web.Request) -> web.StreamResponse:
        record = await record_request(request)
        state.record(record)
        form = _form(record.body)
        endpoint = f"{request.scheme}://{request.host}{request.path}"
        with state.oauth() as oauth:
            delay = oauth.delay
        if delay:
            await asyncio.sleep(delay)
        with state.oauth() as oauth:
            oauth.token_requests += 1
            problem = _grant_problem(oauth, form, endpoint)
            if problem is not None:
                return _invalid_grant(problem)
            access = "ya29.fake-" + state.new_id()
            oauth.issued[access] = time.time() + oauth.lifetime
            lifetime = oauth.lifetime
        body = {"access_token": access, "expires_in": lifetime, "token_type": "Bearer"}
        return web.json_response(body)

    add("POST", "/token", token)


def check_token(state: ServerState, headers: dict[str, str]) -> web.Response | None:
    """None when a Vertex request's bearer token may pass, else Google's 401."""
    authorization = headers.get("authorization", "")
    token = authorization[len("Bearer ") :] if authorization.startswith("Bearer ") else None
    with state.oauth() as oauth:
        if not oauth.enforced:
            ok = token is not None
        else:
            expires = oauth.issued.get(token or "")
            ok = expires is not None and expires > time.time()
    if ok:
        return None
    error = {"code": 401, "message": _UNAUTHENTICATED, "status": "UNAUTHENTICATED"}
    return web.json_response({"error": error}, status=401)


def _form(body: bytes) -> dict[str, str]:
    from urllib.parse import parse_qsl

    return dict(parse_qsl(body.decode("utf-8", "replace")))


def _grant_problem(oauth: OAuthState, form: dict[str, Any], endpoint: str) -> str | None:
    grant = form.get("grant_type")
    if grant == JWT_GRANT:
        return _jwt_problem(oauth, str(form.get("assertion") or ""), endpoint)
    return f"Invalid grant_type: {grant}"


def _jwt_problem(oauth: OAuthState, assertion: str, endpoint: str) -> str | None:
    try:
        head, claims, signature, signed = _jwt_parts(assertion)
    except ValueError:
        return "Invalid JWT: malformed"
    pem = oauth.public_keys.get(str(head.get("kid")))
    if oauth.public_keys and (pem is None or not _verified(pem, signed, signature)):
        return "Invalid JWT Signature."
    now = time.time()
    if claims.get("aud") not in (endpoint, GOOGLE_TOKEN_ENDPOINT):
        return f"Invalid JWT: audience must be {endpoint}"
    if not isinstance(claims.get("exp"), int | float) or claims["exp"] < now:
        return "Invalid JWT: Token must be a short-lived token and in a reasonable timeframe."
    if CLOUD_PLATFORM not in str(claims.get("scope") or "").split():
        return "Invalid JWT: the scope must include cloud-platform"
    return None


def _jwt_parts(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    head, claims, signature = token.split(".")
    parsed = [json.loads(_unb64(head)), json.loads(_unb64(claims))]
    if not all(isinstance(p, dict) for p in parsed):
        raise ValueError("not a JWT")
    return parsed[0], parsed[1], _unb64(signature), f"{head}.{claims}".encode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _verified(pem: str, signed: bytes, signature: bytes) -> bool:
    """An RS256 signature checked with cryptography (a test dependency of the fake)."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    key = serialization.load_pem_public_key(pem.encode())
    if not isinstance(key, rsa.RSAPublicKey):
        return False
    try:
        key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def _invalid_grant(description: str) -> web.Response:
    body = {"error": "invalid_grant", "error_description": description}
    return web.json_response(body, status=400)
