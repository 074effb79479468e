"""`salesbot migrate --to postgresql://…` (issue 17, item 6), against the session's real
throwaway PostgreSQL: a store from every earlier release arrives whole (it replays with 0
differences and a `PostgresStore` reads back the same conversations), sealed values arrive
as the bytes stored and still open, a target that holds anything is refused and left as it
was, a failure mid-copy leaves the target empty, and bad input is one line, exit 2."""

from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from bot.boot_slot import BootSlot
from bot.cli import main
from domain.chain import link
from domain.policy import Policy
from storage.errors import StorageError
from storage.pg_import import TABLE_ORDER, copy_store, snapshot, source_counts
from storage.postgres import PostgresStore
from storage.sqlite import SqliteStore
from tests.bot.seeded_store import LEAD, seeded_store_file
from tests.storage.builders import handoff_script
from tests.storage.conftest import fresh_database
from tests.support.cli import run
from tests.support.postgres import Cluster

STORES = sorted((Path(__file__).parents[1] / "fixtures" / "stores").glob("release-*.db"))


@pytest.fixture
async def target(postgres_cluster: Cluster) -> AsyncIterator[str]:
    """The DSN of an empty database (a fresh schema of the session's cluster)."""
    async with fresh_database(postgres_cluster) as dsn:
        yield dsn


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.setenv("SALESBOT_POLICY", "default")
    return monkeypatch


async def pg_rows(dsn: str, sql: str) -> list[tuple[Any, ...]]:
    conn = await asyncpg.connect(dsn)
    try:
        return [tuple(row) for row in await conn.fetch(sql)]
    finally:
        await conn.close()


async def pg_tables(dsn: str) -> list[str]:
    return [
        row[0]
        for row in await pg_rows(
            dsn,
            "SELECT tablename FROM pg_catalog.pg_tables WHERE schemaname = current_schema() "
            "ORDER BY tablename",
        )
    ]


def sqlite_rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(sql).fetchall()


async def migrate(source: Path, dsn: str, *more: str) -> tuple[int, str, str]:
    # The command runs its own event loop: off this test's loop, as from a shell.
    return await asyncio.to_thread(run, "migrate", "--to", dsn, "--from", str(source), *more)


