"""Run ``callm serve`` as a real subprocess on loopback, pointed at a fake upstream."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

from callm.testing import FakeOpenAIServer

UPSTREAM_KEY = "sk-" + "upstream" + "0" * 16  # made at run time, never a real key
MASTER_KEY = "master-" + "m" * 24


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def upstream_env(fake: FakeOpenAIServer) -> dict[str, str]:
    """The built-in providers of every protocol, pointed at the fake."""
    return {
        "OPENAI_BASE_URL": fake.base_url,
        "OPENAI_API_KEY": UPSTREAM_KEY,
        "ANTHROPIC_BASE_URL": fake.url,
        "ANTHROPIC_API_KEY": UPSTREAM_KEY,
        "GEMINI_BASE_URL": fake.url + "/v1beta",
        "GEMINI_API_KEY": UPSTREAM_KEY,
    }


class GatewayProcess:
    """``with GatewayProcess(fake, home) as gw: gw.url`` — started, healthy, then stopped."""

    def __init__(
        self,
        fake: FakeOpenAIServer,
        home: Path,
        *,
        config: str = "",
        env: dict[str, str] | None = None,
        master_key: str | None = MASTER_KEY,
        args: tuple[str, ...] = (),
    ) -> None:
        """``args``: more of ``callm serve``'s options (``--workers 2``)."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.home = home
        self.log = home / "gateway.log"
        self.config = home / "gateway.toml"
        home.mkdir(parents=True, exist_ok=True)
        self.config.write_text(config)
        self.env = {**os.environ, **upstream_env(fake), "CALLM_HOME": str(home), **(env or {})}
        self.env.pop("CALLM_MASTER_KEY", None)
        if master_key:
            self.env["CALLM_MASTER_KEY"] = master_key
        self.master_key = master_key
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> GatewayProcess:
        command = [sys.executable, "-m", "callm", "serve", "--port", str(self.port)]
        command += ["--config", str(self.config), *self.args]
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(command, env=self.env, stdout=log, stderr=log)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"callm serve exited: {self.log.read_text()}")
            try:
                with urllib.request.urlopen(self.url + "/ready", timeout=1) as r:
                    if r.status == 200:
                        return self
            except (OSError, urllib.error.URLError):
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"callm serve did not become ready: {self.log.read_text()}")

    def stop(self) -> int | None:
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        proc.terminate()
        try:
            return proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()

    def __enter__(self) -> GatewayProcess:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def admin(self, method: str, path: str, body: Any = None, key: str | None = None) -> Any:
        """Call the admin API; returns (status, JSON body)."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("authorization", f"Bearer {key or self.master_key}")
        request.add_header("content-type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def new_key(self, **limits: Any) -> str:
        status, body = self.admin("POST", "/admin/keys", {"name": "test", **limits})
        assert status == 201, body
        return str(body["key"])
