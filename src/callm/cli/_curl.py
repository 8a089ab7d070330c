"""``callm --curl``: an HTTP request as a curl command you can paste, with no secret in it.

Secret headers never show their value: they read ``$OPENAI_API_KEY`` (so the pasted command
works in a shell where that variable is set) or ``***`` when there is no variable to name.
"""

from __future__ import annotations

import re
import shlex

from .._core.http import HttpRequest, redact_url

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TOKEN = re.compile(r"[A-Za-z0-9!#%&'*+.^_`|~-]+")
_AUTH_SCHEMES = frozenset({"bearer", "basic", "token"})


def curl_command(request: HttpRequest, *, key_env: str | None = None) -> str:
    """The curl command that sends ``request``, one argument per line, secrets redacted.

    ``key_env`` names the environment variable that holds the key; secret header values
    become a reference to it (``"authorization: Bearer $OPENAI_API_KEY"``), else ``***``.
    """
    secret = {name.lower() for name in request.secret_headers}
    lines = ["curl " + shlex.quote(redact_url(request.url))]
    if request.method != ("POST" if request.body is not None else "GET"):
        lines.append("-X " + shlex.quote(request.method))
    for name, value in request.headers.items():
        if name.lower() in secret:
            lines.append("-H " + _secret_header(name, value, key_env))
        else:
            lines.append("-H " + shlex.quote(f"{name}: {value}"))
    if request.body is not None and b'"stream":true' in request.body:
        lines.append("-N")  # print server-sent events as they arrive, unbuffered
    if request.body is not None:
        lines.append("--data-raw " + shlex.quote(request.body.decode("utf-8", "replace")))
    return " \\\n  ".join(lines)


def _secret_header(name: str, value: str, key_env: str | None) -> str:
    """A quoted ``-H`` argument whose value is a variable reference, never the secret."""
    scheme, sep, _ = value.partition(" ")
    has_scheme = bool(sep) and scheme.lower() in _AUTH_SCHEMES
    if key_env is None or not _ENV_NAME.fullmatch(key_env) or not _TOKEN.fullmatch(name):
        return shlex.quote(f"{name}: {scheme} ***" if has_scheme else f"{name}: ***")
    # Double quotes, so the shell expands the variable when the command is pasted.
    reference = f"{scheme} ${key_env}" if has_scheme else f"${key_env}"
    return f'"{name}: {reference}"'
