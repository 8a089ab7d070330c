"""Run the benchmark's server in a subprocess, so it has a core of its own.

By default that is the replay server (``_replay.py``): callm's fake answers each distinct
request once and the answer is served from memory afterwards, so the server costs little
and the run measures the clients. ``FakeServer(replay=False)`` runs the fake alone.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from pathlib import Path
from types import TracebackType

_READY = re.compile(r"listening on (http://\S+)")
_START_TIMEOUT = 20.0
_STOP_TIMEOUT = 5.0


class FakeServer:
    """``with FakeServer() as server: server.url`` — started once, always terminated."""

    def __init__(self, *, replay: bool = True) -> None:
        self._proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.command = (
            [sys.executable, str(Path(__file__).with_name("_replay.py"))]
            if replay
            else [sys.executable, "-m", "callm.testing", "--port", "0"]
        )

    def start(self) -> str:
        self._proc = subprocess.Popen(
            self.command,
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
