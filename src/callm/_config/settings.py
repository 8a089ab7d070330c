"""Where keys, endpoints and provider entries come from.

Order of precedence for a key: the provider entry's ``api_key`` (an argument), the
conventional environment variable, a ``.env`` file in the working directory, then the keys
file written by ``callm keys set`` (mode 0600 in ``CALLM_HOME``).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .._core import secrets
from .._core.endpoint import Endpoint
from .._core.errors import ConfigurationError
from .folders import private_folder
from .providers import BUILTIN, ProviderSpec, build_endpoint, spec_from_mapping

logger = logging.getLogger("callm")
LOG_OFF_VALUES = ("0", "false", "off", "no")
LOGS_OFF_FILE = "logs-off"  # its presence in CALLM_HOME turns the call log off
LOCAL_NOTICE = (
    "callm: no API key configured, using the offline local model "
    "(set OPENAI_API_KEY or run `callm keys set openai` to use a real one)"
)


def callm_home(environ: Mapping[str, str] | None = None) -> Path:
    """callm's data folder: ``$CALLM_HOME``, else ``$XDG_CONFIG_HOME/callm`` or ~/.config/callm."""
    env = os.environ if environ is None else environ
    if env.get("CALLM_HOME"):
        return Path(env["CALLM_HOME"])
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "callm"


class KeyStore:
    """The 0600 JSON file of keys that ``callm keys set`` writes."""

    def __init__(self, home: Path) -> None:
        self.path = home / "keys.json"

    def load(self) -> dict[str, str]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except UnicodeDecodeError:
            raise not_utf8(self.path, "run `callm keys set PROVIDER` again") from None
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ConfigurationError(
                f"{self.path} is not valid JSON ({exc}); fix it or remove it and run "
                "`callm keys set PROVIDER` again"
            ) from None
        if not isinstance(data, dict):
            raise ConfigurationError(f"{self.path} must hold a JSON object of provider: key")
        return {str(k): str(v) for k, v in data.items()}

    def save(self, keys: Mapping[str, str]) -> None:
        private_folder(self.path.parent)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(dict(keys), f, indent=2, sort_keys=True)
        os.replace(tmp, self.path)

    def set(self, provider: str, key: str) -> None:
        keys = self.load()
        keys[provider] = key
        self.save(keys)

    def remove(self, provider: str) -> bool:
        keys = self.load()
        found = keys.pop(provider, None) is not None
        if found:
            self.save(keys)
        return found


def read_dotenv(path: Path) -> dict[str, str]:
    """The variables of a ``.env`` file (empty when there is none)."""
    if not path.is_file():
        return {}
    from dotenv import dotenv_values

    try:
        values = dotenv_values(path, encoding="utf-8")
    except UnicodeDecodeError:
        raise not_utf8(path.absolute(), "save it as UTF-8") from None
    return {k: v for k, v in values.items() if v is not None}


def read_config(path: Path) -> dict[str, Any]:
    """The TOML config file, or a ConfigurationError that says where it is malformed."""
    import tomllib

    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        return {}
    except UnicodeDecodeError:
        raise not_utf8(path, "save it as UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{path} is not valid TOML: {exc} — fix or remove it") from None
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path}: {exc.strerror or exc}") from None


def not_utf8(path: Path, fix: str) -> ConfigurationError:
    """The error for a file callm reads that is not UTF-8 text."""
    return ConfigurationError(f"{path} is not UTF-8 text; {fix} (or remove it)")


# Top-level keys of config.toml: the library's, and the gateway's sections (one file may
# serve both). Anything else is most likely a typo, and is warned about.
_CONFIG_KEYS = frozenset(
    {"providers", "default_model", "gateway", "aliases", "fallbacks", "groups"}
)


def checked_home(home: Path) -> Path:
    """``home``, refused clearly when it exists and is not a folder."""
    if home.exists() and not home.is_dir():
        raise ConfigurationError(
            f"CALLM_HOME ({home}) is a file, not a folder: point CALLM_HOME at a folder "
            "(callm creates it when missing) or move the file away"
        )
    return home


