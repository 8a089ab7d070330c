"""The ``local`` provider: callm's offline model, served over real HTTP on loopback.

One server per process, started on first use in a background thread and stopped at exit,
so the offline model goes through exactly the same HTTP path as a real provider.
"""

from __future__ import annotations

import atexit
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..testing import FakeOpenAIServer

_lock = threading.Lock()
_server: FakeOpenAIServer | None = None


def local_base_url() -> str:
    """The base URL of the process's offline model server, starting it if needed."""
    global _server  # noqa: PLW0603 — one server per process, shared by every client
    with _lock:
        if _server is None:
            from ..testing import FakeOpenAIServer

            # Nothing recorded: every request would stay in memory for the process's life.
            server = FakeOpenAIServer(record=False)
            server.start()
            atexit.register(server.stop)
            _server = server
        return _server.base_url
