"""The gateway's own files are private whatever the umask: its folder 0700, its database
(key hashes, spend, usage) and its key-hashing secret 0600."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import openai
from gateway_process import GatewayProcess

from callm.testing import FakeOpenAIServer


def test_a_fresh_gateway_home_and_its_files_are_private_whatever_the_umask(
    upstream: FakeOpenAIServer, tmp_path: Path
) -> None:
    state = tmp_path / "state"  # missing: the gateway makes it
    old = os.umask(0)  # inherited by the gateway process
    try:
        gateway = GatewayProcess(upstream, tmp_path, env={"CALLM_HOME": str(state)}).start()
    finally:
        os.umask(old)
    try:  # a key made and used: its hash, the call's usage and spend are written
        with openai.OpenAI(base_url=gateway.url + "/v1", api_key=gateway.new_key()) as app:
            app.chat.completions.create(
                model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}]
            )
    finally:
        gateway.stop()
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    files = sorted(p for p in state.iterdir() if p.is_file())
    assert any(p.name == "gateway.db" for p in files), files
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
