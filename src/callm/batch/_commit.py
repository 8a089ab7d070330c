"""Commit finished lines: into the store first, then onto the output, then its new length.

The order is what makes a batch crash-safe (see :mod:`callm._store._batches`): a result is
committed before its line is written, and the output's length is recorded only once the
line is synced, so a restart can always cut a torn tail and rewrite what was committed.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, BinaryIO

from .._store._batches import ItemOutcome, mark_written, record_outcomes

if TYPE_CHECKING:
    from .._store import Store


def commit_outcomes(
    store: Store, job_id: str, out: BinaryIO, outcomes: Sequence[ItemOutcome]
) -> None:
    """Store ``outcomes``, append the answered ones to ``out`` (synced), record its length."""
    if not outcomes:
        return
    record_outcomes(store, job_id, outcomes)
    done = [o for o in outcomes if o.status == "done"]
    if done:
        out.write("".join(f"{o.result}\n" for o in done).encode())
        out.flush()
        os.fsync(out.fileno())
        mark_written(store, job_id, [o.line for o in done], out.tell())
