"""The pytest fixture and ``python -m callm.testing``."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import httpx2

from callm.testing import FakeOpenAIServer, Reply


def test_fixture_yields_a_started_server(fake_openai, client):
    assert isinstance(fake_openai, FakeOpenAIServer)
    fake_openai.queue(Reply("from the fixture"))
    body = {"model": "m", "messages": []}
    response = client.post(fake_openai.base_url + "/chat/completions", json=body)
    assert response.json()["choices"][0]["message"]["content"] == "from the fixture"


def test_plugin_module_registers_the_fixture(tmp_path, subprocess_env):
    (tmp_path / "test_uses_fixture.py").write_text(
        textwrap.dedent(
            """
            import urllib.request

            def test_it(fake_openai):
                with urllib.request.urlopen(fake_openai.base_url + "/models") as response:
                    assert response.status == 200
                assert len(fake_openai.requests) == 1
            """
        )
    )
    (tmp_path / "pytest.ini").write_text("[pytest]\nfilterwarnings = error\n")
    # Only the plugin under test: no autoloaded entry points (an installed callm included).
    env = {**subprocess_env, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    command = [
        *(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"),
        *("-p", "callm.testing.pytest_plugin", str(tmp_path)),
    ]
    result = subprocess.run(
        command,
        check=False,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


def test_python_dash_m_serves_until_terminated(subprocess_env):
    process = subprocess.Popen(
        [sys.executable, "-m", "callm.testing", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=subprocess_env,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        prefix = "callm fake server listening on http://127.0.0.1:"
        assert line.startswith(prefix), line
        url = line.strip().removeprefix("callm fake server listening on ")
        response = httpx2.post(
            url + "/v1/chat/completions",
            json={"model": "offline", "messages": [{"role": "user", "content": "ping"}]},
        )
        assert response.json()["choices"][0]["message"]["content"].startswith(
            '[offline] You said: "ping"'
        )
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0, stderr
    assert stderr == ""
