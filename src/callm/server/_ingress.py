"""Which protocol each model endpoint speaks, and where each SDK puts its key and model.

The gateway itself knows no wire format: it finds the :class:`Ingress` of a path here and
drives that protocol's server codec (``callm.protocols.<name>.server``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ._http import Incoming


def _usage_asked(body: Mapping[str, object]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, Mapping) and options.get("include_usage") is True


def _always(body: Mapping[str, object]) -> bool:
    return True


@dataclass(frozen=True, slots=True)
class Ingress:
    """One model endpoint: its protocol and how its callers speak."""

    protocol: str  # the server codec's name
    native_provider: str  # a model named without "provider/" goes to this provider
    route: str  # the path as a template, for traces
    stream: bool | None = None  # forced by the path (Gemini); None: the body says
    model: str | None = None  # from the path (Gemini); None: the body says
    include_usage: Callable[[Mapping[str, object]], bool] = _always
    count_tokens: bool = False
    # The upstream protocol whose own fields (extra_body) a caller of this endpoint may send:
    # a legacy completion's penalties and logit_bias are Chat Completions fields.
    family: str = ""

    @property
    def fields_for(self) -> str:
        return self.family or self.protocol


_BY_PATH: Mapping[str, Ingress] = {
    path: Ingress(protocol, provider, path, include_usage=usage, count_tokens=count, family=family)
    for path, protocol, provider, usage, count, family in (
        ("/v1/chat/completions", "openai_chat", "openai", _usage_asked, False, ""),
        ("/chat/completions", "openai_chat", "openai", _usage_asked, False, ""),
        # A bare model name on the Responses endpoint goes to OpenAI's Responses API, where
        # its reasoning items and built-in tools mean something.
        ("/v1/responses", "openai_responses", "openai-responses", _always, False, ""),
        ("/v1/completions", "openai_completions", "openai", _usage_asked, False, "openai_chat"),
        ("/v1/messages", "anthropic", "anthropic", _always, False, ""),
        ("/v1/messages/count_tokens", "anthropic", "anthropic", _always, True, ""),
    )
}
_GEMINI_PREFIXES = ("/v1beta/models/", "/v1/models/")
_GEMINI_METHODS = {
    "generateContent": False,
    "streamGenerateContent": True,
    "countTokens": False,
}


def ingress_for(path: str) -> Ingress | None:
    """The model endpoint at ``path`` (POST), or None."""
    found = _BY_PATH.get(path)
    if found is not None:
        return found
    for prefix in _GEMINI_PREFIXES:
        if path.startswith(prefix):
            model, colon, method = path[len(prefix) :].rpartition(":")
            if colon and model and method in _GEMINI_METHODS:
                return Ingress(
                    "gemini",
                    "gemini",
                    f"{prefix}{{model}}:{method}",
                    stream=_GEMINI_METHODS[method],
                    model=model,
                    count_tokens=method == "countTokens",
                )
    return None


def caller_key(request: Incoming) -> str | None:
    """The caller's key, wherever its SDK sends it: Authorization: Bearer, x-api-key,
    x-goog-api-key or ``?key=``."""
    headers = request.headers
    auth = headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    for name in ("x-api-key", "x-goog-api-key"):
        given = headers.get(name)
        if given:
            return given.strip()
    if "key=" in request.query_string:
        return request.query.get("key") or None
    return None
