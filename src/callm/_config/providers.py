"""Provider entries: which protocol, where, and how to authenticate.

A provider is configuration over a protocol module, not code: Azure, Ollama, Groq … are
entries here over ``openai_chat``. Users add their own through ``Client(providers=…)`` or
the ``[providers.NAME]`` tables of the config file, with the same fields.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal, get_args, get_type_hints

from .._core import secrets
from .._core.endpoint import Endpoint
from .._core.errors import ConfigurationError
from .._core.http import redact_url
from .._core.quirks import DEFAULT as DEFAULT_QUIRKS
from .._core.quirks import Quirks
from ..protocols import PROTOCOL_MODULES
from .base_url import joined_query, split_base_url

PROTOCOLS = tuple(PROTOCOL_MODULES)
# auth style -> (header name, value prefix)
AUTH_HEADERS: Mapping[str, tuple[str, str]] = {
    "bearer": ("authorization", "Bearer "),
    "api-key": ("api-key", ""),
    "x-api-key": ("x-api-key", ""),
    "x-goog-api-key": ("x-goog-api-key", ""),
}
DEFAULT_AZURE_API_VERSION = "2024-10-21"


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    """How to reach one provider. Every field can be given in config or ``Client(providers=…)``."""

    name: str
    base_url: str | None = None
    protocol: str = "openai_chat"
    api_key_env: tuple[str, ...] = ()
    base_url_env: str | None = None
    # "aws": a Bedrock API key as a bearer token, else AWS Signature V4 (see _config/aws.py);
    # "google": OAuth 2.0 access tokens from google-auth (see _config/google.py).
    auth: Literal["bearer", "api-key", "x-api-key", "x-goog-api-key", "aws", "google", "none"] = (
        "bearer"
    )
    key_required: bool = True
    headers: Mapping[str, str] = field(default_factory=dict)
    # How the server departs from its protocol; an entry of your own starts from the
    # defaults (max_tokens, no reasoning sent back …) — see callm.Quirks.
    quirks: Quirks = DEFAULT_QUIRKS
    default_model: str | None = None
    api_key: str | None = field(default=None, repr=False)
    # Azure: the dated api-version query parameter, and an Entra ID token source.
    api_version: str | None = None
    token_provider: Callable[[], str] | None = field(default=None, repr=False)
    # Whose key `callm keys set` stored for this entry (two entries may share one account).
    key_provider: str | None = None
    # Models whose name starts with a prefix here speak that protocol instead (Vertex AI:
    # "claude-" models speak Anthropic's Messages, the others Gemini's).
    model_protocols: Mapping[str, str] = field(default_factory=dict)

    def protocol_for(self, model: str | None) -> str:
        """The protocol ``model`` speaks on this provider."""
        if model is not None:
            for prefix, protocol in self.model_protocols.items():
                if model.startswith(prefix):
                    return protocol
        return self.protocol

    def __repr__(self) -> str:
        key = "***" if self.api_key else None
        where = redact_url(self.base_url) if self.base_url else None
        return f"ProviderSpec(name={self.name!r}, base_url={where!r}, api_key={key!r})"


# OpenAI's own servers want max_completion_tokens and take prompt_cache_key; other
# compatible servers take max_tokens and may refuse an unknown field.
_OPENAI = Quirks(max_tokens_field="max_completion_tokens", prompt_cache_key=True)
# Servers that take max_completion_tokens but not OpenAI's other fields.
_COMPLETION_TOKENS = Quirks(max_tokens_field="max_completion_tokens")

BUILTIN: Mapping[str, ProviderSpec] = {
    spec.name: spec
    for spec in (
        ProviderSpec(
            "openai",
            "https://api.openai.com/v1",
            api_key_env=("OPENAI_API_KEY",),
            base_url_env="OPENAI_BASE_URL",
            quirks=_OPENAI,
            default_model="gpt-4o-mini",
        ),
        ProviderSpec(
            "openai-responses",
            "https://api.openai.com/v1",
            protocol="openai_responses",
            api_key_env=("OPENAI_API_KEY",),
            base_url_env="OPENAI_BASE_URL",
            quirks=_OPENAI,
            key_provider="openai",
        ),
        ProviderSpec(
            "anthropic",
            "https://api.anthropic.com",
            protocol="anthropic",
            api_key_env=("ANTHROPIC_API_KEY",),
            base_url_env="ANTHROPIC_BASE_URL",
            auth="x-api-key",
            headers={"anthropic-version": "2023-06-01"},
            default_model="claude-sonnet-4-5",
        ),
        ProviderSpec(
            "gemini",
            "https://generativelanguage.googleapis.com/v1beta",
            protocol="gemini",
            api_key_env=("GEMINI_API_KEY", "GOOGLE_API_KEY"),
            base_url_env="GEMINI_BASE_URL",
            auth="x-goog-api-key",
            default_model="gemini-2.5-flash",
        ),
        ProviderSpec(
            "azure",
            None,
            api_key_env=("AZURE_OPENAI_API_KEY",),
            base_url_env="AZURE_OPENAI_ENDPOINT",
            auth="api-key",
            quirks=_OPENAI,
        ),
        ProviderSpec(
            "ollama",
            "http://localhost:11434/v1",
            api_key_env=("OLLAMA_API_KEY",),
            base_url_env="OLLAMA_BASE_URL",
            key_required=False,
        ),
        ProviderSpec(
            "openrouter",
            "https://openrouter.ai/api/v1",
            api_key_env=("OPENROUTER_API_KEY",),
            base_url_env="OPENROUTER_BASE_URL",
            # Reasoning goes back as the reasoning_details it came in (Anthropic signatures,
            # Gemini thought signatures, OpenAI encrypted reasoning); cache_control marks
            # reach Anthropic and Gemini models; a PDF URL is fetched by OpenRouter.
            quirks=Quirks(
                reasoning_back="reasoning_details", cache_control=True, document_urls=True
            ),
        ),
        ProviderSpec(
            "groq",
            "https://api.groq.com/openai/v1",
            api_key_env=("GROQ_API_KEY",),
            base_url_env="GROQ_BASE_URL",
            quirks=_COMPLETION_TOKENS,
        ),
        ProviderSpec(
            "mistral",
            "https://api.mistral.ai/v1",
            api_key_env=("MISTRAL_API_KEY",),
            base_url_env="MISTRAL_BASE_URL",
            quirks=Quirks(seed_field="random_seed", short_tool_ids=True, stream_options=False),
        ),
        ProviderSpec(
            "deepseek",
            "https://api.deepseek.com",
            api_key_env=("DEEPSEEK_API_KEY",),
            base_url_env="DEEPSEEK_BASE_URL",
            # Thinking mode answers 400 unless a tool-calling turn brings its reasoning back.
            quirks=Quirks(reasoning_back="reasoning_content"),
        ),
        ProviderSpec(
            "together",
            "https://api.together.xyz/v1",
            api_key_env=("TOGETHER_API_KEY",),
            base_url_env="TOGETHER_BASE_URL",
        ),
        ProviderSpec(
            "xai",
            "https://api.x.ai/v1",
            api_key_env=("XAI_API_KEY",),
            base_url_env="XAI_BASE_URL",
            quirks=_COMPLETION_TOKENS,
        ),
        ProviderSpec(
            "bedrock",
            None,  # https://bedrock-runtime.{AWS_REGION}.amazonaws.com
            protocol="bedrock",
            api_key_env=("AWS_BEARER_TOKEN_BEDROCK",),
            base_url_env="AWS_ENDPOINT_URL_BEDROCK_RUNTIME",
            auth="aws",
            key_required=False,  # without an API key, requests are signed with AWS credentials
        ),
        ProviderSpec(
            "vertex",
            None,  # https://{GOOGLE_CLOUD_LOCATION}-aiplatform.googleapis.com/v1/projects/…
            protocol="gemini",
            auth="google",
            key_required=False,  # OAuth 2.0 tokens from Google Cloud credentials instead
            model_protocols={"claude-": "anthropic"},
            quirks=Quirks(vertex=True),
        ),
        ProviderSpec("local", None, auth="none", key_required=False, default_model="offline"),
    )
}

_FIELD_NAMES = frozenset(f.name for f in fields(ProviderSpec))


def spec_from_mapping(
    name: str, values: Mapping[str, Any], base: ProviderSpec | None
) -> ProviderSpec:
    """A ProviderSpec from a config table or dict, layered over ``base`` when it exists."""
    unknown = set(values) - _FIELD_NAMES
    if unknown:
        raise ConfigurationError(
            f"provider {name!r}: unknown setting(s) {', '.join(sorted(unknown))}; "
            f"known: {', '.join(sorted(_FIELD_NAMES - {'name'}))}"
        )
    changes = dict(values)
    _check_types(name, changes)
    if isinstance(changes.get("api_key_env"), str):
        changes["api_key_env"] = (changes["api_key_env"],)
    if base is None:
        if not changes.get("base_url") and not changes.get("base_url_env"):
            raise ConfigurationError(f"provider {name!r} needs a base_url")
        base = ProviderSpec(name)
    if "quirks" in changes:
        try:
            changes["quirks"] = Quirks.of(changes["quirks"], base.quirks)
        except ConfigurationError as exc:
            raise ConfigurationError(f"provider {name!r}: {exc}") from None
    spec = replace(base, **changes)
    for protocol in (spec.protocol, *spec.model_protocols.values()):
        if protocol not in PROTOCOLS:
            raise ConfigurationError(
                f"provider {name!r}: unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS)}"
            )
    return spec


_TEXT_FIELDS = (
    "base_url",
    "protocol",
    "base_url_env",
    "default_model",
    "api_key",
    "api_version",
    "key_provider",
)
_AUTH_STYLES = get_args(get_type_hints(ProviderSpec)["auth"])


def _check_types(provider: str, values: Mapping[str, Any]) -> None:
    """Refuse a setting of the wrong type (``base_url = 5``, ``key_required = "no"``), which
    would otherwise fail far from the config, or worse, pass: "no" is a true value."""

    def refuse(setting: str, wanted: str) -> ConfigurationError:
        kind = type(values[setting]).__name__  # never the value: it may be a key
        return ConfigurationError(f"provider {provider!r}: {setting} must be {wanted}, not {kind}")

    for setting in _TEXT_FIELDS:
        if values.get(setting) is not None and not isinstance(values[setting], str):
            raise refuse(setting, "text")
    if "key_required" in values and not isinstance(values["key_required"], bool):
        raise refuse("key_required", "true or false")
    if "headers" in values and not _text_table(values["headers"]):
        raise refuse("headers", "a table of text names and text values")
    env = values.get("api_key_env")
    if env is not None and not (isinstance(env, str) or _text_list(env)):
        raise refuse("api_key_env", "a variable name or a list of them")
    if "quirks" in values and not isinstance(values["quirks"], Mapping | Quirks | list | tuple):
        raise refuse("quirks", "a table or a list of quirk settings (see callm.Quirks)")
    if "auth" in values and values["auth"] not in _AUTH_STYLES:
        raise ConfigurationError(
            f"provider {provider!r}: auth must be one of {', '.join(map(repr, _AUTH_STYLES))}"
        )
    if values.get("token_provider") is not None and not callable(values["token_provider"]):
        raise refuse("token_provider", "a function that returns a token")


def _text_table(value: object) -> bool:
    return isinstance(value, Mapping) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    )


def _text_list(value: object) -> bool:
    return isinstance(value, list | tuple) and all(isinstance(v, str) for v in value)


def build_endpoint(spec: ProviderSpec, base_url: str, key: str | None) -> Endpoint:
    """The Endpoint of a provider whose base URL and key are resolved."""
    headers = {"content-type": "application/json", "accept": "application/json"}
    headers.update({k.lower(): v for k, v in spec.headers.items()})
    # Config headers named like secrets (x-portkey-api-key, cf-aig-authorization …) are
    # hidden wherever requests are shown, as the key's own header is.
    secret = {name for name in headers if secrets.looks_secret(name)}
    if key and spec.auth in AUTH_HEADERS:
        name, prefix = AUTH_HEADERS[spec.auth]
        headers[name] = prefix + key
        secret.add(name)
    if spec.token_provider is not None:
        secret.add("authorization")
    secrets.remember(key, *(headers[name] for name in secret if name in headers))
    where = split_base_url(spec.name, base_url)
    if where.basic_auth is not None:
        _add_basic_auth(spec.name, headers, secret, where.basic_auth)
    base_url, query, deployment_urls = where.url, "", False
    if spec.name == "azure" or spec.api_version:
        base_url, query, deployment_urls = _azure_addressing(base_url, spec.api_version)
    query = joined_query(where.query, query)
    return Endpoint(
        provider=spec.name,
        protocol=spec.protocol,
        base_url=base_url,
        headers=headers,
        secret_headers=frozenset(secret),
        query=query,
        deployment_urls=deployment_urls,
        quirks=spec.quirks,
        token_provider=spec.token_provider,
        key_env=spec.api_key_env[0] if spec.api_key_env else None,
    )


def _add_basic_auth(provider: str, headers: dict[str, str], secret: set[str], value: str) -> None:
    """The base URL's ``user:password@`` as basic auth, unless Authorization is taken."""
    if "authorization" in secret:
        raise ConfigurationError(
            f"provider {provider!r}: the base URL carries a user:password (basic auth), but "
            "the key already goes in the Authorization header; drop the user:password from "
            "the URL, or send the proxy's credentials with headers= under another name"
        )
    headers["authorization"] = value
    secret.add("authorization")


def _azure_addressing(base_url: str, api_version: str | None) -> tuple[str, str, bool]:
    """Azure's two styles: ``/openai/v1`` (plain paths) or deployments + ``api-version``."""
    if base_url.endswith("/openai/v1"):
        return base_url, "", False
    if not base_url.endswith("/openai"):
        base_url += "/openai"
    return base_url, f"?api-version={api_version or DEFAULT_AZURE_API_VERSION}", True
