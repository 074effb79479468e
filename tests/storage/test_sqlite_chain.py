"""What only the SQLite store has to show about the hash chain: the migration links the
events a store already holds — from every earlier schema version and in the stores earlier
releases wrote — exactly as appending them now would, from their bytes as stored."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from domain.chain import first_break
from domain.policy import Policy
from storage.sqlite import SqliteStore
from storage.sqlite_schema import _V_EVENT_CHAIN, MIGRATIONS, SCHEMA_VERSION, fill_chain, migrate
from tests.storage.builders import NOW, decide_commit, handoff_script, message
from tests.storage.test_contract_chain import expected_links

FIXTURES = sorted((Path(__file__).parents[1] / "fixtures" / "stores").glob("release-*.db"))


def rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(sql).fetchall()


def store_at(path: Path, version: int) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn, path, target=version)
    return conn


BEFORE_CHAIN = MIGRATIONS.index(_V_EVENT_CHAIN)
"""The last schema version whose events carry no link (a release of it stored none)."""


@pytest.mark.parametrize("start", range(1, BEFORE_CHAIN + 1))
async def test_a_store_at_an_earlier_schema_version_gets_the_links_appending_would_give(
    tmp_path: Path, start: int, default_policy: Policy
) -> None:
    events = [
        env
        for cid in ("conv-b", "conv-a")  # streams started out of name order
        for commit in handoff_script(default_policy, cid).commits
        for env in commit.events
    ]
    # The events as a release of schema `start` stored them: the JSON text, no link.
    older = tmp_path / "older.db"
    conn = store_at(older, start)
    try:
        for env in events:
            conn.execute(
                "INSERT INTO streams (conversation_id, version, created_at_ms, updated_at_ms) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (conversation_id) DO UPDATE "
                "SET version = excluded.version",
                (env.conversation_id, env.seq, env.at_ms, env.at_ms),
            )
            conn.execute(
                "INSERT INTO events (conversation_id, seq, at_ms, policy_version, type, "
                "delivery_id, envelope) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    env.conversation_id,
                    env.seq,
                    env.at_ms,
                    env.policy_version,
                    env.event.type,
                    env.delivery_id,
                    env.model_dump_json(),
                ),
            )
    finally:
        conn.close()
    fresh = tmp_path / "fresh.db"
    async with await SqliteStore.open(fresh) as store:
        for cid in ("conv-b", "conv-a"):
            for commit in handoff_script(default_policy, cid).commits:
                await store.commit(commit)

    async with await SqliteStore.open(older) as migrated, await SqliteStore.open(fresh) as now:
        for cid in ("conv-a", "conv-b"):
            stored = await migrated.stored_events(cid)
            # Linked from the bytes as the older release stored them (in clear: sealing
            # came later), and read as what the current release stores reads as.
            assert [link.envelope for link in stored] == [
                env.model_dump_json() for env in events if env.conversation_id == cid
            ]
            assert await migrated.load(cid) == await now.load(cid)
            assert [link.chain_hash for link in stored] == expected_links(
                [link.envelope for link in stored]
            )
        # Appending after the upgrade continues the migrated chain.
        later = await decide_commit(
            migrated, default_policy, message("conv-a", "after-upgrade", "Any news?"), NOW + 60_000
        )
        assert later.events
        await migrated.commit(later)
        stored = await migrated.stored_events("conv-a")
        assert stored[-1].seq == later.events[-1].seq
        assert first_break("conv-a", stored, version=await migrated.version("conv-a")) is None
    assert rows(older, "PRAGMA user_version") == [(SCHEMA_VERSION,)]


@pytest.mark.parametrize("fixture", FIXTURES, ids=[path.stem for path in FIXTURES])
async def test_a_store_from_an_earlier_release_is_linked_from_its_stored_bytes(
    fixture: Path, tmp_path: Path
) -> None:
    path = tmp_path / "store.db"
    shutil.copy(fixture, path)
    before = rows(path, "SELECT conversation_id, seq, envelope FROM events ORDER BY position")
    async with await SqliteStore.open(path) as store:
        conversations = await store.conversation_ids()
        linked = 0
        for cid in conversations:
            stored = await store.stored_events(cid)
            assert [link.chain_hash for link in stored] == expected_links(
                [link.envelope for link in stored]
            )
            assert first_break(cid, stored, version=await store.version(cid)) is None
            linked += len(stored)
    assert linked == len(before) >= 100
    # Not one stored byte of an event changed.
    after = rows(path, "SELECT conversation_id, seq, envelope FROM events ORDER BY position")
    assert after == before


@pytest.mark.parametrize("page", [1, 3, 1000])
def test_the_chain_migration_gives_the_same_links_whatever_its_page_size(
    tmp_path: Path, page: int
) -> None:
    source = FIXTURES[0]
    path = tmp_path / "store.db"
    shutil.copy(source, path)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        migrate(conn, path)
        expected = conn.execute(
            "SELECT position, chain_hash FROM events ORDER BY position"
        ).fetchall()
        conn.execute("UPDATE events SET chain_hash = NULL")
        counts: list[int] = []
        assert fill_chain(conn, page=page, progress=counts.append) == len(expected)
        assert counts[-1] == len(expected)
        assert (
            conn.execute("SELECT position, chain_hash FROM events ORDER BY position").fetchall()
            == expected
        )
    finally:
        conn.close()


async def test_a_stream_whose_last_link_was_removed_by_hand_stays_unlinked(
    tmp_path: Path, default_policy: Policy
) -> None:
    # A new event cannot be linked to a link that is gone; linking it to anything else
    # would hide where the chain broke.
    path = tmp_path / "salesbot.db"
    first, second = handoff_script(default_policy, "conv-1").commits
    async with await SqliteStore.open(path) as store:
        await store.commit(first)
    with sqlite3.connect(path) as conn:
        conn.execute(
            "UPDATE events SET chain_hash = NULL WHERE conversation_id = 'conv-1' AND seq = ?",
            (len(first.events),),
        )
    async with await SqliteStore.open(path) as store:
        await store.commit(second)
        stored = await store.stored_events("conv-1")
    assert [link.chain_hash is None for link in stored][len(first.events) - 1 :] == [True] * (
        len(second.events) + 1
    )
    broken = first_break("conv-1", stored)
    assert broken is not None
    assert (broken.problem, broken.seq) == ("missing link", len(first.events))
