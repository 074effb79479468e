"""Backing up and restoring the embedded store: one SQLite file copied with SQLite's online
backup API (issue 17, item 6).

A backup is taken while the bot runs: the backup API copies every page in one step, inside
one read transaction, so the copy is the store as of one commit — those landing meanwhile
are wholly after it — and WAL mode lets the writer go on. (Copying a few pages per step
would let writes in between, and each write by another connection restarts the copy: on a
busy store it might never finish.) The copy is written next to
its destination and renamed into place only after it checks clean (`PRAGMA quick_check`,
salesbot's `application_id`, a schema this release knows), so a failed backup never leaves
a half-written file under the name asked for.

A restore is the reverse, and refuses what would lose data: a file that is not a salesbot
database or fails its integrity check, a schema newer than this release, a destination that
is a live store (held open by a running bot: its write lock cannot be taken), or one that
holds conversations unless `replace` is set. The restored file keeps its schema version;
the next `open` migrates it as for any older store. Pure I/O on files: nothing here knows
events or conversations beyond counting them.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path

from storage.errors import CorruptDatabaseError, SchemaTooNewError, StorageError
from storage.sqlite_schema import APPLICATION_ID, SCHEMA_VERSION
from storage.sqlite_writer import BUSY_TIMEOUT_MS, SQLITE_HEADER


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What a backup or a restore copied."""

    path: Path
    schema_version: int
    conversations: int
    events: int
    bytes: int


def backup(source: Path, destination: Path) -> Snapshot:
    """Copy the live store at `source` to `destination` (replaced atomically); return what
    the copy holds. `StorageError` (one line) when either file cannot be used."""
    _check_database(source)
    _check_writable_dir(destination)
    temp = _temp_beside(destination)
    try:
        _copy(source, temp)
        snapshot = _inspect(temp)
        os.replace(temp, destination)
    except sqlite3.Error as exc:
        raise StorageError(f"cannot back up {source} to {destination}: {exc}") from None
    except OSError as exc:
        raise StorageError(
            f"cannot write the backup to {destination}: {exc.strerror or exc}"
        ) from None
    finally:
        temp.unlink(missing_ok=True)
    _fsync_dir(destination.parent)
    return Snapshot(
        path=destination,
        schema_version=snapshot.schema_version,
        conversations=snapshot.conversations,
        events=snapshot.events,
        bytes=destination.stat().st_size,
    )


def restore(backup_file: Path, destination: Path, *, replace: bool = False) -> Snapshot:
    """Make `backup_file` the store at `destination`; see the module for what is refused."""
    if not backup_file.is_file():
        raise StorageError(f"there is no backup file at {backup_file}")
    found = _inspect(backup_file)
    _check_writable_dir(destination)
    if destination.exists():
        _refuse_live_or_full(destination, replace=replace)
    temp = _temp_beside(destination)
    try:
        _copy(backup_file, temp)
        # The destination's old write-ahead log would be replayed into the new file.
        for suffix in ("-wal", "-shm"):
            Path(f"{destination}{suffix}").unlink(missing_ok=True)
        os.replace(temp, destination)
    except sqlite3.Error as exc:
        raise StorageError(f"cannot restore {backup_file} to {destination}: {exc}") from None
    except OSError as exc:
        raise StorageError(f"cannot write {destination}: {exc.strerror or exc}") from None
    finally:
        temp.unlink(missing_ok=True)
    _fsync_dir(destination.parent)
    return Snapshot(
        path=destination,
        schema_version=found.schema_version,
        conversations=found.conversations,
        events=found.events,
        bytes=destination.stat().st_size,
    )


def _copy(source: Path, target: Path) -> None:
    """The online backup of `source` into the new file `target`, left as one self-contained
    file (rollback journal, not WAL: no `-wal` beside it to lose; the store switches it
    back to WAL when it opens it)."""
    with (
        contextlib.closing(_connect(source, read_only=True)) as src,
        contextlib.closing(sqlite3.connect(target, isolation_level=None)) as dst,
    ):
        src.backup(dst)  # every page in one step: one snapshot
        dst.execute("PRAGMA journal_mode = DELETE")


