"""What only the SQLite store has to show about projections: they are written in the
events' own transaction, carry their versions, survive reopening, are created and filled
by the migration from an older store, and a rebuild next to commits loses none of them."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from bot.policy_loader import load_policy
from bot.queries import load_audit, load_metrics
from domain import GENERATOR
from domain.policy import Policy
from storage import sqlite_projections
from storage.errors import StorageError
from storage.ports import PENDING_ANSWER_SCHEMA_VERSION
from storage.projections import PROJECTION_SCHEMA_VERSION
from storage.sqlite import SqliteStore
from tests.storage.builders import handoff_script
from tests.storage.scripted import SalesDay, recomputed
from tests.storage.test_projections import assert_same_metrics

PROJECTION_TABLES = ("projection_streams", "quote_index")
COUNTER_TABLES = ("projection_counters", "projection_times")
"""Created by the counters migration (`MIGRATIONS[10]`), kept by every commit since."""
FIXTURE = Path(__file__).parents[1] / "fixtures" / "stores" / "release-4e9bee1.db"


def rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(sql).fetchall()


async def sales_day(path: Path, policy: Policy, conversations: int = 12) -> SalesDay:
    store = await SqliteStore.open(path)
    day = SalesDay(store, policy)
    await day.start()
    await day.run(conversations)
    return day


async def test_every_projection_row_carries_its_schema_version_and_generator(
    tmp_path: Path, default_policy: Policy
) -> None:
    path = tmp_path / "salesbot.db"
    day = await sales_day(path, default_policy)
    await day.store.close()
    for table in (*PROJECTION_TABLES, *COUNTER_TABLES):
        versions = rows(path, f"SELECT DISTINCT schema_version, generator FROM {table}")
        assert versions == [(PROJECTION_SCHEMA_VERSION, GENERATOR)], table
        assert rows(path, f"SELECT COUNT(*) FROM {table}")[0][0] != 0, table
    assert PENDING_ANSWER_SCHEMA_VERSION == 1


async def test_a_pending_answer_row_carries_its_schema_version_and_generator(
    tmp_path: Path, default_policy: Policy
) -> None:
    path = tmp_path / "salesbot.db"
    store = await SqliteStore.open(path)
    day = SalesDay(store, default_policy)
    await day.start()
    await day.command("dm-1", "metrics")  # its answer is not run before the store closes
    await store.close()
    assert rows(path, "SELECT schema_version, generator FROM pending_answers") == [
        (PENDING_ANSWER_SCHEMA_VERSION, GENERATOR)
    ]


async def test_the_projections_are_undone_with_a_commit_that_fails_after_writing_them(
    tmp_path: Path, default_policy: Policy, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = handoff_script(default_policy, "conv-1")
    real = sqlite_projections.apply_steps

    def apply_then_fail(conn: sqlite3.Connection, *args: object) -> None:
        real(conn, *args)  # type: ignore[arg-type]
        raise RuntimeError("the disk went away")

    async with await SqliteStore.open(tmp_path / "salesbot.db") as store:
        await store.commit(script.commits[0])
        before = await store.metrics_projection()
        monkeypatch.setattr("storage.sqlite.apply_steps", apply_then_fail)
        with pytest.raises(RuntimeError):
            await store.commit(script.commits[1])
        monkeypatch.setattr("storage.sqlite.apply_steps", real)
        assert await store.metrics_projection() == before
        assert await store.version("conv-1") == script.commits[1].expected_version
        await store.commit(script.commits[1])
        assert_same_metrics(
            await load_metrics(store, default_policy), await recomputed(store, default_policy)
        )


async def test_the_projections_are_there_after_reopening_the_file(
    tmp_path: Path, default_policy: Policy
) -> None:
    path = tmp_path / "salesbot.db"
    day = await sales_day(path, default_policy)
    expected = await recomputed(day.store, default_policy)
    await day.store.close()
    async with await SqliteStore.open(path) as store:
        assert_same_metrics(await load_metrics(store, default_policy), expected)


BEFORE_PROJECTIONS = 3
"""The schema version of a store from before the projections (`MIGRATIONS[3]` creates them)."""
BEFORE_QUOTE_COUNTS = 4
"""The schema version of a store from before the quote counts (`MIGRATIONS[4]`)."""
QUOTE_COUNTS = ("quotes_issued", "quotes_revised", "quotes_superseded")


def _drop_later_migrations(conn: sqlite3.Connection) -> None:
    """Undo what migrations after the quote counts added (ticket and inbound versions, the
    events' hash chain, the due timers, the counters)."""
    for table in COUNTER_TABLES:
        conn.execute(f"DROP TABLE {table}")
    conn.execute("DROP INDEX IF EXISTS projection_streams_by_schema")
    for column in ("schema_version", "generator"):
        conn.execute(f"ALTER TABLE tickets DROP COLUMN {column}")
    conn.execute("ALTER TABLE inbounds DROP COLUMN generator")
    conn.execute("ALTER TABLE events DROP COLUMN chain_hash")
    conn.execute("DROP TABLE timers")
    conn.execute("DROP TABLE conversation_keys")
    conn.execute("DROP INDEX streams_by_activity")


def downgrade_to_before_projections(path: Path) -> None:
    """What a store written before this migration looks like: no projection tables."""
    with sqlite3.connect(path, isolation_level=None) as conn:
        for table in (*PROJECTION_TABLES, "pending_answers"):
            conn.execute(f"DROP TABLE {table}")
        _drop_later_migrations(conn)
        conn.execute(f"PRAGMA user_version = {BEFORE_PROJECTIONS}")


def downgrade_to_before_quote_counts(path: Path) -> None:
    """What a store of the release before the quote counts looks like: projection rows of
    schema version 1, without the three columns."""
    with sqlite3.connect(path, isolation_level=None) as conn:
        for column in QUOTE_COUNTS:
            conn.execute(f"ALTER TABLE projection_streams DROP COLUMN {column}")
        for table in PROJECTION_TABLES:
            conn.execute(f"UPDATE {table} SET schema_version = 1")
        _drop_later_migrations(conn)
        conn.execute(f"PRAGMA user_version = {BEFORE_QUOTE_COUNTS}")


async def test_the_migration_creates_the_projections_and_fills_them_from_the_events(
    tmp_path: Path, default_policy: Policy
) -> None:
    path = tmp_path / "salesbot.db"
    day = await sales_day(path, default_policy)
    expected = await recomputed(day.store, default_policy)
    quote = day.quotes[0]
    await day.store.close()
    downgrade_to_before_projections(path)
    async with await SqliteStore.open(path) as store:
        assert_same_metrics(await load_metrics(store, default_policy), expected)
        assert (await load_audit(store, quote)).kind == "quote"
        assert (await store.rebuild_projections()).changed == 0


async def test_the_quote_counts_migration_fills_them_from_the_events(
    tmp_path: Path, default_policy: Policy
) -> None:
    path = tmp_path / "salesbot.db"
    day = await sales_day(path, default_policy)
    expected = await recomputed(day.store, default_policy)
    assert expected.quotes.superseded > 0
    assert expected.quotes.revised > 0
    await day.store.close()
    downgrade_to_before_quote_counts(path)
    async with await SqliteStore.open(path) as store:
        assert_same_metrics(await load_metrics(store, default_policy), expected)
        assert (await store.rebuild_projections()).changed == 0
    for table in PROJECTION_TABLES:
        versions = rows(path, f"SELECT DISTINCT schema_version FROM {table}")
        assert versions == [(PROJECTION_SCHEMA_VERSION,)], table


@pytest.mark.parametrize("policy_name", ["default", "seed"])
async def test_the_previous_releases_store_answers_metrics_at_once_after_the_migration(
    tmp_path: Path, policy_name: str
) -> None:
    policy = load_policy(policy_name)
    path = tmp_path / "store.db"
    shutil.copy(FIXTURE, path)
    assert rows(path, "PRAGMA user_version") == [(2,)]
    async with await SqliteStore.open(path) as store:
        full = await recomputed(store, policy)
        assert full.conversations == 9
        assert_same_metrics(await load_metrics(store, policy), full)
        summary = await store.rebuild_projections()
        assert (summary.events, summary.quotes, summary.changed) == (141, 8, 0)
        assert_same_metrics(await load_metrics(store, policy), full)
        report = await load_audit(store, "Q-dbb7430514")
        assert (report.kind, report.conversation_id) == ("quote", "prev-rep")


async def test_a_rebuild_folds_in_what_was_committed_after_its_snapshot(
    tmp_path: Path, default_policy: Policy, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "salesbot.db"
    day = await sales_day(path, default_policy, conversations=18)
    store = day.store
    more = SalesDay(store, default_policy)
    more._deliveries = 10_000  # delivery ids of their own
    loop = asyncio.get_running_loop()
    real = sqlite_projections.fold_snapshot

    async def later_conversations() -> None:
        for i in range(6):
            await more.lead(f"late-{i}")
            await more.say(f"late-{i}", "I am the CTO")

    def snapshot_then_commits(*args: Any) -> Any:
        folded = real(*args)
        # Commits a running bot makes while the rebuild is folding (on its thread).
        asyncio.run_coroutine_threadsafe(later_conversations(), loop).result()
        return folded

    monkeypatch.setattr("storage.sqlite.fold_snapshot", snapshot_then_commits)
    summary = await store.rebuild_projections()
    assert summary.changed == 0
    assert await store.version("late-5") > 0
    assert summary.events == len([env async for env in store.iterate_all()])
    assert_same_metrics(
        await load_metrics(store, default_policy), await recomputed(store, default_policy)
    )
    await store.close()


async def test_projections_of_another_schema_version_are_refused_until_rebuilt(
    tmp_path: Path, default_policy: Policy
) -> None:
    path = tmp_path / "salesbot.db"
    day = await sales_day(path, default_policy, conversations=6)
    expected = await recomputed(day.store, default_policy)
    await day.store.close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE projection_streams SET schema_version = 99, prospect_messages = 0")
    async with await SqliteStore.open(path) as store:
        with pytest.raises(StorageError, match="salesbot projections rebuild"):
            await store.metrics_projection()
        summary = await store.rebuild_projections()
        assert summary.changed > 0
        assert_same_metrics(await load_metrics(store, default_policy), expected)


BEFORE_COUNTERS = 10
"""The schema version of a store from before the counters (`MIGRATIONS[10]` adds them)."""


def counter_rows(path: Path) -> list[tuple[object, ...]]:
    return [
        *rows(path, "SELECT kind, name, shard, value FROM projection_counters WHERE value != 0"),
        *rows(path, "SELECT 'time', level, bucket, n FROM projection_times WHERE n != 0"),
    ]


async def test_the_counters_migration_fills_them_from_the_stored_rows(
    tmp_path: Path, default_policy: Policy
) -> None:
    path = tmp_path / "salesbot.db"
    day = await sales_day(path, default_policy, conversations=14)
    expected = await recomputed(day.store, default_policy)
    await day.store.close()
    kept = sorted(counter_rows(path), key=str)
    with sqlite3.connect(path, isolation_level=None) as conn:
        for table in COUNTER_TABLES:
            conn.execute(f"DROP TABLE {table}")
        conn.execute("DROP INDEX projection_streams_by_schema")
        for table in PROJECTION_TABLES:
            conn.execute(f"UPDATE {table} SET schema_version = 3")
        conn.execute(f"PRAGMA user_version = {BEFORE_COUNTERS}")
    async with await SqliteStore.open(path) as store:
        assert_same_metrics(await load_metrics(store, default_policy), expected)
    assert sorted(counter_rows(path), key=str) == kept  # what the commits had kept
    for table in (*PROJECTION_TABLES, *COUNTER_TABLES):
        assert rows(path, f"SELECT DISTINCT schema_version FROM {table}") == [
            (PROJECTION_SCHEMA_VERSION,)
        ], table


async def test_the_counters_kept_by_commits_are_row_for_row_those_a_rebuild_writes(
    tmp_path: Path, default_policy: Policy
) -> None:
    path = tmp_path / "salesbot.db"
    day = await sales_day(path, default_policy, conversations=14)
    kept = sorted(counter_rows(path), key=str)
    assert (await day.store.rebuild_projections()).changed == 0
    await day.store.close()
    assert sorted(counter_rows(path), key=str) == kept
    assert len({row[2] for row in kept if row[0] != "time"}) > 1  # counters over shards


async def test_counters_of_another_schema_version_are_refused_until_rebuilt(
    tmp_path: Path, default_policy: Policy
) -> None:
    path = tmp_path / "salesbot.db"
    day = await sales_day(path, default_policy, conversations=6)
    expected = await recomputed(day.store, default_policy)
    await day.store.close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE projection_counters SET schema_version = 3, value = value + 5")
    async with await SqliteStore.open(path) as store:
        with pytest.raises(StorageError, match="salesbot projections rebuild"):
            await store.metrics_projection()
        await store.rebuild_projections()
        assert_same_metrics(await load_metrics(store, default_policy), expected)


async def test_counted_times_that_do_not_add_up_are_refused_until_rebuilt(
    tmp_path: Path, default_policy: Policy
) -> None:
    path = tmp_path / "salesbot.db"
    day = await sales_day(path, default_policy, conversations=6)
    expected = await recomputed(day.store, default_policy)
    assert expected.time_to_qualify.n > 0
    await day.store.close()
    with sqlite3.connect(path) as conn:  # the top level says more than its children hold
        conn.execute("UPDATE projection_times SET n = n + 5 WHERE level = 8")
    async with await SqliteStore.open(path) as store:
        with pytest.raises(StorageError, match="salesbot projections rebuild"):
            await store.metrics_projection()
        assert (await store.rebuild_projections()).changed == 1
        assert_same_metrics(await load_metrics(store, default_policy), expected)
