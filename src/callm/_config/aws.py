"""Amazon Bedrock's connection: the region, and credentials the way AWS's own tools find them.

A Bedrock API key (``AWS_BEARER_TOKEN_BEDROCK``, or one stored by ``callm keys set
bedrock``) goes as a bearer token. Otherwise every request is signed with AWS Signature V4
(:mod:`callm._core.sigv4`), with credentials from, in order:

1. ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` (and ``AWS_SESSION_TOKEN``);
2. the profile named by ``AWS_PROFILE`` (else ``default``) in the shared credentials file
   (``AWS_SHARED_CREDENTIALS_FILE``, else ``~/.aws/credentials``), then in the config file
   (``AWS_CONFIG_FILE``, else ``~/.aws/config``);
3. botocore, when it is installed (``pip install 'callm[aws]'``): SSO, assumed roles,
   ``credential_process``, container and instance credentials, refreshed as they expire.

The region is ``AWS_REGION``, ``AWS_DEFAULT_REGION``, else the profile's ``region``.
``AWS_ENDPOINT_URL_BEDROCK_RUNTIME`` (or ``AWS_ENDPOINT_URL``) replaces
``https://bedrock-runtime.{region}.amazonaws.com``.
"""

from __future__ import annotations

import configparser
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .._core import secrets
from .._core.endpoint import Endpoint
from .._core.errors import ConfigurationError
from .._core.http import HttpRequest
from .._core.sigv4 import SECRET_HEADERS, AwsCredentials, sign

Lookup = Callable[[str], "str | None"]
SERVICE = "bedrock"  # the signing name of bedrock-runtime (and of the control plane)
AUTH_HINT = (
    "the AWS credentials were refused or have expired: refresh them (`aws sso login`, or new "
    "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN), choose the profile with "
    "AWS_PROFILE, or set AWS_BEARER_TOKEN_BEDROCK to a Bedrock API key"
)
_NO_CREDENTIALS = (
    "no AWS credentials for bedrock: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, name a "
    "profile of ~/.aws/credentials with AWS_PROFILE, or set AWS_BEARER_TOKEN_BEDROCK to a "
    "Bedrock API key (`callm keys set bedrock`)"
)
_NEEDS_BOTOCORE = (
    " — profiles that sign in through SSO, assume a role or run a credential_process need "
    "botocore: pip install 'callm[aws]'"
)


def bedrock_endpoint(endpoint: Endpoint, lookup: Lookup, bearer_key: str | None) -> Endpoint:
    """``endpoint`` (built without a key) made ready for Bedrock: a bearer key, or a signer."""
    if bearer_key:
        headers = {**endpoint.headers, "authorization": f"Bearer {bearer_key}"}
        return replace(
            endpoint,
            headers=headers,
            secret_headers=endpoint.secret_headers | {"authorization"},
            auth_hint=AUTH_HINT,
        )
    region = region_of(lookup)
    signer = SigV4Signer(credentials_source(lookup), region, SERVICE)
    return replace(
        endpoint,
        signer=signer,
        key_env=None,  # no variable holds what the signed headers carry
        secret_headers=endpoint.secret_headers | SECRET_HEADERS,
        auth_hint=AUTH_HINT,
    )


def bedrock_base_url(lookup: Lookup) -> str:
    """The runtime endpoint of the configured region, unless an endpoint URL is set."""
    custom = lookup("AWS_ENDPOINT_URL_BEDROCK_RUNTIME") or lookup("AWS_ENDPOINT_URL")
    if custom:
        return custom
    return f"https://bedrock-runtime.{region_of(lookup)}.amazonaws.com"


class SigV4Signer:
    """Signs each request with the current credentials and the time it is made."""

    __slots__ = ("_credentials", "region", "service")

    def __init__(self, credentials: Callable[[], AwsCredentials], region: str, service: str):
        self._credentials = credentials
        self.region = region
        self.service = service

    def __repr__(self) -> str:
        return f"SigV4Signer(region={self.region!r}, service={self.service!r})"

    def __call__(self, request: HttpRequest) -> HttpRequest:
        credentials = self._credentials()
        now = datetime.now(UTC)
        return sign(request, credentials, region=self.region, service=self.service, now=now)


