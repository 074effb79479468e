"""The composition root: the only place that names concrete store classes.

Tests build the same objects through these functions with fakes passed in; nothing here
runs at import time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from bot.settings import Settings
from storage.memory import MemoryStore
from storage.ports import Store
from storage.sqlite import SqliteStore


@asynccontextmanager
async def open_store(settings: Settings, *, memory: bool = False) -> AsyncIterator[Store]:
    """The configured store (SQLite at `SALESBOT_DB`), or an in-memory one for `--memory`."""
    store: Store = MemoryStore() if memory else await SqliteStore.open(settings.salesbot_db)
    try:
        yield store
    finally:
        await store.close()
