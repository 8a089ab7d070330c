"""Shared pieces of the command-line tests (plain code, not fixtures)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from callm.testing import FakeOpenAIServer

FAKE_KEY = "sk-test-fake-cli-key-4242"
_TIMEOUT = 20.0


@dataclass(frozen=True)
class Result:
    """A finished ``callm`` run."""

    code: int
    stdout: str
    stderr: str

    @property
    def error_lines(self) -> list[str]:
        return self.stderr.splitlines()


@dataclass(frozen=True)
class CallmProcess:
    """Runs ``python -m callm`` for real, in the test's environment and working directory."""

    cwd: Path

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "callm", *args]

    def __call__(self, *args: str, input: str | None = None) -> Result:
        """Run to completion; stdin is ``input``, or empty (not a terminal) when None."""
        done = subprocess.run(
            self.argv(*args),
            input=input if input is not None else "",
            capture_output=True,
            text=True,
            cwd=self.cwd,
            env=dict(os.environ),
            timeout=_TIMEOUT,
            check=False,
        )
        return Result(done.returncode, done.stdout, done.stderr)


def sent_body(server: FakeOpenAIServer, index: int = 0) -> dict[str, Any]:
    """The JSON body of the ``index``-th request the fake server received."""
    body = server.requests[index].json
    assert isinstance(body, dict)
    return body
