"""Key lookups for a fleet instance: cached for a short time, dropped the moment a key changes.

A lookup that misses goes to PostgreSQL once however many requests ask at the same moment
(the others wait for its answer), and unknown hashes are cached too, so a flood of bad keys
costs the database one query per hash and TTL. Every change to a key is published on a
Redis channel; each instance drops its entry when told. While that channel is down (or
there is no Redis) the TTL falls to ``ttl_alone``, so a change is seen within it anyway.
When PostgreSQL is unreachable a stale entry is served rather than failing every request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from .._ledger import VirtualKey

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.cluster import RedisCluster

logger = logging.getLogger("callm.server")
Lookup = Callable[[str], Awaitable[VirtualKey | None]]


class KeyCache:
    """hash -> live key (or None), each entry kept at most ``ttl`` seconds."""

    def __init__(self, lookup: Lookup, *, ttl: float = 10.0, ttl_alone: float = 1.0) -> None:
        self._lookup = lookup
        self.ttl, self.ttl_alone = ttl, ttl_alone
        self.listening = False  # subscribed to the change channel right now
        self._entries: dict[str, tuple[float, VirtualKey | None]] = {}
        self._pending: dict[str, asyncio.Future[VirtualKey | None]] = {}

    async def get(self, key_hash: str) -> VirtualKey | None:
        entry = self._entries.get(key_hash)
        ttl = self.ttl if self.listening else self.ttl_alone
        if entry is not None and time.monotonic() - entry[0] < ttl:
            return entry[1]
        pending = self._pending.get(key_hash)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[VirtualKey | None] = asyncio.get_running_loop().create_future()
        self._pending[key_hash] = future
        try:
            found = await self._lookup(key_hash)
        except Exception as exc:
            if entry is None:
                future.set_exception(exc)
                future.exception()  # retrieved: waiters re-raise it, nobody logs it twice
                raise
            found = entry[1]  # the database is unreachable: the last answer stands
            future.set_result(found)
            return found
        finally:
            del self._pending[key_hash]
        self._entries[key_hash] = (time.monotonic(), found)
        future.set_result(found)
        return found

    def drop(self, key_hash: str | None = None) -> None:
        """Forget one key (or every key): the next lookup asks the database."""
        if key_hash is None:
            self._entries.clear()
        else:
            self._entries.pop(key_hash, None)


class ChangeChannel:
    """Publishes key changes on Redis and feeds those of every instance to a KeyCache."""

    def __init__(
        self, client: Redis | RedisCluster, cache: KeyCache, *, channel: str = "callm:keys"
    ) -> None:
        self.client, self.cache, self.channel = client, cache, channel
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._listen_forever())

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.cache.listening = False

    async def publish(self, key_hash: str) -> None:
        """Tell every instance (this one included) that this key changed."""
        self.cache.drop(key_hash)
        try:
            await self.client.publish(self.channel, key_hash)
        except Exception:  # the others see it within their TTL instead
            logger.warning("callm serve: could not publish a key change", exc_info=True)

    async def _listen_forever(self) -> None:
        while True:
            try:
                await self._listen()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.debug("callm serve: key change channel lost; retrying", exc_info=True)
            self.cache.listening = False
            await asyncio.sleep(0.5)

    async def _listen(self) -> None:
        pubsub: Any = self.client.pubsub()
        try:
            await pubsub.subscribe(self.channel)
            # Changes made while not listening went unheard: forget everything once.
            self.cache.drop()
            self.cache.listening = True
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5.0)
                if message is not None and message.get("type") == "message":
                    data = message["data"]
                    self.cache.drop(data.decode() if isinstance(data, bytes) else str(data))
                elif message is None:
                    await pubsub.ping()  # a dead connection shows itself here
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()
