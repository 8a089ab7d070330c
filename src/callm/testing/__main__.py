"""``python -m callm.testing``: run the fake OpenAI server in the foreground.

Prints one line, ``callm fake server listening on http://HOST:PORT``, then serves until
SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence

from ._server import FakeOpenAIServer


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until interrupted; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m callm.testing", description="Run callm's fake OpenAI-compatible server."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    parser.add_argument("--api-key", default=None, help="require this key on every request")
    args = parser.parse_args(argv)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with FakeOpenAIServer(host=args.host, port=args.port, api_key=args.api_key) as server:
        print(f"callm fake server listening on {server.url}", flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
