"""Small shared helpers for the tests (not fixtures)."""

from __future__ import annotations

from typing import Any

import callm

FAKE_KEY = "sk-test-fake-key-0000"


def fake_provider(base_url: str, **extra: Any) -> dict[str, Any]:
    """A ``providers=`` entry pointing a provider named "fake" at a fake server."""
    return {"fake": {"base_url": base_url, "api_key": FAKE_KEY, **extra}}


def sync_client(base_url: str, **kwargs: Any) -> callm.Client:
    return callm.Client(providers=fake_provider(base_url), **kwargs)


def async_client(base_url: str, **kwargs: Any) -> callm.AsyncClient:
    return callm.AsyncClient(providers=fake_provider(base_url), **kwargs)
