"""The store fixture: every contract test runs once per implementation — in memory, on a
SQLite file (its writer on a thread, and in a process of its own), and on a fresh PostgreSQL
database of the session's throwaway cluster."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest

from storage.memory import MemoryStore
from storage.ports import Store
from storage.postgres import PostgresStore
from storage.sqlite import SqliteStore
from tests.support.postgres import Cluster
from tests.support.postgres import start as start_cluster


@pytest.fixture(params=["memory", "sqlite", "sqlite-process", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    opened: Store
    if request.param == "memory":
        opened = MemoryStore()
    elif request.param == "sqlite":
        opened = await SqliteStore.open(tmp_path / "salesbot.db")
    elif request.param == "sqlite-process":
        opened = await SqliteStore.open(tmp_path / "salesbot.db", writer="process")
    else:
        cluster: Cluster = request.getfixturevalue("postgres_cluster")
        async with fresh_database(cluster) as dsn, await PostgresStore.open(dsn) as opened:
            yield opened
        return
    async with opened:
        yield opened


@asynccontextmanager
async def fresh_database(cluster: Cluster) -> AsyncIterator[str]:
    """A new, empty schema on the cluster, as the DSN of a database that holds nothing
    else (its search path is that schema), dropped afterwards: what a store opened on it
    sees is an empty database, and creating one costs milliseconds, not a database copy."""
    name = f"t_{uuid.uuid4().hex}"
    admin = await asyncpg.connect(cluster.dsn)
    try:
        await admin.execute(f'CREATE SCHEMA "{name}"')
        yield f"{cluster.dsn}?search_path={name}"
    finally:
        try:
            await admin.execute(f'DROP SCHEMA "{name}" CASCADE')
        finally:
            await admin.close()


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[Cluster]:
    """One throwaway PostgreSQL cluster for the session (`tests.support.postgres`): it fails,
    never skips, when PostgreSQL cannot be started."""
    cluster = start_cluster()
    try:
        yield cluster
    finally:
        cluster.stop()
