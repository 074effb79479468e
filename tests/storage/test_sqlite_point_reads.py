"""A conversation's version, whether it has a stream at all, and whether a delivery was
stored are looked up on the event loop's own thread (`SqliteConnections._peek`) instead of
through the reader's thread: a new conversation's first message loads nothing without a
round trip, what the writer (on its thread or in its process) has committed is seen at
once, and a look-up SQLite cannot answer at once is read through the reader as before."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiosqlite
import pytest

from domain.policy import Policy
from storage import sqlite_writer
from storage.errors import StorageError
from storage.ports import Commit
from storage.sqlite import SqliteStore
from storage.sqlite_writer import WriterKind
from tests.storage.builders import handoff_script


@pytest.fixture(params=["thread", "process"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SqliteStore]:
    writer: WriterKind = request.param
    async with await SqliteStore.open(tmp_path / "salesbot.db", writer=writer) as opened:
        yield opened


@pytest.fixture
def reader_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The statements the reader's thread is sent from now on."""
    sent: list[str] = []
    fetch = aiosqlite.Connection.execute_fetchall

    async def counted(self: aiosqlite.Connection, sql: str, *args: Any) -> Any:
        sent.append(sql)
        return await fetch(self, sql, *args)

    monkeypatch.setattr(aiosqlite.Connection, "execute_fetchall", counted)
    return sent


async def test_a_conversation_not_yet_stored_loads_nothing_without_the_readers_thread(
    store: SqliteStore, default_policy: Policy, reader_reads: list[str]
) -> None:
    assert await store.load("conv-new") == []
    assert await store.version("conv-new") == 0
    assert reader_reads == []

    commits = handoff_script(default_policy, "conv-1").commits[:2]
    for commit in commits:
        assert (await store.commit(commit)).status == "committed"
    # Committed by the writer (its thread or its process): seen by the very next look-up.
    assert await store.version("conv-1") == len(commits[0].events) + len(commits[1].events)
    assert reader_reads == []
    assert await store.seen(commits[0].delivery_id)
    assert not await store.seen("delivery-never-sent")
    assert reader_reads == []
    loaded = await store.load("conv-1")
    assert loaded == [*commits[0].events, *commits[1].events]
    assert reader_reads  # the events themselves are read on the reader's thread


@pytest.fixture
async def committed(store: SqliteStore, default_policy: Policy) -> Commit:
    """conv-1's first commit, stored."""
    commit = handoff_script(default_policy, "conv-1").commits[0]
    await store.commit(commit)
    return commit


class FailingPeeker:
    """A look-up connection whose every statement fails with `error`."""

    def __init__(self, error: sqlite3.Error) -> None:
        self.error = error
        self.closed = False

    def execute(self, sql: str, params: object = ()) -> sqlite3.Cursor:
        raise self.error

    def close(self) -> None:
        self.closed = True


def busy() -> sqlite3.OperationalError:
    """The error SQLite raises when it declines to wait (no busy timeout)."""
    error = sqlite3.OperationalError("database is locked")
    error.sqlite_errorcode = sqlite3.SQLITE_BUSY
    return error


async def test_a_look_up_sqlite_cannot_answer_at_once_is_read_through_the_reader(
    store: SqliteStore, committed: Commit, reader_reads: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    peeker = FailingPeeker(busy())
    monkeypatch.setattr(store, "_peeker", peeker)
    assert await store.version("conv-1") == len(committed.events)
    assert await store.load("conv-1") == list(committed.events)
    assert await store.load("conv-new") == []
    assert await store.seen(committed.delivery_id)
    assert len(reader_reads) >= 4  # each answered by the reader instead
    assert not peeker.closed  # busy for a moment: the same connection is tried next time


async def test_a_look_up_connection_that_fails_otherwise_is_replaced(
    store: SqliteStore, committed: Commit, reader_reads: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = FailingPeeker(sqlite3.DatabaseError("database disk image is malformed"))
    monkeypatch.setattr(store, "_peeker", broken)
    assert await store.version("conv-1") == len(committed.events)  # the reader answered
    assert broken.closed
    answered_by_reader = len(reader_reads)
    assert await store.load("conv-new") == []  # a new look-up connection answered
    assert len(reader_reads) == answered_by_reader


async def test_a_file_that_cannot_be_opened_for_a_look_up_is_read_through_the_reader(
    store: SqliteStore, committed: Commit, reader_reads: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(path: Path) -> sqlite3.Connection:
        raise sqlite3.OperationalError("unable to open database file")

    monkeypatch.setattr(store, "_peeker", None)
    monkeypatch.setattr(sqlite_writer, "_open_peeker", refuse)
    assert await store.version("conv-1") == len(committed.events)
    assert reader_reads


async def test_a_closed_store_refuses_look_ups(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "salesbot.db")
    assert await store.version("conv-1") == 0
    await store.close()
    with pytest.raises(StorageError, match="is closed"):
        await store.version("conv-1")
    with pytest.raises(StorageError, match="is closed"):
        await store.load("conv-1")
