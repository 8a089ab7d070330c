"""Vertex AI's connection: project, location, and OAuth 2.0 access tokens from google-auth.

Credentials are the service-account key file named by ``GOOGLE_APPLICATION_CREDENTIALS``,
else Google's application default credentials (``gcloud auth application-default login``,
or the metadata server on Google Cloud). google-auth (``pip install 'callm[vertex]'``) is
imported only when a Vertex model is first used. Each request takes the current access
token; google-auth refreshes it a few minutes before it expires, one refresh at a time. A
token is never logged: it travels only in the ``authorization`` header, a secret header.

The project is ``GOOGLE_CLOUD_PROJECT``, else the credentials' own; the location is
``GOOGLE_CLOUD_LOCATION``, else ``global``. ``VERTEX_BASE_URL`` replaces
``https://{location}-aiplatform.googleapis.com/v1`` (``https://aiplatform.googleapis.com/v1``
for ``global``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from .._core.endpoint import Endpoint
from .._core.errors import APIConnectionError, AuthenticationError, ConfigurationError

Lookup = Callable[[str], "str | None"]
SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
DEFAULT_LOCATION = "global"
# Vertex serves each publisher's models under its own path; the protocol picks the publisher.
PUBLISHERS = {"gemini": "google", "anthropic": "anthropic"}
AUTH_HINT = (
    "the Google Cloud credentials were refused or have expired: run `gcloud auth "
    "application-default login`, or set GOOGLE_APPLICATION_CREDENTIALS to a service-account "
    "key file with access to Vertex AI in this project"
)
# A token refreshed ahead of a request is used by it only this soon after (a request
# cancelled in between leaves it unused, and a later request checks again).
_AHEAD_S = 30.0
_NO_CREDENTIALS = (
    "no Google Cloud credentials for vertex: run `gcloud auth application-default login`, "
    "or set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file"
)


def vertex_endpoint(
    endpoint: Endpoint, lookup: Lookup, shared: dict[str, tuple[TokenSource, str | None]]
) -> Endpoint:
    """``endpoint`` (built without a key) addressed to the project and signed in with tokens.

    ``shared`` keeps one token source per provider, so its Gemini and Anthropic endpoints
    refresh one token between them.
    """
    if endpoint.provider not in shared:
        credentials, project_of_credentials = load_credentials(lookup)
        shared[endpoint.provider] = TokenSource(credentials), project_of_credentials
    tokens, found_project = shared[endpoint.provider]
    credentials = tokens.credentials
    project = lookup("GOOGLE_CLOUD_PROJECT") or found_project
    if not project:
        raise ConfigurationError(
            "no Google Cloud project for vertex: set GOOGLE_CLOUD_PROJECT (the project id)"
        )
    location = lookup("GOOGLE_CLOUD_LOCATION") or DEFAULT_LOCATION
    root = (lookup("VERTEX_BASE_URL") or _default_root(location)).rstrip("/")
    publisher = PUBLISHERS.get(endpoint.protocol, "google")
    headers = dict(endpoint.headers)
    quota_project = getattr(credentials, "quota_project_id", None)
    if quota_project:  # user credentials bill the project they name, as gcloud does
        headers["x-goog-user-project"] = quota_project
    return replace(
        endpoint,
        base_url=f"{root}/projects/{project}/locations/{location}/publishers/{publisher}",
        headers=headers,
        token_provider=tokens,
        secret_headers=endpoint.secret_headers | {"authorization"},
        auth_hint=AUTH_HINT,
        key_env=None,
    )


def _default_root(location: str) -> str:
    if location == "global":
        return "https://aiplatform.googleapis.com/v1"
    return f"https://{location}-aiplatform.googleapis.com/v1"


def load_credentials(lookup: Lookup) -> tuple[Any, str | None]:
    """google-auth credentials for Vertex, and the project they belong to (if they say)."""
    try:
        import google.auth
        from google.auth.exceptions import GoogleAuthError
    except ImportError:
        raise ConfigurationError(
            "Vertex AI signs in with google-auth: pip install 'callm[vertex]'"
        ) from None
    path = lookup("GOOGLE_APPLICATION_CREDENTIALS")
    found: tuple[Any, str | None] | None = None
    try:
        if path:
            found = _from_file(path)
        if found is None:  # ADC, or a key file of another kind (workload identity …)
            found = google.auth.default(scopes=SCOPES)
    except (GoogleAuthError, OSError, ValueError) as exc:
        where = f" ({path})" if path else ""
        raise ConfigurationError(f"{_NO_CREDENTIALS}{where}: {exc}") from None
    return found


def _from_file(path: str) -> tuple[Any, str | None] | None:
    """A service-account key or user credentials file, read by its own loader (google-auth
    deprecates its generic one); None for the other kinds, which ADC reads."""
    import json
    from pathlib import Path

    info = json.loads(Path(path).read_text(encoding="utf-8"))
    kind = info.get("type") if isinstance(info, dict) else None
    if kind == "service_account":
        from google.oauth2 import service_account

        credentials = service_account.Credentials.from_service_account_info(info, scopes=SCOPES)  # type: ignore[no-untyped-call]
        return credentials, info.get("project_id")
    if kind == "authorized_user":
        from google.oauth2.credentials import Credentials

        return Credentials.from_authorized_user_info(info, scopes=SCOPES), None  # type: ignore[no-untyped-call]
    return None


class TokenSource:
    """The current access token of one set of credentials, refreshed before it expires."""

    __slots__ = ("_ahead", "_credentials", "_lock", "_request")

    def __init__(self, credentials: Any) -> None:
        self._credentials = credentials
        self._lock = threading.Lock()
        self._request: Any = None
        # (token, when) of a refresh made ahead of a request by the async client
        self._ahead: tuple[str, float] | None = None

    def __repr__(self) -> str:
        return f"TokenSource({type(self._credentials).__name__})"

    @property
    def credentials(self) -> Any:
        return self._credentials

    def due(self) -> bool:
        """Whether the next token needs a refresh first (an HTTP call to Google)."""
        return not self._credentials.valid

    def refresh_ahead(self) -> None:
        """Refresh now if due. It blocks on the token endpoint, so the async client calls it
        on a worker thread before encoding a request; the request then takes this token even
        if google-auth already deems it due (one issued with less life than its margin),
        rather than refreshing again on the event loop."""
        with self._lock:
            credentials = self._credentials
            if not credentials.valid:
                self._refresh(credentials)
                self._ahead = str(credentials.token), time.monotonic()

    def __call__(self) -> str:
        with self._lock:
            ahead, self._ahead = self._ahead, None
            if ahead is not None and time.monotonic() - ahead[1] < _AHEAD_S:
                return ahead[0]
            credentials = self._credentials
            # ``valid`` turns false a few minutes before the expiry (google-auth's margin).
            if not credentials.valid:
                self._refresh(credentials)
            return str(credentials.token)

    def _refresh(self, credentials: Any) -> None:
        from google.auth import exceptions

        if self._request is None:
            import urllib3
            from google.auth.transport.urllib3 import Request

            self._request = Request(urllib3.PoolManager())  # type: ignore[no-untyped-call]
        try:
            credentials.refresh(self._request)
        except exceptions.TransportError as exc:
            raise APIConnectionError(
                f"could not reach Google's token endpoint to refresh the access token: {exc}",
                provider="vertex",
            ) from None
        except exceptions.GoogleAuthError as exc:
            raise AuthenticationError(
                f"the Google Cloud access token could not be refreshed ({exc}) — {AUTH_HINT}",
                provider="vertex",
            ) from None
