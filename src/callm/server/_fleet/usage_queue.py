"""Usage and spend on their way to PostgreSQL: merged in memory, written in batches.

Calls add to per-(day, key, model) and per-key rows, so the queue grows with the number of
keys and models in use, not with traffic; one batch is one transaction however many calls
it carries. When PostgreSQL is unreachable the rows stay queued (and keep merging) and are
written when it returns; ``queued`` is what waits (a metric), and past ``max_rows`` the
gateway stops admitting calls rather than lose what they would cost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from .._ledger_store import UsageDelta
from .pg_store import SpendDelta

logger = logging.getLogger("callm.server")
Writer = Callable[[Sequence[UsageDelta], Sequence[SpendDelta]], Awaitable[None]]


class UsageQueue:
    """Pending usage and spend rows, flushed by ``flush`` (and a background task)."""

    def __init__(self, write: Writer, *, max_rows: int = 100_000) -> None:
        self._write = write
        self.max_rows = max_rows
        self.failures = 0  # writes that failed since the last one that worked
        self._usage: dict[tuple[str, str, str], UsageDelta] = {}
        self._spend: dict[str, SpendDelta] = {}
        self._writing = 0  # rows of the batch being written
        self._lock = asyncio.Lock()

    @property
    def queued(self) -> int:
        """Rows not yet in the database (the batch being written included)."""
        return len(self._usage) + len(self._spend) + self._writing

    @property
    def full(self) -> bool:
        return self.queued >= self.max_rows

    def add(self, usage: UsageDelta, spend: SpendDelta | None) -> None:
        key = (usage.day, usage.key_id, usage.model)
        found = self._usage.get(key)
        self._usage[key] = usage if found is None else found + usage
        if spend is not None:
            self._spend[spend.key_id] = merge_spend(self._spend.get(spend.key_id), spend)

    async def flush(self) -> None:
        """Write what is queued in one transaction; on failure it stays queued and raises."""
        async with self._lock:
            if not self._usage and not self._spend:
                return
            usage, self._usage = self._usage, {}
            spend, self._spend = self._spend, {}
            self._writing = len(usage) + len(spend)
            try:
                await self._write(list(usage.values()), list(spend.values()))
            except BaseException:
                self._writing = 0
                for delta in usage.values():  # merged with whatever arrived meanwhile
                    self.add(delta, None)
                for row in spend.values():
                    self._spend[row.key_id] = merge_spend(row, self._spend.get(row.key_id))
                self.failures += 1
                raise
            self._writing = 0
            self.failures = 0

    async def flush_forever(self, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            try:
                await self.flush()
            except Exception:
                level = logging.WARNING if self.failures == 1 else logging.DEBUG
                logger.log(
                    level,
                    "callm serve: usage not written yet (%d rows queued)",
                    self.queued,
                    exc_info=True,
                )


def merge_spend(older: SpendDelta | None, newer: SpendDelta | None) -> SpendDelta:
    """Two spend deltas of one key as one: a later budget period replaces an earlier one."""
    if older is None or newer is None:
        found = older or newer
        assert found is not None
        return found
    a, b = older.period_start, newer.period_start
    if a is not None and b is not None and a != b:
        return newer if b > a else older
    return SpendDelta(
        older.key_id,
        b if b is not None else a,
        older.spent + newer.spent,
        older.calls + newer.calls,
        older.input_tokens + newer.input_tokens,
        older.output_tokens + newer.output_tokens,
    )
