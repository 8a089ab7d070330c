"""``callm keys set`` with an OS keyring: the key goes there (only the provider's name is
written in CALLM_HOME), calls find it, ``keys list`` and ``keys remove`` know it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import FAKE_KEY, CallmProcess

from callm.testing import FakeOpenAIServer, Reply


@pytest.fixture
def keyring_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "os-keyring.json"
    monkeypatch.setenv("CALLM_TEST_KEYRING", str(path))
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "file_keyring.FileKeyring")
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))
    return path


def test_a_key_set_goes_to_the_keyring_and_calls_use_it(
    keyring_file: Path,
    cli_home: Path,
    callm_run: CallmProcess,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with FakeOpenAIServer(api_key=FAKE_KEY) as fake:
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
        saved = callm_run("keys", "set", "openai", input=FAKE_KEY + "\n")
        assert saved.code == 0, saved.stderr
        assert saved.stderr == "Saved the openai key in the OS keyring (FileKeyring)\n"
        assert json.loads(keyring_file.read_text()) == {"callm/openai": FAKE_KEY}
        assert not (cli_home / "keys.json").exists()
        index = (cli_home / "keyring.json").read_text()
        assert FAKE_KEY not in index and "openai" in index

        fake.queue(Reply("from the keyring"))
        answer = callm_run("-m", "openai/gpt-4o-mini", "hi")
        assert (answer.code, answer.stdout) == (0, "from the keyring\n")
        assert fake.requests[-1].headers["authorization"] == f"Bearer {FAKE_KEY}"

    listed = callm_run("keys", "list").stdout
    assert [line.split()[1:] for line in listed.splitlines() if line.startswith("openai ")] == [
        ["OS", "keyring"]
    ]
    removed = callm_run("keys", "remove", "openai")
    assert removed.code == 0
    assert json.loads(keyring_file.read_text()) == {}


def test_file_forces_the_0600_file_even_with_a_keyring(
    keyring_file: Path, cli_home: Path, callm_run: CallmProcess
) -> None:
    saved = callm_run("keys", "set", "openai", "--file", input=FAKE_KEY + "\n")
    assert saved.code == 0
    assert json.loads((cli_home / "keys.json").read_text()) == {"openai": FAKE_KEY}
    assert not keyring_file.exists()


def test_without_a_keyring_the_file_is_used(cli_home: Path, callm_run: CallmProcess) -> None:
    saved = callm_run("keys", "set", "anthropic", input=FAKE_KEY + "\n")
    assert saved.code == 0
    assert saved.stderr.startswith("Saved the anthropic key to ")
    assert json.loads((cli_home / "keys.json").read_text()) == {"anthropic": FAKE_KEY}
