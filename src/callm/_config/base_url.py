"""Secrets a base URL carries: a ``user:password@`` and tokens in its query string.

``https://user:pw@proxy.example/v1`` is how many proxies and self-hosted servers are
addressed. The credentials are taken out of the URL and sent the way they are meant to be,
as HTTP basic auth; the query (``?token=…``, ``?api_key=…``) is kept apart and appended to
every request URL, after the path. Both are remembered as secrets (see
:mod:`callm._core.secrets`), so they are hidden wherever the URL or an echo of it is shown.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

from .._core import secrets
from .._core.errors import ConfigurationError


@dataclass(frozen=True, slots=True)
class BaseURL:
    """A base URL taken apart: where it points, its query, and basic-auth credentials."""

    url: str  # scheme, host, port and path only
    query: str = ""  # "?token=…" or ""
    basic_auth: str | None = None  # the whole Authorization value, "Basic …"


def split_base_url(provider: str, base_url: str) -> BaseURL:
    """``base_url`` without its credentials and query, which are remembered as secrets."""
    if "@" not in base_url and "?" not in base_url:
        return BaseURL(base_url.rstrip("/"))
    parts = urlsplit(base_url)
    host = parts.netloc.rpartition("@")[2]  # host[:port] as written, IPv6 brackets kept
    url = urlunsplit((parts.scheme, host, parts.path, "", "")).rstrip("/")
    secrets.remember(*secrets.secret_values(parse_qsl(parts.query)))
    query = f"?{parts.query}" if parts.query else ""
    return BaseURL(url, query, _basic_auth(provider, parts.username, parts.password))


def _basic_auth(provider: str, user: str | None, password: str | None) -> str | None:
    if user is None and password is None:
        return None
    if not password:
        raise ConfigurationError(
            f"provider {provider!r}: the base URL names a user but no password; write it "
            "https://USER:PASSWORD@host/… (sent as basic auth) or drop the user"
        )
    import base64  # only for a base URL with a user in it

    pair = f"{unquote(user or '')}:{unquote(password)}"
    token = base64.b64encode(pair.encode()).decode()
    secrets.remember(unquote(password), password, token)
    return f"Basic {token}"


def joined_query(first: str, second: str) -> str:
    """Two ``?a=b`` query strings as one (either may be empty)."""
    if not first or not second:
        return first or second
    return f"{first}&{second.removeprefix('?')}"