def _warn_unknown_keys(config: Mapping[str, Any], path: Path) -> None:
    unknown = sorted(set(config) - _CONFIG_KEYS)
    if unknown:
        logger.warning(
            "callm: %s: unknown setting(s) %s ignored; known: %s",
            path,
            ", ".join(unknown),
            ", ".join(sorted(_CONFIG_KEYS)),
        )


class Settings:
    """Resolved configuration of one client: providers, keys, endpoints, default model."""

    def __init__(
        self,
        *,
        providers: Mapping[str, ProviderSpec | Mapping[str, Any]] | None = None,
        env_file: str | Path | None = ".env",
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self._environ = os.environ if environ is None else environ
        self.home = checked_home(callm_home(self._environ))
        self._dotenv = read_dotenv(Path(env_file)) if env_file else {}
        # Keys in the environment are known by value from now on, used or not: an error
        # body, a reply or a prompt that holds one is scrubbed (see callm._core.secrets).
        secrets.remember_environment(self._environ)
        secrets.remember_environment(self._dotenv)
        self.config = read_config(self.home / "config.toml")
        _warn_unknown_keys(self.config, self.home / "config.toml")
        self._specs = dict(BUILTIN)
        self._add_providers(self.config.get("providers") or {}, "config file")
        self._add_providers(providers or {}, "providers argument")
        self._endpoints: dict[str, Endpoint] = {}
        self._stored: dict[str, str] | None = None
        self._google: dict[str, Any] = {}  # Vertex AI token sources, one per provider

    def _add_providers(self, entries: Mapping[str, Any], origin: str) -> None:
        if not isinstance(entries, Mapping):
            raise ConfigurationError(f"{origin}: providers must map names to settings")
        for name, value in entries.items():
            if isinstance(value, ProviderSpec):
                self._specs[name] = replace_name(value, name)
            elif isinstance(value, Mapping):
                self._specs[name] = spec_from_mapping(name, value, self._specs.get(name))
            else:
                raise ConfigurationError(f"{origin}: provider {name!r} must be a table/dict")

    def lookup(self, name: str) -> str | None:
        """An environment variable, from the process environment or the ``.env`` file."""
        return self._environ.get(name) or self._dotenv.get(name) or None

    @property
    def providers(self) -> Mapping[str, ProviderSpec]:
        return self._specs

    def spec(self, provider: str) -> ProviderSpec:
        spec = self._specs.get(provider)
        if spec is None:
            known = ", ".join(sorted(self._specs))
            raise ConfigurationError(
                f"unknown provider {provider!r}; known providers: {known}. Add your own with "
                "Client(providers={...}) or a [providers.NAME] table in the config file"
            )
        return spec

    def endpoint(self, provider: str, model: str | None = None) -> Endpoint:
        """The provider's Endpoint for ``model``, resolved once and then reused.

        A provider whose models speak different protocols (Vertex AI) has one per protocol.
        """
        spec = self.spec(provider)
        protocol = spec.protocol_for(model)
        key = provider if protocol == spec.protocol else f"{provider}\0{protocol}"
        endpoint = self._endpoints.get(key)
        if endpoint is None:
            if protocol != spec.protocol:
                spec = replace_protocol(spec, protocol)
            endpoint = self._endpoints[key] = self._resolve(spec)
        return endpoint

    def _resolve(self, spec: ProviderSpec) -> Endpoint:
        if spec.name == "local" and not spec.base_url:
            from .local import local_base_url

            return build_endpoint(spec, local_base_url(), None)
        if spec.auth == "aws":
            return self._bedrock(spec)
        if spec.auth == "google":
            return self._vertex(spec)
        base_url = self._base_url(spec)
        key = self.key(spec)
        if spec.name == "azure" or spec.api_version:
            spec = self._azure(spec)
        return build_endpoint(spec, base_url, key)

    def _bedrock(self, spec: ProviderSpec) -> Endpoint:
        from .aws import bedrock_base_url, bedrock_endpoint

        from_env = self.lookup(spec.base_url_env) if spec.base_url_env else None
        base_url = from_env or spec.base_url or bedrock_base_url(self.lookup)
        key = self.key(spec)
        return bedrock_endpoint(build_endpoint(spec, base_url, None), self.lookup, key)

    def _vertex(self, spec: ProviderSpec) -> Endpoint:
        from .google import vertex_endpoint

        return vertex_endpoint(build_endpoint(spec, "", None), self.lookup, self._google)

    def _base_url(self, spec: ProviderSpec) -> str:
        from_env = self.lookup(spec.base_url_env) if spec.base_url_env else None
        base_url = from_env or spec.base_url
        if not base_url:
            hint = f"set {spec.base_url_env}" if spec.base_url_env else "give it a base_url"
            raise ConfigurationError(f"provider {spec.name!r} has no base URL: {hint}")
        return base_url

    def _azure(self, spec: ProviderSpec) -> ProviderSpec:
        from dataclasses import replace

        version = spec.api_version or self.lookup("OPENAI_API_VERSION")
        token = self.lookup("AZURE_OPENAI_AD_TOKEN")
        provider = spec.token_provider
        if provider is None and token:
            provider = lambda: token  # noqa: E731 — a fixed token behaves like a provider
        return replace(spec, api_version=version, token_provider=provider)

    def key(self, spec: ProviderSpec) -> str | None:
        """The provider's API key, or a ConfigurationError saying how to set one."""
        if spec.api_key:
            return spec.api_key
        for name in spec.api_key_env:
            value = self.lookup(name)
            if value:
                secrets.remember(value)  # an entry's own variable may have any name
                return value
        stored = self.stored_keys().get(spec.key_provider or spec.name)
        if stored:
            return stored
        if spec.key_required and spec.token_provider is None and not self._has_azure_token(spec):
            raise ConfigurationError(missing_key_message(spec))
        return None

    def _has_azure_token(self, spec: ProviderSpec) -> bool:
        return spec.name == "azure" and bool(self.lookup("AZURE_OPENAI_AD_TOKEN"))

    def stored_keys(self) -> dict[str, str]:
        """Keys stored by ``callm keys set``: the OS keyring's, then the keys file's."""
        if self._stored is None:
            from .keyring_store import KeyringStore

            self._stored = {**KeyringStore(self.home).load(), **KeyStore(self.home).load()}
            secrets.remember(*self._stored.values())
        return self._stored

    def has_key(self, provider: str) -> bool:
        spec = self._specs.get(provider)
        if spec is None:
            return False
        try:
            return self.key(spec) is not None
        except ConfigurationError:
            return False

    def log_enabled(self) -> bool:
        """Whether calls are logged: CALLM_LOG decides when set (``0``, ``false``, ``off``
        turn it off), else ``callm logs off`` (a ``logs-off`` file in CALLM_HOME) does."""
        value = self.lookup("CALLM_LOG")
        if value is not None:
            return value.strip().lower() not in LOG_OFF_VALUES
        return not (self.home / LOGS_OFF_FILE).exists()

    def default_model(self) -> tuple[str, bool]:
        """The model to use when none is named, and whether it is the offline fallback."""
        configured = self.lookup("CALLM_MODEL") or self.config.get("default_model")
        if configured:
            return str(configured), False
        for name, spec in self._specs.items():
            if spec.key_required and spec.default_model and self.has_key(name):
                return f"{name}/{spec.default_model}", False
        return "local/offline", True


def replace_protocol(spec: ProviderSpec, protocol: str) -> ProviderSpec:
    from dataclasses import replace

    return replace(spec, protocol=protocol)


def replace_name(spec: ProviderSpec, name: str) -> ProviderSpec:
    from dataclasses import replace

    return spec if spec.name == name else replace(spec, name=name)


def missing_key_message(spec: ProviderSpec) -> str:
    env = spec.api_key_env[0] if spec.api_key_env else None
    how = f"set {env} or " if env else ""
    return f"no API key for {spec.name}: {how}run `callm keys set {spec.name}`"


def split_model(model: str) -> tuple[str, str]:
    """``"provider/model"`` → (provider, model). The model part may itself contain slashes."""
    provider, slash, name = model.partition("/")
    if not slash or not provider or not name:
        raise ConfigurationError(
            f"model {model!r} must be written provider/model, e.g. openai/gpt-4o-mini or "
            "local/offline"
        )
    return provider, name