@pytest.mark.parametrize("fixture", STORES, ids=[path.stem for path in STORES])
async def test_a_store_from_an_earlier_release_moves_to_postgresql_replays_with_no_differences_and_serves(
    fixture: Path, target: str, tmp_path: Path, env: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "salesbot.db"
    shutil.copy(fixture, source)
    code, out, err = await migrate(source, target)
    assert (code, err) == (0, "")
    assert "verified: every table's row count matches" in out
    assert "every chain holds, every decision replays; /metrics reads the same" in out
    # Only read: the operator's file is as it was (not even migrated to this schema).
    assert source.read_bytes() == fixture.read_bytes()

    # Replay from PostgreSQL: 0 differences under the recorded policies.
    env.setenv("SALESBOT_DB", target)
    code, out, err = await asyncio.to_thread(run, "replay", "--json", "--fail-on-diff")
    replayed = json.loads(out)
    assert (code, replayed["differences"]) == (0, 0), replayed["diffs"]
    assert replayed["inbounds"] >= 40

    # Serving from it: the PostgreSQL store reads back every conversation as SQLite does.
    async with (
        await SqliteStore.open(source) as sqlite_store,
        await PostgresStore.open(target) as pg_store,
    ):
        ids = await sqlite_store.conversation_ids()
        assert await pg_store.conversation_ids() == ids
        for conversation_id in ids:
            assert await pg_store.load(conversation_id) == await sqlite_store.load(conversation_id)
            assert await pg_store.inbounds(conversation_id) == await sqlite_store.inbounds(
                conversation_id
            )
            assert await pg_store.version(conversation_id) == await sqlite_store.version(
                conversation_id
            )
        assert await pg_store.open_tickets() == await sqlite_store.open_tickets()
        assert await pg_store.dead_letters() == await sqlite_store.dead_letters()
        assert await pg_store.pending_count() == await sqlite_store.pending_count()
        assert await pg_store.metrics_projection() == await sqlite_store.metrics_projection()
        assert (await pg_store.rebuild_projections()).changed == 0


def test_every_table_of_the_sqlite_schema_is_one_migrate_copies(tmp_path: Path) -> None:
    async def create() -> None:
        await (await SqliteStore.open(tmp_path / "new.db")).close()

    asyncio.run(create())
    tables = {
        name
        for (name,) in sqlite_rows(
            tmp_path / "new.db", "SELECT name FROM sqlite_master WHERE type = 'table'"
        )
        if not name.startswith("sqlite_")
    }
    assert tables == set(TABLE_ORDER)


async def test_sealed_values_arrive_as_the_bytes_stored_and_still_open(
    target: str, tmp_path: Path, env: pytest.MonkeyPatch
) -> None:
    source, _quote = await asyncio.to_thread(seeded_store_file, tmp_path, env)
    code, _out, err = await migrate(source, target)
    assert (code, err) == (0, "")

    sealed = "SELECT conversation_id, seq, envelope, chain_hash FROM events ORDER BY position"
    stored = sqlite_rows(source, sealed)
    assert any('"sealed":' in row[2] for row in stored)
    assert await pg_rows(target, sealed) == stored
    keys = "SELECT conversation_id, key_id, key FROM conversation_keys ORDER BY 1, 2"
    assert [(c, k, bytes(key)) for c, k, key in await pg_rows(target, keys)] == sqlite_rows(
        source, keys
    )
    inbounds = "SELECT delivery_id, inbound FROM inbounds ORDER BY id"
    assert await pg_rows(target, inbounds) == sqlite_rows(source, inbounds)
    assert "Pat Lee" not in " ".join(row[2] for row in await pg_rows(target, sealed))

    # The team reads the prospect's words from PostgreSQL as it did from SQLite.
    env.setenv("SALESBOT_DB", target)
    code, out, _ = await asyncio.to_thread(run, "audit", LEAD)
    assert code == 0
    assert "Pat Lee" in out
    assert "I am the CTO" in out


async def test_the_next_event_written_to_postgresql_comes_after_the_copied_ones(
    target: str, tmp_path: Path, env: pytest.MonkeyPatch, default_policy: Policy
) -> None:
    source = tmp_path / "salesbot.db"
    shutil.copy(STORES[-1], source)
    assert (await migrate(source, target))[0] == 0
    first = handoff_script(default_policy, "after-migrate").commits[0]
    async with await PostgresStore.open(target) as store:
        await store.append("after-migrate", 0, first.events)
        last = [envelope async for envelope in store.iterate_all()][-1]
        assert last.conversation_id == "after-migrate"
        assert (await store.conversation_ids())[-1] == "after-migrate"


async def test_a_target_that_holds_a_salesbot_store_is_refused_in_one_line_and_left_as_it_was(
    target: str, tmp_path: Path, env: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "salesbot.db"
    shutil.copy(STORES[0], source)
    assert (await migrate(source, target))[0] == 0
    before = await pg_rows(target, "SELECT COUNT(*) FROM events")

    code, out, err = await migrate(source, target)
    assert (code, out) == (2, "")
    assert err.count("\n") == 1
    assert "is not empty: a salesbot store with" in err
    assert "migrate into an empty database or schema" in err
    assert await pg_rows(target, "SELECT COUNT(*) FROM events") == before


async def test_a_target_that_holds_another_applications_tables_is_refused_and_left_as_it_was(
    target: str, tmp_path: Path, env: pytest.MonkeyPatch
) -> None:
    conn = await asyncpg.connect(target)
    try:
        await conn.execute("CREATE TABLE invoices (id int)")
    finally:
        await conn.close()
    source = tmp_path / "salesbot.db"
    shutil.copy(STORES[0], source)
    code, _out, err = await migrate(source, target)
    assert code == 2
    assert err.startswith("salesbot: error: ")
    assert "is not empty: it holds 1 tables that are not salesbot's (invoices)" in err
    assert await pg_tables(target) == ["invoices"]


async def test_a_failure_mid_copy_leaves_the_target_empty(target: str, tmp_path: Path) -> None:
    source = tmp_path / "salesbot.db"
    shutil.copy(STORES[-1], source)
    copy = await snapshot(source, tmp_path)
    written: list[int] = []

    def interrupt_after_three_pages(rows: int) -> None:
        written.append(rows)
        if len(written) == 3:
            raise StorageError("the connection went away")

    with pytest.raises(StorageError, match="went away"):
        await copy_store(copy, target, interrupt_after_three_pages, page=25)
    assert len(written) == 3  # pages of the log had been written when it failed…
    assert await pg_tables(target) == []  # …and none of it, not even the schema, remains


async def test_a_row_postgresql_refuses_fails_the_whole_migrate_in_one_line_and_writes_nothing(
    target: str, tmp_path: Path, env: pytest.MonkeyPatch
) -> None:
    # SQLite keeps a NUL character in text; PostgreSQL's text cannot hold one. The adapter
    # state is copied after the log, so the events were already sent when this row fails.
    source = tmp_path / "salesbot.db"
    shutil.copy(STORES[-1], source)
    with sqlite3.connect(source) as conn:
        conn.execute(
            "INSERT INTO adapter_state (key, value, updated_at_ms, schema_version, generator) "
            "VALUES ('k', ?, 0, 1, 'test')",
            ('{"a": "\x00"}',),
        )
    code, out, err = await migrate(source, target)
    assert (code, out) == (2, "")
    assert err.count("\n") == 1
    assert "refused a row of adapter_state" in err
    assert "Nothing was written." in err
    assert "Traceback" not in err
    assert await pg_tables(target) == []
    assert source_counts(source)["adapter_state"] == 1  # the source untouched


@pytest.mark.parametrize(
    ("to", "source_name", "message"),
    [
        ("salesbot.db", "salesbot.db", "--to needs a PostgreSQL URL"),
        (
            "postgresql://salesbot@127.0.0.1:1/salesbot",
            "salesbot.db",
            "Cannot reach the PostgreSQL server of postgresql://salesbot@127.0.0.1:1/salesbot",
        ),
        (
            "postgresql://salesbot:hunter2@127.0.0.1:99999/x",
            "salesbot.db",
            "postgresql://salesbot:***@127.0.0.1:99999/x is not a usable PostgreSQL address",
        ),
        ("TARGET", "missing.db", "there is no database file there"),
        ("TARGET", "not-a-store.db", "it is not a SQLite database file"),
    ],
)
async def test_bad_input_is_one_line_on_stderr_and_exit_2(
    to: str, source_name: str, message: str, target: str, tmp_path: Path, env: pytest.MonkeyPatch
) -> None:
    shutil.copy(STORES[0], tmp_path / "salesbot.db")
    (tmp_path / "not-a-store.db").write_text("hello")
    code, out, err = await migrate(tmp_path / source_name, target if to == "TARGET" else to)
    assert (code, out) == (2, "")
    assert err.count("\n") == 1
    assert message in err
    assert "hunter2" not in err
    assert await pg_tables(target) == []


async def test_the_source_defaults_to_salesbot_db_and_a_url_there_is_refused(
    target: str, tmp_path: Path, env: pytest.MonkeyPatch
) -> None:
    env.setenv("SALESBOT_DB", target)
    code, _out, err = await asyncio.to_thread(run, "migrate", "--to", target)
    assert code == 2
    assert "SALESBOT_DB names a PostgreSQL database; migrate copies a SQLite store" in err

    source = tmp_path / "salesbot.db"
    shutil.copy(STORES[0], source)
    env.setenv("SALESBOT_DB", str(source))
    code, out, _err = await asyncio.to_thread(run, "migrate", "--to", target, "--json")
    report = json.loads(out)
    assert (code, report["verified"], report["differences"]) == (0, True, [])
    assert report["source"] == str(source)
    assert report["tables"]["events"] == report["events"] > 0


async def test_a_store_a_running_bot_holds_is_refused(
    target: str, tmp_path: Path, env: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "salesbot.db"
    shutil.copy(STORES[0], source)
    slot = BootSlot.acquire(source)  # what `salesbot serve` holds while it runs
    assert slot is not None
    try:
        code, _out, err = await migrate(source, target)
    finally:
        slot.release()
    assert code == 2
    assert "is in use (a running salesbot holds it): stop it, then migrate" in err
    assert await pg_tables(target) == []
    assert os.path.exists(source)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


async def test_a_progress_bar_is_drawn_on_a_terminal_only(
    target: str, tmp_path: Path, env: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "salesbot.db"
    shutil.copy(STORES[0], source)
    out, err = io.StringIO(), Terminal()
    argv = ["migrate", "--to", target, "--from", str(source)]
    code = await asyncio.to_thread(main, argv, out, err)
    assert code == 0
    assert "copying" in err.getvalue()
    assert "rows" in err.getvalue()
    # stdout keeps its three summary lines only (elsewhere, off a terminal, stderr is empty)
    assert [line.split()[0] for line in out.getvalue().splitlines()] == [
        "migrated",
        "verified:",
        "serve",
    ]


async def test_a_copy_that_differs_from_its_source_is_reported_line_by_line(
    target: str, tmp_path: Path, env: pytest.MonkeyPatch
) -> None:
    from bot.migrate_copy import verify_copy

    source = tmp_path / "salesbot.db"
    shutil.copy(STORES[-1], source)
    copy = await snapshot(source, tmp_path)
    await copy_store(copy, target)
    assert (await verify_copy(copy, target, io.StringIO())).differences == []

    # What the verification is for: a row lost on the way, and a log rewritten together
    # with its links (its chain holds, but it is not the source's).
    conn = await asyncpg.connect(target)
    try:
        await conn.execute("DELETE FROM outbox WHERE id = (SELECT MAX(id) FROM outbox)")
        last = await conn.fetchrow(
            "SELECT conversation_id, seq, envelope FROM events ORDER BY position DESC LIMIT 1"
        )
        assert last is not None
        cid, seq, text = last
        previous = await conn.fetchval(
            "SELECT chain_hash FROM events WHERE conversation_id = $1 AND seq = $2", cid, seq - 1
        )
        rewritten = text + " "
        await conn.execute(
            "UPDATE events SET envelope = $3, chain_hash = $4 "
            "WHERE conversation_id = $1 AND seq = $2",
            cid,
            seq,
            rewritten,
            link(previous, rewritten),
        )
        found = await verify_copy(copy, target, io.StringIO())
        assert found.differences[0].startswith("outbox: ")
        assert "in PostgreSQL" in found.differences[0]
        assert found.differences[1].startswith("1 conversations' chain heads differ")
        assert found.target_report.problems == 0
        assert found.source_report is None  # the source is verified only when needed

        # An event changed without its link: verify finds it, the source does not.
        await conn.execute(
            "UPDATE events SET envelope = envelope || ' ' WHERE position = "
            "(SELECT MIN(position) FROM events)"
        )
    finally:
        await conn.close()
    found = await verify_copy(copy, target, io.StringIO())
    assert any(line.startswith("verify reads differently") for line in found.differences)
    assert found.source_report is not None
    assert found.source_report.problems == 0
    assert found.target_report.problems == 1