def region_of(lookup: Lookup) -> str:
    """The AWS region, or a ConfigurationError saying how to set one."""
    region = lookup("AWS_REGION") or lookup("AWS_DEFAULT_REGION")
    if not region:
        region = _profile_section(lookup, config=True).get("region")
    if not region:
        raise ConfigurationError(
            "no AWS region for bedrock: set AWS_REGION (e.g. us-east-1) or give the profile a "
            "region in ~/.aws/config"
        )
    return region


def credentials_source(lookup: Lookup) -> Callable[[], AwsCredentials]:
    """Where each request's credentials come from: fixed ones, or botocore's refreshing."""
    found = static_credentials(lookup)
    if found is not None:
        return lambda: found
    botocore_source = _botocore_source(lookup)
    if botocore_source is not None:
        return botocore_source
    raise ConfigurationError(_NO_CREDENTIALS + _NEEDS_BOTOCORE)


def static_credentials(lookup: Lookup) -> AwsCredentials | None:
    """Keys from the environment, else from the profile in the credentials or config file."""
    key_id, secret = lookup("AWS_ACCESS_KEY_ID"), lookup("AWS_SECRET_ACCESS_KEY")
    if key_id and secret:
        return AwsCredentials(key_id, secret, lookup("AWS_SESSION_TOKEN"))
    for config in (False, True):
        section = _profile_section(lookup, config=config)
        key_id, secret = section.get("aws_access_key_id"), section.get("aws_secret_access_key")
        if key_id and secret:
            token = section.get("aws_session_token")
            secrets.remember(secret, token)  # scrubbed by value wherever it might come back
            return AwsCredentials(key_id, secret, token)
    return None


def profile_name(lookup: Lookup) -> str:
    return lookup("AWS_PROFILE") or lookup("AWS_DEFAULT_PROFILE") or "default"


def _profile_section(lookup: Lookup, *, config: bool) -> dict[str, str]:
    """One profile's settings from the shared credentials file or the config file."""
    if config:
        path = lookup("AWS_CONFIG_FILE") or str(Path.home() / ".aws" / "config")
    else:
        path = lookup("AWS_SHARED_CREDENTIALS_FILE") or str(Path.home() / ".aws" / "credentials")
    profile = profile_name(lookup)
    # The config file names sections "profile NAME", except "default".
    section = f"profile {profile}" if config and profile != "default" else profile
    parser = configparser.RawConfigParser()
    try:
        parser.read(Path(path).expanduser(), encoding="utf-8")
    except configparser.Error as exc:
        raise ConfigurationError(f"{path} cannot be read as an AWS config file: {exc}") from None
    if not parser.has_section(section):
        return {}
    return {k: v.strip() for k, v in parser.items(section)}


def _botocore_source(lookup: Lookup) -> Callable[[], AwsCredentials] | None:
    """botocore's credential chain, when botocore is installed and finds credentials."""
    try:
        from botocore.session import Session
    except ImportError:
        return None
    profile = lookup("AWS_PROFILE") or lookup("AWS_DEFAULT_PROFILE")
    try:
        found = Session(profile=profile).get_credentials()
    except Exception as exc:  # botocore raises many kinds, all meaning "no usable profile"
        raise ConfigurationError(f"AWS credentials could not be loaded: {exc}") from None
    if found is None:
        raise ConfigurationError(_NO_CREDENTIALS)
    return _Refreshing(found)


class _Refreshing:
    """botocore credentials, frozen per request (botocore refreshes them before expiry)."""

    __slots__ = ("_credentials", "_lock")

    def __init__(self, credentials: Any) -> None:
        self._credentials = credentials
        self._lock = threading.Lock()

    def __call__(self) -> AwsCredentials:
        with self._lock:
            try:
                frozen = self._credentials.get_frozen_credentials()
            except Exception as exc:  # an SSO token expired, a role could not be assumed …
                from .._core.errors import AuthenticationError

                raise AuthenticationError(
                    f"the AWS credentials could not be refreshed ({exc}) — {AUTH_HINT}",
                    provider="bedrock",
                ) from None
        secrets.remember(frozen.secret_key, frozen.token)
        return AwsCredentials(frozen.access_key, frozen.secret_key, frozen.token or None)
