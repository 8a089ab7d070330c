"""Fixtures for the command-line tests: an isolated environment, the CLI as a subprocess,
and a fake OpenAI server that ``openai/...`` models are routed to.

Every test runs with ``CALLM_HOME`` in its own tmp_path, its working directory there (so no
stray ``.env`` is read) and no provider key or ``CALLM_*`` setting from the real environment.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_helpers import FAKE_KEY, CallmProcess

from callm.testing import FakeOpenAIServer

_EXTRA_ENV = (
    "OPENAI_API_VERSION",
    "AZURE_OPENAI_ENDPOINT",
    "AZURE_OPENAI_AD_TOKEN",
    "GOOGLE_API_KEY",
    "XDG_CONFIG_HOME",
)


@pytest.fixture(autouse=True)
def cli_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Isolate the test: fresh CALLM_HOME, cwd = tmp_path, no real keys or callm settings."""
    for name in list(os.environ):
        if name.endswith(("_API_KEY", "_BASE_URL")) or name.startswith("CALLM_"):
            monkeypatch.delenv(name)
    for name in _EXTRA_ENV:
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "callm-home"
    monkeypatch.setenv("CALLM_HOME", str(home))
    # No OS keyring unless a test brings its own (tests/cli/file_keyring.py): keys go to
    # the 0600 file, whatever this machine has.
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    monkeypatch.chdir(tmp_path)
    return home


@pytest.fixture
def callm_run(tmp_path: Path) -> CallmProcess:
    """``callm_run("-m", "openai/gpt-4o-mini", "hi")`` → Result(code, stdout, stderr)."""
    return CallmProcess(tmp_path)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAIServer]:
    """A fake OpenAI server that checks FAKE_KEY; ``openai/...`` models go to it."""
    with FakeOpenAIServer(api_key=FAKE_KEY) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
        yield server
