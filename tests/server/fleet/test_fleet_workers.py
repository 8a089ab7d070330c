"""``callm serve --workers 2`` on a fleet's stores: granian's RSGI workers (one process runs
on the gateway's own server instead) answer whole and streamed requests and refuse a bad
key, in the caller's format."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest
from gateway_process import GatewayProcess

from callm.testing import FakeOpenAIServer, Reply

SECRET = "fleet-secret-" + "w" * 20
HI: list[dict[str, str]] = [{"role": "user", "content": "Hi"}]


def test_two_rsgi_workers_serve_the_gateway(
    upstream: FakeOpenAIServer, postgres_url: str, redis_url: str, tmp_path: Path
) -> None:
    env = {
        "CALLM_DATABASE_URL": postgres_url,
        "CALLM_REDIS_URL": redis_url,
        "CALLM_SERVER_SECRET": SECRET,
    }
    with GatewayProcess(upstream, tmp_path, env=env, args=("--workers", "2")) as gateway:
        assert gateway.proc is not None
        children = Path(f"/proc/{gateway.proc.pid}/task/{gateway.proc.pid}/children")
        assert len(children.read_text().split()) == 2  # granian's two worker processes
        key = gateway.new_key()
        with openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0) as client:
            upstream.queue(Reply("whole"), Reply("streamed reply"))
            reply = client.chat.completions.create(model="openai/gpt-4o-mini", messages=HI)  # type: ignore[arg-type]
            assert reply.choices[0].message.content == "whole"
            chunks = client.chat.completions.create(
                model="openai/gpt-4o-mini",
                messages=HI,  # type: ignore[arg-type]
                stream=True,
            )
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            assert text == "streamed reply"
        with (
            openai.OpenAI(base_url=gateway.url + "/v1", api_key="sk-callm-" + "z" * 32) as bad,
            pytest.raises(openai.AuthenticationError),
        ):
            bad.chat.completions.create(model="openai/gpt-4o-mini", messages=HI)  # type: ignore[arg-type]
