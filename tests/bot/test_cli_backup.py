"""`salesbot backup FILE` and `salesbot restore FILE` (issue 17, item 6): a copy taken while
the store is being written restores to a store that verifies clean and reads as before; a
restore never lands on a running bot's store, never overwrites conversations unasked, and
never takes a file that is not a sound salesbot database; every refusal is one line."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest

from bot.boot_slot import BootSlot
from domain.events import AuditRequested, EventEnvelope
from storage.sqlite import SqliteStore
from storage.sqlite_backup import backup
from storage.sqlite_schema import SCHEMA_VERSION
from tests.bot.seeded_store import LEAD, rows, seeded_store_file
from tests.support.cli import run


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return seeded_store_file(tmp_path, monkeypatch)[0]


def test_a_backup_restores_to_a_store_that_verifies_and_reads_as_before(
    db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = tmp_path / "backups" / "monday.db"
    copy.parent.mkdir()
    (conversations,) = rows(db, "SELECT COUNT(*) FROM streams")[0]
    (events,) = rows(db, "SELECT COUNT(*) FROM events")[0]
    code, out, err = run("backup", str(copy))
    assert (code, err) == (0, "")
    assert out.startswith(
        f"backed up {db} to {copy}: {conversations} conversations, {events} events"
    )
    # One self-contained file, nothing left beside it.
    assert sorted(p.name for p in copy.parent.iterdir()) == ["monday.db"]

    restored = tmp_path / "restored.db"
    code, out, err = run("restore", str(copy), "--db", str(restored))
    assert (code, err) == (0, "")
    assert out.splitlines()[-1] == f"check it with: salesbot verify --db {restored}"
    code, verified, _ = run("verify", "--db", str(restored))
    assert code == 0, verified
    assert f"{conversations} conversations, {events} events" in verified
    # The sealed words open with the restored keys: the audit reads as on the original.
    original = run("audit", LEAD, "--json")[1]
    monkeypatch.setenv("SALESBOT_DB", str(restored))
    assert run("audit", LEAD, "--json")[1] == original
    assert "I am the CTO" in original


def test_a_backup_taken_while_the_store_is_written_is_a_consistent_snapshot(
    db: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "live.db"

    async def write_while_backing_up() -> tuple[int, int]:
        store = await SqliteStore.open(db)
        try:
            written = 0

            async def writer() -> None:
                nonlocal written
                for _ in range(200):
                    version = await store.version("busy")
                    await store.append(
                        "busy",
                        version,
                        [
                            EventEnvelope(
                                conversation_id="busy",
                                seq=version + 1,
                                at_ms=1_790_000_000_000 + version,
                                policy_version="v",
                                delivery_id=f"d{version}",
                                event=AuditRequested(target="busy", by="R"),
                            )
                        ],
                    )
                    written += 1

            task = asyncio.create_task(writer())
            await asyncio.sleep(0)
            await asyncio.to_thread(backup, db, copy)
            await task
            return written, await store.version("busy")
        finally:
            await store.close()

    written, version = asyncio.run(write_while_backing_up())
    assert written == version == 200
    (copied,) = rows(copy, "SELECT COUNT(*) FROM events WHERE conversation_id = 'busy'")[0]
    # Whatever the copy caught of the busy stream is a gap-free prefix of it.
    seqs = [
        seq
        for (seq,) in rows(
            copy, "SELECT seq FROM events WHERE conversation_id = 'busy' ORDER BY seq"
        )
    ]
    assert seqs == list(range(1, copied + 1))
    restored = tmp_path / "restored.db"
    assert run("restore", str(copy), "--db", str(restored))[0] == 0
    code, verified, _ = run("verify", "--db", str(restored))
    assert code == 0, verified


def test_a_restore_does_not_overwrite_conversations_unless_asked(db: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy.db"
    assert run("backup", str(copy))[0] == 0
    before = db.read_bytes()
    code, out, err = run("restore", str(copy))
    assert (code, out) == (2, "")
    assert err == (
        f"salesbot: error: {db} holds 2 conversations: restore with --replace to overwrite "
        "them (back them up first)\n"
    )
    assert db.read_bytes() == before
    code, out, _ = run("restore", str(copy), "--replace")
    assert code == 0
    assert run("verify")[0] == 0


def test_a_restore_refuses_the_store_of_a_running_bot(db: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy.db"
    assert run("backup", str(copy))[0] == 0
    slot = BootSlot.acquire(db)  # what `salesbot serve` holds while it runs
    assert slot is not None
    with slot:
        code, _, err = run("restore", str(copy), "--replace")
    assert code == 2
    assert err == (
        f"salesbot: error: {db} is in use (a running salesbot holds it): stop it, then restore\n"
    )
    # Once it has stopped, the same restore goes through.
    assert run("restore", str(copy), "--replace")[0] == 0


def test_a_restore_takes_only_a_sound_salesbot_database(db: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE notes (text TEXT)")
    newer = tmp_path / "newer.db"
    assert run("backup", str(newer))[0] == 0
    with sqlite3.connect(newer) as conn:
        conn.execute("PRAGMA user_version = 999")
    text = tmp_path / "notes.txt"
    text.write_text("not a database", encoding="utf-8")
    target = tmp_path / "fresh.db"
    for source, reason in (
        (other, "it is not a salesbot database"),
        (newer, "999"),
        (text, "it is not a SQLite database file"),
        (tmp_path / "missing.db", "there is no backup file at"),
    ):
        code, out, err = run("restore", str(source), "--db", str(target))
        assert (code, out) == (2, "")
        assert err.startswith("salesbot: error: ")
        assert reason in err
        assert len(err.splitlines()) == 1
        assert not target.exists()


def test_a_backup_that_cannot_be_written_leaves_nothing(db: Path, tmp_path: Path) -> None:
    code, out, err = run("backup", str(tmp_path / "no" / "such" / "dir.db"))
    assert (code, out) == (2, "")
    assert err == (
        f"salesbot: error: cannot write {tmp_path / 'no' / 'such' / 'dir.db'}: "
        f"{tmp_path / 'no' / 'such'} is not a directory\n"
    )
    code, _, err = run("backup", str(tmp_path / "x.db"), "--db", str(tmp_path / "none.db"))
    assert code == 2
    assert err == f"salesbot: error: there is no database file at {tmp_path / 'none.db'}\n"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_json_says_what_the_copy_holds(db: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy.db"
    code, out, _ = run("backup", str(copy), "--json")
    assert code == 0
    data = json.loads(out)
    assert data["path"] == str(copy)
    assert data["conversations"] == 2
    assert data["events"] == rows(db, "SELECT COUNT(*) FROM events")[0][0]
    assert data["bytes"] == copy.stat().st_size
    assert data["schema_version"] == SCHEMA_VERSION


def test_backup_and_restore_say_in_one_line_that_postgresql_has_its_own_tools(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SALESBOT_DB", "postgresql://salesbot:secret@db.internal:5432/salesbot")
    for argv in (("backup", str(tmp_path / "b.db")), ("restore", str(tmp_path / "b.db"))):
        code, out, err = run(*argv)
        assert (code, out) == (2, "")
        assert err == (
            "salesbot: error: backup and restore copy the SQLite store; back PostgreSQL up "
            "with its own tools (pg_dump, or the server's base backups)\n"
        )
    assert BootSlot.acquire("postgresql://salesbot:secret@db.internal/salesbot") is None
    assert BootSlot.held("postgresql://salesbot:secret@db.internal/salesbot") == []
