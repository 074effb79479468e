"""One logical lane per conversation: strict order inside it, concurrency across them —
inside this process (`Lanes`); and what a store shared by several processes offers to keep
them from stepping on each other (`SharedStore`).

A lane is an `asyncio.Lock` that exists only while someone holds it or waits for it, so
memory is bounded by the conversations in flight, not by every conversation ever seen.

Across processes (several `salesbot serve` replicas on one PostgreSQL) a lane orders
nothing: the store's expected-version check does. A replica that decided on a state another
replica has since advanced finds its commit refused (`ConcurrencyError`), reloads and
decides again (`bot.runtime`, bounded). What the runtime needs beyond that from a shared
store is `SharedStore`: it checks a cached state against the store's head before deciding
on it, and takes a sweep's turn before sweeping.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol, runtime_checkable


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


@runtime_checkable
class SharedStore(Protocol):
    """A store that several processes write at once (`storage.postgres_turns`).

    A runtime on such a store trusts no cached conversation state without comparing its
    version with the store's head, and runs a periodic sweep only in its turn. The
    embedded stores (SQLite, memory) are not shared: their runtimes behave as before."""

    def turn(self, kind: str) -> AbstractAsyncContextManager[bool]:
        """Yields True while this process alone runs `kind` (a sweep's name), False when
        another process runs it now; never waits."""
        ...


@asynccontextmanager
async def turn(store: object, kind: str) -> AsyncIterator[bool]:
    """`kind`'s turn on a shared store; always this process's on a store of its own."""
    if not isinstance(store, SharedStore):
        yield True
        return
    async with store.turn(kind) as mine:
        yield mine
