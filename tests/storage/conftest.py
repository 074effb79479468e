"""The store fixture: every contract test runs once per implementation."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from storage.memory import MemoryStore
from storage.ports import Store
from storage.sqlite import SqliteStore
from tests.support.postgres import Cluster
from tests.support.postgres import start as start_cluster


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    opened: Store
    if request.param == "memory":
        opened = MemoryStore()
    else:
        opened = await SqliteStore.open(tmp_path / "salesbot.db")
    async with opened:
        yield opened


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[Cluster]:
    """One throwaway PostgreSQL cluster for the session (`tests.support.postgres`): it fails,
    never skips, when PostgreSQL cannot be started."""
    cluster = start_cluster()
    try:
        yield cluster
    finally:
        cluster.stop()
