"""Small shared helpers for the tests (not fixtures)."""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

import pytest

import callm
from callm.testing import FakeOpenAIServer

FAKE_KEY = "sk-test-fake-key-0000"
# An AWS key pair made up for the tests (AWS's own examples use this shape).
AWS_KEY_ID = "AKIDCALLMTEST0000000"


def fake_provider(base_url: str, **extra: Any) -> dict[str, Any]:
    """A ``providers=`` entry pointing a provider named "fake" at a fake server."""
    return {"fake": {"base_url": base_url, "api_key": FAKE_KEY, **extra}}


def sync_client(base_url: str, **kwargs: Any) -> callm.Client:
    return callm.Client(providers=fake_provider(base_url), **kwargs)


def async_client(base_url: str, **kwargs: Any) -> callm.AsyncClient:
    return callm.AsyncClient(providers=fake_provider(base_url), **kwargs)


def point_builtins(
    server: FakeOpenAIServer,
    monkeypatch: pytest.MonkeyPatch,
    key: str = FAKE_KEY,
    *,
    openai_compatible: tuple[str, ...] = (),
) -> FakeOpenAIServer:
    """Point the built-in providers of every protocol at ``server`` (through their usual
    environment variables; Bedrock signs with a key pair the server checks), and the
    OpenAI-compatible ones named too (e.g. "OPENROUTER")."""
    env = {
        "OPENAI_BASE_URL": server.base_url,
        "OPENAI_API_KEY": key,
        "ANTHROPIC_BASE_URL": server.url,
        "ANTHROPIC_API_KEY": key,
        "GEMINI_BASE_URL": server.url + "/v1beta",
        "GEMINI_API_KEY": key,
    }
    env.update(vertex_env(server, Path(os.environ["CALLM_HOME"]).parent))
    secret = "aws-secret/" + key  # built at run time: no real secret is ever in the tree
    server.accept_aws_key(AWS_KEY_ID, secret)
    env.update(
        AWS_ENDPOINT_URL_BEDROCK_RUNTIME=server.bedrock_base_url,
        AWS_ACCESS_KEY_ID=AWS_KEY_ID,
        AWS_SECRET_ACCESS_KEY=secret,
        AWS_REGION="us-east-1",
    )
    for name in openai_compatible:
        env[f"{name}_BASE_URL"] = server.base_url
        env[f"{name}_API_KEY"] = key
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return server


GOOGLE_KEY_ID = "callm-test-key-1"


@functools.cache
def rsa_key_pair() -> tuple[str, str]:
    """A 2048-bit RSA key made for this test run: (private PKCS#8 PEM, public PEM)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


def service_account_file(server: FakeOpenAIServer, folder: Path, **extra: Any) -> Path:
    """A service-account key file whose token_uri is the fake's token endpoint, its key
    trusted by the fake."""
    private, public = rsa_key_pair()
    server.accept_google_key(GOOGLE_KEY_ID, public)
    info = {
        "type": "service_account",
        "project_id": "callm-test-project",
        "private_key_id": GOOGLE_KEY_ID,
        "private_key": private,
        "client_email": "callm-tests@callm-test-project.iam.gserviceaccount.com",
        "client_id": "100000000000000000001",
        "token_uri": server.token_uri,
        **extra,
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "vertex-service-account.json"
    path.write_text(json.dumps(info))
    return path


def vertex_env(server: FakeOpenAIServer, folder: Path) -> dict[str, str]:
    """The variables that point the vertex provider at ``server`` with a service account."""
    return {
        "GOOGLE_APPLICATION_CREDENTIALS": str(service_account_file(server, folder)),
        "VERTEX_BASE_URL": server.vertex_base_url,
        "GOOGLE_CLOUD_LOCATION": "us-east5",
    }
