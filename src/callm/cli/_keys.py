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

from .._config.keyring_store import KeyringStore, keyring_available
from .._config.providers import ProviderSpec
from .._config.settings import KeyStore, Settings, read_dotenv
from ._group import CLIUsageError, debug_option


@click.group("keys")
def keys_group() -> None:
    """Store, list and remove API keys (in the OS keyring, else a 0600 file in CALLM_HOME).

    \b
    Examples:
      callm keys set openai             (typed at a hidden prompt)
      callm keys list
      callm keys remove openai
    """


@keys_group.command("set")
@click.argument("provider")
@click.option(
    "--file",
    "to_file",
    is_flag=True,
    help="Store the key in the 0600 keys file even when an OS keyring is available.",
)
@debug_option
def set_key(provider: str, to_file: bool) -> None:
    """Store the API key of PROVIDER, typed at a hidden prompt or piped to stdin.

    The key goes to the OS keyring (macOS Keychain, Windows Credential Locker, Secret
    Service …) when one is available — only the provider's name is written in CALLM_HOME —
    and to the 0600 keys file in CALLM_HOME otherwise, or with --file.

    \b
    Examples:
      callm keys set openai                 (asks for the key, hidden)
      pass show openai | callm keys set openai
      callm keys set anthropic --file
    """
    settings = Settings()
    settings.spec(provider)  # an unknown provider fails here, before the key is asked for
    key = _read_key(provider)
    files = KeyStore(settings.home)
    if not to_file and keyring_available():
        import keyring

        KeyringStore(settings.home).set(provider, key)
        files.remove(provider)  # an older key in the file would shadow the keyring's
        backend = type(keyring.get_keyring()).__name__
        click.echo(f"Saved the {provider} key in the OS keyring ({backend})", err=True)
        return
    files.set(provider, key)
    click.echo(f"Saved the {provider} key to {files.path}", err=True)


@keys_group.command("list")
@debug_option
def list_keys() -> None:
    """Show, for every provider, where its key would come from (never the key).

    \b
    Example:
      callm keys list
    """
    settings = Settings()
    stored = KeyStore(settings.home).load()
    in_keyring = set(KeyringStore(settings.home).providers())
    sources = key_sources(settings.providers, os.environ, read_dotenv(Path(".env")), stored)
    for name in in_keyring - stored.keys():
        source = sources.get(name, "")
        if not source or source.startswith(("not set", "keys file")):
            sources[name] = "OS keyring"
    width = max(len(name) for name in sources)
    for name, source in sorted(sources.items()):
        click.echo(f"{name:<{width}}  {source}")


@keys_group.command("remove")
@click.argument("provider")
@debug_option
def remove_key(provider: str) -> None:
    """Delete the stored key of PROVIDER (from the OS keyring and the keys file).

    \b
    Example:
      callm keys remove openai
    """
    home = Settings().home
    store = KeyStore(home)
    in_keyring = KeyringStore(home).remove(provider)
    in_file = store.remove(provider)
    if not (in_keyring or in_file):
        raise CLIUsageError(f"no stored key for {provider} in the OS keyring nor {store.path}")
    where = " and ".join(
        w for w, found in (("the OS keyring", in_keyring), (str(store.path), in_file)) if found
    )
    click.echo(f"Removed the {provider} key from {where}", err=True)


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