def _connect(path: Path, *, read_only: bool) -> sqlite3.Connection:
    uri = f"{path.resolve().as_uri()}?mode={'ro' if read_only else 'rw'}"
    conn = sqlite3.connect(uri, uri=True, isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    return conn


def _check_database(path: Path) -> None:
    if not path.is_file():
        raise StorageError(f"there is no database file at {path}")
    with path.open("rb") as handle:
        if handle.read(len(SQLITE_HEADER)) != SQLITE_HEADER:
            raise CorruptDatabaseError(path, "it is not a SQLite database file")


def _inspect(path: Path) -> Snapshot:
    """Check that `path` is a sound salesbot database this release can open; count it."""
    _check_database(path)
    try:
        with contextlib.closing(_connect(path, read_only=True)) as conn:
            (application_id,) = conn.execute("PRAGMA application_id").fetchone()
            (version,) = conn.execute("PRAGMA user_version").fetchone()
            if application_id != APPLICATION_ID or version == 0:
                raise CorruptDatabaseError(path, "it is not a salesbot database")
            if version > SCHEMA_VERSION:
                raise SchemaTooNewError(path, version, SCHEMA_VERSION)
            problems = [row[0] for row in conn.execute("PRAGMA quick_check").fetchall()]
            if problems != ["ok"]:
                raise CorruptDatabaseError(path, f"its integrity check failed ({problems[0]})")
            (conversations,) = conn.execute("SELECT COUNT(*) FROM streams").fetchone()
            (events,) = conn.execute("SELECT COUNT(*) FROM events").fetchone()
    except sqlite3.Error as exc:
        raise CorruptDatabaseError(path, str(exc)) from None
    return Snapshot(
        path=path,
        schema_version=version,
        conversations=conversations,
        events=events,
        bytes=path.stat().st_size,
    )


def _refuse_live_or_full(destination: Path, *, replace: bool) -> None:
    """A running bot holds the store open and writes to it: restoring under it would be
    lost or corrupt it. Its write lock is taken (and released) to find out; a store with
    conversations is replaced only when asked."""
    try:
        with contextlib.closing(
            sqlite3.connect(destination, isolation_level=None, timeout=0)
        ) as conn:
            conn.execute("BEGIN EXCLUSIVE")
            conn.execute("ROLLBACK")
            try:
                (conversations,) = conn.execute("SELECT COUNT(*) FROM streams").fetchone()
            except sqlite3.Error:
                conversations = 0
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise StorageError(
                f"{destination} is in use (a running salesbot holds it): stop it, then restore"
            ) from None
        raise StorageError(f"cannot open {destination}: {exc}") from None
    except sqlite3.DatabaseError as exc:
        raise StorageError(f"cannot open {destination}: {exc}") from None
    if conversations and not replace:
        raise StorageError(
            f"{destination} holds {conversations} conversations: restore with --replace to "
            "overwrite them (back them up first)"
        )


def _check_writable_dir(destination: Path) -> None:
    parent = destination.parent
    if not parent.is_dir():
        raise StorageError(f"cannot write {destination}: {parent} is not a directory")
    if destination.is_dir():
        raise StorageError(f"{destination} is a directory, not a file")


def _temp_beside(destination: Path) -> Path:
    """A fresh temporary file in the destination's directory (so the rename is atomic)."""
    handle, name = tempfile.mkstemp(prefix=f".{destination.name}.", dir=destination.parent)
    os.close(handle)
    temp = Path(name)
    temp.unlink()  # sqlite3 creates it; an empty file would not read as a database
    return temp


def _fsync_dir(directory: Path) -> None:
    """Make the rename durable (the directory entry), where the platform allows it."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
