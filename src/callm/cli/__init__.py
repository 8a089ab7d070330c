"""callm's command line: ``callm "prompt"``, ``callm models``, ``callm keys set openai``,
``callm logs`` and ``callm usage`` (every call is logged to SQLite; ``CALLM_LOG=0`` or
``callm --no-log`` leaves calls out).

Run ``callm --help`` for the whole tour. Exit codes: 0 ok, 1 API error, 2 usage or
configuration error, 130 interrupted.
"""

from __future__ import annotations

from collections.abc import Sequence

from ._app import cli

__all__ = ["cli", "main"]


def main(argv: Sequence[str] | None = None) -> None:
    """Run the ``callm`` command line (the console-script entry point); exits the process."""
    cli.main(args=argv, prog_name="callm")
