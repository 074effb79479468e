"""The composition root: the only place that names concrete store classes.

Tests build the same objects through these functions with fakes passed in; nothing here
runs at import time.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from bot.settings import Settings
from storage.errors import StorageError
from storage.memory import MemoryStore
from storage.ports import Store
from storage.postgres import PostgresStore, is_postgres_url
from storage.sqlite import SqliteStore
from storage.sqlite_writer import WriterKind


@asynccontextmanager
async def open_store(
    settings: Settings, *, memory: bool = False, serving: bool = False
) -> AsyncIterator[Store]:
    """The configured store — PostgreSQL when `SALESBOT_DB` is a `postgresql://` URL, else
    SQLite at that path — or an in-memory one for `--memory`. SQLite's writer runs where
    `SALESBOT_SQLITE_WRITER` says when `serving`, else on a thread (a command that runs
    for a moment would only pay for starting a process)."""
    store: Store
    if memory:
        store = MemoryStore()
    elif is_postgres_url(settings.salesbot_db):
        store = await PostgresStore.open(settings.salesbot_db)
    else:
        writer: WriterKind = settings.salesbot_sqlite_writer if serving else "thread"
        store = await _open_sqlite(Path(settings.salesbot_db), writer)
    try:
        yield store
    finally:
        await store.close()


async def _open_sqlite(path: Path, writer: WriterKind) -> SqliteStore:
    try:
        return await SqliteStore.open(path, writer=writer)
    except StorageError as exc:
        if type(exc) is not StorageError:  # corrupt, too new: their messages say it all
            raise
        problem = location_problem(path)
        if problem is None:
            raise
        raise StorageError(f"cannot open the database {path} (SALESBOT_DB): {problem}") from None


def location_problem(path: Path) -> str | None:
    """Why SQLite could not open `path`, in an operator's words, when the file system says
    so (SQLite itself only says "unable to open database file"). Asked after a failure,
    never instead of trying: permissions, ACLs and read-only mounts are SQLite's to judge."""
    directory = path.absolute().parent
    user = f"uid {os.getuid()}" if hasattr(os, "getuid") else "this user"
    if not directory.exists():
        return f"its directory {directory} does not exist"
    if not directory.is_dir():
        return f"{directory} is not a directory"
    if not os.access(directory, os.W_OK | os.X_OK):
        return (
            f"this user ({user}) cannot write in its directory {directory}, where SQLite "
            f"keeps {path.name}-wal and {path.name}-shm beside it"
        )
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        return f"this user ({user}) cannot read and write the file"
    return None
