"""Run callm's fake OpenAI server in a subprocess, so it has a core of its own."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from types import TracebackType

_READY = re.compile(r"listening on (http://\S+)")
_START_TIMEOUT = 20.0
_STOP_TIMEOUT = 5.0


class FakeServer:
    """``with FakeServer() as server: server.url`` — started once, always terminated."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[str] | None = None
        self.url = ""

    def start(self) -> str:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "callm.testing", "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        line = self._first_line()
        match = _READY.search(line)
        if match is None:
            self.stop()
            raise RuntimeError(f"fake server did not start (said {line!r})")
        self.url = match.group(1)
        return self.url

    def _first_line(self) -> str:
        assert self._proc is not None
        stdout = self._proc.stdout
        assert stdout is not None
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.append(stdout.readline()), daemon=True)
        reader.start()
        reader.join(_START_TIMEOUT)
        return lines[0] if lines else ""

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(_STOP_TIMEOUT)
        if proc.stdout is not None:
            proc.stdout.close()

    def __enter__(self) -> FakeServer:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
