"""``callm keys set|list|remove``: the keys file, written 0600 and never printed.

No key, nor any part of one, is ever echoed: ``keys list`` says only where each provider's
key would come from.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

import click

from .._config.providers import ProviderSpec
from .._config.settings import KeyStore, Settings, read_dotenv
from ._group import CLIUsageError, debug_option


@click.group("keys")
def keys_group() -> None:
    """Store, list and remove API keys (kept in a 0600 file in CALLM_HOME)."""


@keys_group.command("set")
@click.argument("provider")
@debug_option
def set_key(provider: str) -> None:
    """Store the API key of PROVIDER, typed at a hidden prompt or piped to stdin."""
    settings = Settings()
    settings.spec(provider)  # an unknown provider fails here, before the key is asked for
    store = KeyStore(settings.home)
    store.set(provider, _read_key(provider))
    click.echo(f"Saved the {provider} key to {store.path}", err=True)


@keys_group.command("list")
@debug_option
def list_keys() -> None:
    """Show, for every provider, where its key would come from (never the key)."""
    settings = Settings()
    stored = KeyStore(settings.home).load()
    sources = key_sources(settings.providers, os.environ, read_dotenv(Path(".env")), stored)
    width = max(len(name) for name in sources)
    for name, source in sources.items():
        click.echo(f"{name:<{width}}  {source}")


@keys_group.command("remove")
@click.argument("provider")
@debug_option
def remove_key(provider: str) -> None:
    """Delete the stored key of PROVIDER."""
    store = KeyStore(Settings().home)
    if not store.remove(provider):
        raise CLIUsageError(f"no stored key for {provider} in {store.path}")
    click.echo(f"Removed the {provider} key from {store.path}", err=True)


def _read_key(provider: str) -> str:
    """The key from piped stdin, else from a hidden prompt; never echoed."""
    stdin = sys.stdin
    if stdin is None or stdin.isatty():
        key = str(click.prompt(f"API key for {provider}", hide_input=True, err=True))
    else:
        key = stdin.read()
    key = key.strip()
    if not key:
        raise click.UsageError("no key given: type it at the prompt or pipe it to stdin")
    return key


def key_sources(
    providers: Mapping[str, ProviderSpec],
    environ: Mapping[str, str],
    dotenv: Mapping[str, str],
    stored: Mapping[str, str],
) -> dict[str, str]:
    """Provider name → where its key would come from, in the library's order of precedence."""
    sources = {
        name: key_source(spec, environ, dotenv, name in stored) for name, spec in providers.items()
    }
    for name in stored.keys() - providers.keys():
        sources[name] = "keys file (no such provider is configured)"
    return dict(sorted(sources.items()))


def key_source(
    spec: ProviderSpec, environ: Mapping[str, str], dotenv: Mapping[str, str], stored: bool
) -> str:
    """Where ``spec``'s key would come from, saying when a stored key is shadowed."""
    source = _first_source(spec, environ, dotenv)
    if source is None:
        if stored:
            return "keys file"
        if not spec.key_required:
            return "no key needed"
        env = f"set {spec.api_key_env[0]} or " if spec.api_key_env else ""
        return f"not set ({env}run `callm keys set {spec.name}`)"
    return f"{source} (the stored key is not used)" if stored else source


def _first_source(
    spec: ProviderSpec, environ: Mapping[str, str], dotenv: Mapping[str, str]
) -> str | None:
    if spec.api_key:
        return "config file"
    for name in spec.api_key_env:
        if environ.get(name):
            return f"environment variable {name}"
        if dotenv.get(name):
            return f".env file ({name})"
    return None
