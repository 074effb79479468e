"""`/readyz` tells the truth about writes (issue 11): through the real server, a store that
cannot write — a read-only SQLite database, a failing or stuck store — makes it answer 503
with the reason, while `/healthz` (the process is alive) stays 200; once writes work again
it is ready at the next probe. Probes are rate-limited by the injected clock."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

import bot.service
from bot.policy_loader import load_policy
from bot.server import build_app
from bot.service import READY_PROBE_EVERY_MS, build_service
from bot.settings import Settings
from storage.errors import StorageError
from storage.memory import MemoryStore
from storage.ports import Store
from storage.sqlite import SqliteStore
from storage.sqlite_process import ProcessWriter
from storage.sqlite_writer import WriterKind

START_MS = 1_790_000_000_000


class Clock:
    def __init__(self) -> None:
        self.now = START_MS

    def __call__(self) -> int:
        return self.now


class FlakyStore(MemoryStore):
    """Adapter-state writes fail while `failing` is set, or hang while `stuck` is; counts
    the writes it was asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.failing = False
        self.stuck = False
        self.writes = 0

    async def put_state(self, key: str, value: Mapping[str, Any], at_ms: int) -> None:
        self.writes += 1
        if self.stuck:
            await asyncio.Event().wait()
        if self.failing:
            raise StorageError("The database /srv/salesbot.db reported an error: disk I/O error.")
        await super().put_state(key, value, at_ms)


Client = TestClient[web.Request, web.Application]


@asynccontextmanager
async def serve(store: Store, clock: Clock) -> AsyncIterator[Client]:
    service = build_service(Settings(), load_policy("default"), store, clock=clock)
    async with TestClient(TestServer(build_app(service), host="127.0.0.1")) as client:
        yield client


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def flaky() -> FlakyStore:
    return FlakyStore()


@pytest.fixture
async def client(flaky: FlakyStore, clock: Clock) -> AsyncIterator[Client]:
    async with serve(flaky, clock) as served:
        yield served


async def test_readyz_is_503_with_the_reason_while_the_store_cannot_write_and_ready_again_after(
    client: Client, flaky: FlakyStore, clock: Clock
) -> None:
    assert (await client.get("/readyz")).status == 200
    flaky.failing = True
    clock.now += READY_PROBE_EVERY_MS

    response = await client.get("/readyz")
    assert response.status == 503
    body = await response.json()
    assert body["status"] == "not ready"
    assert body["reason"] == (
        "the store cannot write: The database /srv/salesbot.db reported an error: disk I/O error."
    )
    assert (await client.get("/healthz")).status == 200  # alive, only not ready

    flaky.failing = False
    assert (await client.get("/readyz")).status == 503  # the last verdict, until the next probe
    clock.now += READY_PROBE_EVERY_MS
    recovered = await client.get("/readyz")
    assert recovered.status == 200
    assert (await recovered.json())["status"] == "ready"


async def test_probes_are_rate_limited_by_the_clock(
    client: Client, flaky: FlakyStore, clock: Clock
) -> None:
    before = flaky.writes
    for _ in range(5):
        assert (await client.get("/readyz")).status == 200
    assert flaky.writes == before + 1
    clock.now += READY_PROBE_EVERY_MS - 1
    await client.get("/readyz")
    assert flaky.writes == before + 1
    clock.now += 1
    await client.get("/readyz")
    assert flaky.writes == before + 2


async def test_a_store_whose_write_never_returns_is_not_ready(
    client: Client, flaky: FlakyStore, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bot.service, "READY_PROBE_TIMEOUT_S", 0.01)
    flaky.stuck = True
    clock.now += READY_PROBE_EVERY_MS
    response = await client.get("/readyz")
    assert response.status == 503
    assert (await response.json())["reason"] == "the store did not complete a write within 0.01 s"


def _read_only(conn: sqlite3.Connection) -> None:
    """What a read-only file or a file system remounted read-only does to SQLite, on the
    store's one write connection (root ignores file permissions)."""
    conn.execute("PRAGMA query_only = ON")


@pytest.mark.parametrize("writer", ["thread", "process"])
async def test_a_read_only_sqlite_database_is_not_ready(
    tmp_path: Path, clock: Clock, writer: WriterKind
) -> None:
    store = await SqliteStore.open(tmp_path / "salesbot.db", writer=writer)
    try:
        async with serve(store, clock) as client:
            assert (await client.get("/readyz")).status == 200
            await store._outside(_read_only)
            clock.now += READY_PROBE_EVERY_MS
            response = await client.get("/readyz")
            assert response.status == 503
            reason = (await response.json())["reason"]
            assert reason.startswith("the store cannot write: ")
            assert "readonly database" in reason
            assert (await client.get("/healthz")).status == 200
    finally:
        await store.close()


async def test_a_dead_writer_process_is_not_ready_and_says_so(tmp_path: Path, clock: Clock) -> None:
    store = await SqliteStore.open(tmp_path / "salesbot.db", writer="process")
    try:
        async with serve(store, clock) as client:
            assert (await client.get("/readyz")).status == 200
            writer = store._engine
            assert isinstance(writer, ProcessWriter)
            os.kill(writer.pid, signal.SIGKILL)
            await writer.exited()
            clock.now += READY_PROBE_EVERY_MS
            response = await client.get("/readyz")
            assert response.status == 503
            reason = (await response.json())["reason"]
            assert "writer process" in reason
            assert "was killed (signal 9)" in reason
            assert "until salesbot is restarted" in reason
            assert (await client.get("/healthz")).status == 200
    finally:
        await store.close()
