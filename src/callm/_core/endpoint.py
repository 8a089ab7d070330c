"""A provider connection, resolved once per client: base URL, headers, quirks."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import quote

from .http import HttpRequest, redact_url
from .quirks import DEFAULT as DEFAULT_QUIRKS
from .quirks import Quirks
from .secrets import remember


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Everything a protocol module needs to address one provider.

    Built once per (client, provider) and reused, so no per-call work rebuilds headers.
    """

    provider: str
    protocol: str
    base_url: str
    headers: Mapping[str, str]
    # Header names whose values are secrets (redacted wherever requests are shown).
    secret_headers: frozenset[str] = frozenset()
    # Appended to every URL, e.g. Azure's "?api-version=2024-10-21".
    query: str = ""
    # Azure classic style: the model names a deployment in the URL path.
    deployment_urls: bool = False
    # How this provider's server departs from its protocol (typed fields, per entry).
    quirks: Quirks = DEFAULT_QUIRKS
    # Called per request for a fresh bearer token (Azure Entra ID).
    token_provider: Callable[[], str] | None = field(default=None, repr=False)
    # How the user supplies the key, for messages that tell them what to do.
    key_env: str | None = None
    # Signs each request as it is encoded (AWS SigV4 for Bedrock); None for a plain key.
    signer: Callable[[HttpRequest], HttpRequest] | None = field(default=None, repr=False)
    # What to do when the provider refuses the credentials, for providers that take no
    # API key (cloud credentials): replaces the usual "check the API key" advice.
    auth_hint: str | None = None

    def __repr__(self) -> str:
        where = redact_url(self.base_url + self.query)
        return f"Endpoint({self.provider!r}, {where!r}, protocol={self.protocol!r})"

    def url(self, path: str, model: str | None = None) -> str:
        """The full URL of ``path`` ("/chat/completions"), deployment-scoped where needed."""
        if self.deployment_urls and model is not None:  # one escaped path segment, whatever
            return f"{self.base_url}/deployments/{quote(model, safe='')}{path}{self.query}"
        return f"{self.base_url}{path}{self.query}"

    def signed(self, request: HttpRequest) -> HttpRequest:
        """``request`` signed for this provider, when it signs requests (else unchanged)."""
        return request if self.signer is None else self.signer(request)

    def request_headers(self, extra: Mapping[str, str] | None = None) -> Mapping[str, str]:
        """The headers of one request: the prebuilt ones, a fresh token, the caller's extras."""
        if self.token_provider is None and not extra:
            return self.headers
        headers = dict(self.headers)
        if self.token_provider is not None:
            token = self.token_provider()
            remember(token)  # scrubbed by value should a server echo it
            headers["authorization"] = f"Bearer {token}"
        if extra:
            headers.update(extra)
        return headers
