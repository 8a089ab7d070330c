"""``callm keys set|list|remove``: a 0600 file, and no key ever printed."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import CallmProcess

KEY = "sk-stored-key-for-tests-9876"

# Runs `callm keys set openai` on a fresh pseudo-terminal (so the hidden prompt is used),
# types KEY, and reports the exit status and everything the terminal showed.
_ON_A_TERMINAL = """
import json, os, pty, sys
key = sys.argv[1]
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.executable, [sys.executable, "-m", "callm", "keys", "set", "openai"])
shown = b""
while b"API key for openai" not in shown:
    shown += os.read(fd, 1024)
os.write(fd, key.encode() + b"\\n")
while True:
    try:
        chunk = os.read(fd, 1024)
    except OSError:
        break
    if not chunk:
        break
    shown += chunk
_, status = os.waitpid(pid, 0)
print(json.dumps({"code": os.waitstatus_to_exitcode(status), "shown": shown.decode()}))
"""


def stored(home: Path) -> dict[str, str]:
    data: dict[str, str] = json.loads((home / "keys.json").read_text())
    return data


def test_set_reads_a_piped_key_into_a_0600_file(cli_home: Path, callm_run: CallmProcess) -> None:
    result = callm_run("keys", "set", "openai", input=KEY + "\n")
    assert result.code == 0
    assert KEY not in result.stdout + result.stderr
    assert stored(cli_home) == {"openai": KEY}
    assert stat.S_IMODE((cli_home / "keys.json").stat().st_mode) == 0o600


def test_set_asks_at_a_hidden_prompt_on_a_terminal(cli_home: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _ON_A_TERMINAL, KEY],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=dict(os.environ),
        timeout=20,
        check=True,
    )
    report = json.loads(done.stdout)
    assert report["code"] == 0
    assert "API key for openai" in report["shown"]
    assert KEY not in report["shown"]  # the terminal did not echo it
    assert stored(cli_home) == {"openai": KEY}


def test_set_refuses_an_unknown_provider(cli_home: Path, callm_run: CallmProcess) -> None:
    result = callm_run("keys", "set", "nosuch", input=KEY)
    assert result.code == 2
    [line] = result.error_lines
    assert line.startswith("callm: error: unknown provider 'nosuch'")
    assert not (cli_home / "keys.json").exists()


def test_set_refuses_an_empty_key(cli_home: Path, callm_run: CallmProcess) -> None:
    result = callm_run("keys", "set", "openai", input="\n")
    assert result.code == 2
    assert result.error_lines[0].startswith("callm: error: no key given")
    assert not (cli_home / "keys.json").exists()


def test_list_says_where_each_key_comes_from_and_never_shows_one(
    tmp_path: Path, callm_run: CallmProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    for provider in ("openai", "together"):
        assert callm_run("keys", "set", provider, input=f"{KEY}-{provider}").code == 0
    monkeypatch.setenv("GROQ_API_KEY", f"{KEY}-groq")
    monkeypatch.setenv("TOGETHER_API_KEY", f"{KEY}-together-env")
    (tmp_path / ".env").write_text(f"MISTRAL_API_KEY={KEY}-mistral\n")
    result = callm_run("keys", "list")
    assert result.code == 0
    assert KEY not in result.stdout + result.stderr
    assert "sk-" not in result.stdout
    sources = dict(line.split(None, 1) for line in result.stdout.splitlines())
    assert sources["openai"] == "keys file"
    assert sources["groq"] == "environment variable GROQ_API_KEY"
    assert sources["mistral"] == ".env file (MISTRAL_API_KEY)"
    assert sources["together"] == (
        "environment variable TOGETHER_API_KEY (the stored key is not used)"
    )
    assert sources["local"] == "no key needed"
    assert sources["xai"] == "not set (set XAI_API_KEY or run `callm keys set xai`)"


def test_remove_deletes_the_stored_key(cli_home: Path, callm_run: CallmProcess) -> None:
    callm_run("keys", "set", "openai", input=KEY)
    callm_run("keys", "set", "groq", input=KEY)
    assert callm_run("keys", "remove", "openai").code == 0
    assert stored(cli_home) == {"groq": KEY}
    again = callm_run("keys", "remove", "openai")
    assert again.code == 2
    [line] = again.error_lines
    assert line.startswith("callm: error: no stored key for openai")
