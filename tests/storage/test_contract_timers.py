"""The due-timer schedule (`storage.ports.Timers`): the sweeper reads only the conversations
whose timers are due, earliest first, and an older computation never overwrites a newer one.
Runs once per store (memory, SQLite)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from domain.policy import Policy
from storage.ports import Store, TimerDue
from storage.sqlite import SqliteStore
from storage.sqlite_schema import migrate
from tests.storage.builders import handoff_script


async def test_only_due_conversations_are_listed_earliest_first(store: Store) -> None:
    assert await store.due_timers(1_000, 10) == []
    assert await store.schedule_timer("conv-b", 500, 1)
    assert await store.schedule_timer("conv-a", 500, 1)
    assert await store.schedule_timer("conv-c", 200, 1)
    assert await store.schedule_timer("conv-later", 5_000, 1)
    assert await store.schedule_timer("conv-never", None, 1)
    assert await store.due_timers(1_000, 10) == ["conv-c", "conv-a", "conv-b"]
    assert await store.due_timers(1_000, 2) == ["conv-c", "conv-a"]
    assert await store.due_timers(199, 10) == []
    assert await store.due_timers(10_000, 10) == ["conv-c", "conv-a", "conv-b", "conv-later"]


async def test_a_schedule_computed_at_an_older_version_never_overwrites_a_newer_one(
    store: Store,
) -> None:
    assert await store.schedule_timer("conv-1", 9_000, 5)
    assert not await store.schedule_timer("conv-1", 100, 4)  # a sweep that read version 4
    assert await store.due_timers(1_000, 10) == []
    assert await store.schedule_timer("conv-1", None, 5)  # the same version may clear it
    assert await store.due_timers(10_000, 10) == []


async def test_a_commit_schedules_the_conversation_at_the_version_it_reaches(
    store: Store, default_policy: Policy
) -> None:
    first, second = handoff_script(default_policy, "conv-1").commits
    await store.commit(first.model_copy(update={"timer": TimerDue(due_at_ms=700)}))
    assert await store.due_timers(700, 10) == ["conv-1"]
    version = len(first.events) + len(second.events)
    await store.commit(second)  # no timer: the schedule stays
    assert await store.due_timers(700, 10) == ["conv-1"]
    assert not await store.schedule_timer("conv-1", None, len(first.events) - 1)
    assert await store.schedule_timer("conv-1", None, version)
    assert await store.due_timers(10**15, 10) == []


async def test_a_store_from_before_the_schedule_has_every_conversation_due_at_once(
    tmp_path: Path, default_policy: Policy
) -> None:
    """Migration 8: conversations stored by an earlier release are all due, so the first
    sweep looks at each (as every sweep did before) and schedules it from its state."""
    path = tmp_path / "salesbot.db"
    async with await SqliteStore.open(path) as store:
        for cid in ("conv-b", "conv-a"):
            for commit in handoff_script(default_policy, cid).commits:
                await store.commit(commit)
    with sqlite3.connect(path, isolation_level=None) as conn:
        conn.execute("DROP TABLE timers")
        conn.execute("DROP TABLE conversation_keys")  # migration 9's, after the timers
        conn.execute("DROP INDEX streams_by_activity")
        conn.execute("PRAGMA user_version = 7")
    async with await SqliteStore.open(path) as store:
        assert await store.due_timers(0, 10) == ["conv-a", "conv-b"]
        assert await store.schedule_timer("conv-a", 10**14, await store.version("conv-a"))
        assert await store.due_timers(0, 10) == ["conv-b"]
    with sqlite3.connect(path) as conn:
        plan = " ".join(
            str(row[-1])
            for row in conn.execute(
                "EXPLAIN QUERY PLAN SELECT conversation_id FROM timers WHERE due_at_ms IS NOT "
                "NULL AND due_at_ms <= 5 ORDER BY due_at_ms, conversation_id LIMIT 10"
            )
        )
        assert "timers_due" in plan  # the sweeper's read uses the index, no scan or sort
        assert "TEMP B-TREE" not in plan


def test_an_empty_file_gains_the_timers_table_and_its_index(tmp_path: Path) -> None:
    path = tmp_path / "fresh.db"
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        migrate(conn, path)
        names = {row[0] for row in conn.execute("SELECT name FROM sqlite_schema")}
    finally:
        conn.close()
    assert {"timers", "timers_due"} <= names
