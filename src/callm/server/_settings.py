"""The gateway's configuration: a TOML file for models and limits, the environment for secrets.

::

    [gateway]
    models = ["openai/*", "anthropic/claude-*"]   # what may be called at all (default: any)
    timeout = 600                 # seconds for one upstream call, retries included
    max_retries = 2
    max_request_bytes = 8388608   # larger bodies get 413
    default_max_tokens = 4096     # set on calls without max_tokens when a key has a budget/tpm
    shutdown_grace = 30           # seconds in-flight streams get to finish on shutdown
    head_timeout = 30             # seconds a request's head may take to arrive (slowloris)
    idle_timeout = 75             # seconds a kept-alive connection may wait for a request
    call_log = false              # also write every call to callm's call log
    access_log = true             # one JSON line per request on stderr
    redis_unavailable = "refuse"  # a fleet without Redis: refuse calls, or "local" limits
    lease_seconds = 30            # a dead fleet instance's reservations expire after this

    [aliases]
    fast = "openai/gpt-4o-mini"

    [fallbacks]
    "openai/gpt-4o" = ["anthropic/claude-sonnet-4-5"]

    [groups.balanced]
    models = ["openai/gpt-4o-mini", "gemini/gemini-2.5-flash"]
    strategy = "round_robin"      # or least_busy, weighted (with weights = [...])

    [providers.mine]              # the library's provider entries: never a key
    protocol = "openai_chat"
    base_url = "http://10.0.0.5:8000/v1"
    api_key_env = "MINE_API_KEY"

Provider keys come from the library's usual places (environment, ``.env``, ``callm keys
set``); a key written in this file is refused. ``CALLM_MASTER_KEY`` administers.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._config.settings import callm_home, read_config
from .._core.errors import ConfigurationError
from .._policies.routing import Group

MASTER_KEY_ENV = "CALLM_MASTER_KEY"
DATABASE_ENV = "CALLM_DATABASE_URL"
REDIS_ENV = "CALLM_REDIS_URL"
_REDIS_UNAVAILABLE = ("refuse", "local")
_SECRET_FIELDS = ("api_key", "key", "token", "secret", "password")
_GATEWAY_FIELDS = {
    "models": (list,),
    "timeout": (int, float),
    "max_retries": (int,),
    "max_request_bytes": (int,),
    "default_max_tokens": (int,),
    "shutdown_grace": (int, float),
    "head_timeout": (int, float),  # the gateway's own server (one worker) closes slow heads
    "idle_timeout": (int, float),  # ... and idle kept-alive connections after these
    "call_log": (bool,),
    "access_log": (bool,),
    "redis_unavailable": (str,),  # "refuse" or "local": what a fleet does without Redis
    "lease_seconds": (int, float),  # a dead fleet instance's reservations expire after this
}
# A model name a caller may send: no path tricks, no URL, nothing to escape.
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@+\-]*(/[A-Za-z0-9._:@+\-]+)*$")


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    """Everything ``callm serve`` is configured with (never a key)."""

    models: tuple[str, ...] = ()
    timeout: float = 600.0
    max_retries: int = 2
    max_request_bytes: int = 8 * 1024 * 1024
    default_max_tokens: int = 4096
    shutdown_grace: float = 30.0
    head_timeout: float = 30.0
    idle_timeout: float = 75.0
    call_log: bool = False
    access_log: bool = True
    aliases: Mapping[str, str] = field(default_factory=dict)
    fallbacks: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    groups: Mapping[str, Group] = field(default_factory=dict)
    providers: Mapping[str, Mapping[str, object]] = field(default_factory=dict)
    master_key: str | None = field(default=None, repr=False)
    database: Path = Path("gateway.db")
    # A fleet: PostgreSQL for keys and usage, Redis for counters (URLs may hold passwords).
    database_url: str | None = field(default=None, repr=False)
    redis_url: str | None = field(default=None, repr=False)
    redis_unavailable: str = "refuse"
    lease_seconds: float = 30.0
    home: Path = Path(".")

    def __repr__(self) -> str:
        master = "set" if self.master_key else "unset"
        return f"GatewaySettings(models={self.models!r}, master_key={master})"


def load_settings(path: Path | None, environ: Mapping[str, str] | None = None) -> GatewaySettings:
    """Settings from the TOML file at ``path`` (none: defaults) and the environment."""
    env = os.environ if environ is None else environ
    data: Mapping[str, object] = {}
    if path is not None:
        if not path.is_file():
            raise ConfigurationError(f"the gateway config file {path} does not exist")
        data = read_config(path)
    return settings_from(data, env, where=str(path or "config"))


def settings_from(
    data: Mapping[str, Any], environ: Mapping[str, str], where: str = "config"
) -> GatewaySettings:
    """Settings from parsed TOML and the environment."""
    unknown = set(data) - {"gateway", "aliases", "fallbacks", "groups", "providers"}
    if unknown:
        raise ConfigurationError(
            f"{where}: unknown section(s) {', '.join(sorted(unknown))}; the gateway reads "
            "[gateway], [aliases], [fallbacks], [groups.NAME] and [providers.NAME]"
        )
    home = callm_home(environ)
    return GatewaySettings(
        **_gateway_table(_table(data, "gateway", where), where),
        aliases=_names(_table(data, "aliases", where), where, "aliases"),
        fallbacks=_fallbacks(_table(data, "fallbacks", where), where),
        groups=_groups(_table(data, "groups", where), where),
        providers=_providers(_table(data, "providers", where), where),
        master_key=environ.get(MASTER_KEY_ENV) or None,
        **_stores(environ, home),
        home=home,
    )


def _table(data: Mapping[str, Any], name: str, where: str) -> Mapping[str, Any]:
    table = data.get(name, {})
    if not isinstance(table, Mapping):
        raise ConfigurationError(f"{where}: [{name}] must be a table")
    return table


def _gateway_table(table: Mapping[str, Any], where: str) -> dict[str, Any]:
    out: dict[str, object] = {}
    for name, value in table.items():
        kinds = _GATEWAY_FIELDS.get(name)
        if kinds is None:
            known = ", ".join(_GATEWAY_FIELDS)
            raise ConfigurationError(f"{where}: unknown [gateway] setting {name!r}; known: {known}")
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            raise ConfigurationError(f"{where}: [gateway] {name} has the wrong type")
        out[name] = tuple(str(v) for v in value) if isinstance(value, list) else value
    for name in ("head_timeout", "idle_timeout"):
        if isinstance(seconds := out.get(name), int | float) and seconds <= 0:
            raise ConfigurationError(f"{where}: [gateway] {name} must be a positive number")
    if out.get("redis_unavailable", "refuse") not in _REDIS_UNAVAILABLE:
        raise ConfigurationError(
            f'{where}: [gateway] redis_unavailable must be "refuse" (calls get 503 while '
            'Redis is unreachable) or "local" (each instance holds the limits alone)'
        )
    return out


def _names(table: Mapping[str, Any], where: str, section: str) -> dict[str, str]:
    for name, value in table.items():
        if not isinstance(value, str):
            raise ConfigurationError(f"{where}: [{section}] {name} must name a model")
    return dict(table)


def _fallbacks(table: Mapping[str, object], where: str) -> dict[str, tuple[str, ...]]:
    out = {}
    for name, value in table.items():
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigurationError(f"{where}: [fallbacks] {name} must be a list of models")
        out[name] = tuple(value)
    return out


def _groups(table: Mapping[str, object], where: str) -> dict[str, Group]:
    out = {}
    for name, value in table.items():
        if not isinstance(value, Mapping) or not isinstance(value.get("models"), list):
            raise ConfigurationError(f"{where}: [groups.{name}] needs models = [...]")
        out[name] = Group(
            tuple(value["models"]),
            value.get("strategy", "round_robin"),
            tuple(value.get("weights", ())),
        )
    return out


def _providers(table: Mapping[str, Any], where: str) -> dict[str, Mapping[str, Any]]:
    for name, entry in table.items():
        if not isinstance(entry, Mapping):
            raise ConfigurationError(f"{where}: [providers.{name}] must be a table")
        for secret in _SECRET_FIELDS:
            if secret in entry:
                raise ConfigurationError(
                    f"{where}: [providers.{name}] holds {secret!r}; keys never go in the "
                    "gateway's config file: name the variable with api_key_env, or run "
                    f"`callm keys set {name}` on the server"
                )
    return dict(table)


def _stores(environ: Mapping[str, str], home: Path) -> dict[str, Any]:
    """Where keys, usage and counters live: SQLite in CALLM_HOME, or a fleet's servers."""
    url = environ.get(DATABASE_ENV) or ""
    redis = environ.get(REDIS_ENV) or None
    postgres = url.startswith(("postgresql://", "postgres://"))
    if redis is not None and not postgres:
        raise ConfigurationError(
            f"{REDIS_ENV} is for a fleet, whose keys and usage live in PostgreSQL: set "
            f"{DATABASE_ENV}=postgresql://… as well (or unset {REDIS_ENV} for one instance)"
        )
    if redis is not None and not redis.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigurationError(f"{REDIS_ENV} must be a redis://, rediss:// or unix:// URL")
    if postgres:
        return {"database_url": url, "redis_url": redis}
    return {"database": _database(url, home)}


