"""What the floors' tests share: a store with the product's schema, written by the raw
group-commit loop the floors commit through (`bench.append.RawGroupCommit`), and what it
holds at a given moment."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest_asyncio

from bench.append import RawGroupCommit
from storage.sqlite import SqliteStore


@dataclass(frozen=True)
class FloorStore:
    path: Path
    writer: RawGroupCommit

    def stored(self) -> tuple[list[tuple[str]], list[tuple[str]]]:
        """The events' types and the deliveries' ids committed so far."""
        with sqlite3.connect(self.path) as conn:
            events = conn.execute("SELECT type FROM events").fetchall()
            deliveries = conn.execute("SELECT delivery_id FROM deliveries").fetchall()
        return events, deliveries


@pytest_asyncio.fixture
async def floor_store(tmp_path: Path) -> AsyncIterator[FloorStore]:
    path = tmp_path / "floor.db"
    await (await SqliteStore.open(path)).close()
    writer = RawGroupCommit(path)
    try:
        yield FloorStore(path, writer)
    finally:
        writer.close()
