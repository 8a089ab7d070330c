"""The terminal view of ``callm compare``: one column per model, redrawn as answers stream.

Imported only when stdout is a terminal (it loads rich).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.markdown import Markdown
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from ._answer import Answer


class _Columns:
    """The answers side by side; rendered afresh at every refresh of the Live display."""

    def __init__(self, answers: Sequence[Answer]) -> None:
        self.answers = answers

    def __rich__(self) -> RenderableType:
        table = Table.grid(expand=True, padding=(0, 1))
        for _ in self.answers:
            table.add_column(ratio=1)
        table.add_row(*(_panel(a) for a in self.answers))
        return table


def _panel(answer: Answer) -> Panel:
    # Markdown once the answer is complete; plain text while it streams (half a table or
    # an open code fence would make the layout jump).
    body: RenderableType = (
        Markdown(answer.text) if answer.response is not None else Text(answer.text)
    )
    style = "red" if answer.error is not None else "green" if answer.done else "dim"
    footer = Text(answer.stats(), style=style)
    return Panel(Group(body, Text(""), footer), title=answer.model, title_align="left")


@contextlib.contextmanager
def live_view(answers: Sequence[Answer]) -> Iterator[None]:
    """Show ``answers`` side by side until the block ends, then leave the last frame."""
    console = Console()
    with Live(
        _Columns(answers),
        console=console,
        refresh_per_second=12,
        vertical_overflow="visible",
        transient=False,
    ):
        yield
