"""One logical lane per conversation: strict order inside it, concurrency across them.

A lane is an `asyncio.Lock` that exists only while someone holds it or waits for it, so
memory is bounded by the conversations in flight, not by every conversation ever seen.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class Lanes:
    def __init__(self) -> None:
        self._lanes: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._lanes.get(key, (asyncio.Lock(), 0))
        self._lanes[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._lanes[key]
            if users == 1:
                del self._lanes[key]  # idle lane: evicted
            else:
                self._lanes[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._lanes)
