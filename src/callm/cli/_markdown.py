"""Answers rendered as Markdown on a terminal while they stream (rich, loaded only here).

Finished blocks — text up to a blank line outside a code fence — are printed once and for
good; only the block still growing is redrawn, so a long answer scrolls like plain output
instead of being redrawn whole at every fragment.
"""

from __future__ import annotations

from rich.console import Console
from rich.live import Live
from rich.markdown import Markdown

_FENCE = "```"


def stable_end(text: str) -> int:
    """How much of ``text`` is finished blocks: up to its last blank line outside a fence."""
    end = 0
    start = 0
    while (found := text.find("\n\n", start)) != -1:
        if text.count(_FENCE, 0, found) % 2 == 0:
            end = found + 2
        start = found + 2
    return end


class MarkdownWriter:
    """The LineWriter of a terminal: same two methods, Markdown on screen."""

    def __init__(self, console: Console | None = None) -> None:
        self._console = console or Console()
        self._printed = 0  # characters of the text already printed for good
        self._text = ""
        self._live: Live | None = None

    def write(self, fragment: str) -> None:
        """Add a fragment: print the blocks it finished, redraw the one still open."""
        if not fragment:
            return
        self._text += fragment
        end = stable_end(self._text)
        if end > self._printed:
            self._stop_live()
            self._console.print(Markdown(self._text[self._printed : end]))
            self._printed = end
        rest = self._text[self._printed :]
        if rest.strip():
            if self._live is None:
                self._live = Live(
                    console=self._console, refresh_per_second=10, transient=True,
                    vertical_overflow="visible",
                )  # fmt: skip
                self._live.start()
            self._live.update(Markdown(rest))

    def end_line(self) -> bool:
        """Print the last block for good; True when anything was written."""
        self._stop_live()
        rest = self._text[self._printed :]
        if rest.strip():
            self._console.print(Markdown(rest))
        self._printed = len(self._text)
        return bool(self._text)

    def _stop_live(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