def _database(url: str, home: Path) -> Path:
    if not url:
        return home / "gateway.db"
    if url.startswith("sqlite:///"):
        return Path(url[len("sqlite:///") :])
    if "://" in url:
        scheme = url.split("://", 1)[0]
        raise ConfigurationError(
            f"{DATABASE_ENV}: {scheme} is not supported; use postgresql://… for a fleet, "
            "sqlite:///PATH, or leave it unset for SQLite in CALLM_HOME"
        )
    return Path(url)


def valid_model_name(name: str) -> bool:
    """Whether a caller's model name is safe to route (no path tricks, no URL)."""
    return len(name) <= 256 and bool(_MODEL_NAME.match(name)) and ".." not in name


def expand(settings: GatewaySettings, name: str, seen: Sequence[str] = ()) -> list[str]:
    """Every concrete model a name may reach: through aliases, groups and fallbacks."""
    if name in seen or len(seen) > 8:
        return []
    path = (*seen, name)
    if name in settings.aliases:
        found = expand(settings, settings.aliases[name], path)
    elif name in settings.groups:
        found = [
            m for member in settings.groups[name].models for m in expand(settings, member, path)
        ]
    else:
        found = [name]
    for fallback in settings.fallbacks.get(name, ()):
        found += [m for m in expand(settings, fallback, path) if m not in found]
    return found
