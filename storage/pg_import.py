"""Copying a SQLite store into an empty PostgreSQL database, in one transaction (issue 17,
item 6; `salesbot migrate`).

What is copied is a *snapshot*, never the live file: `snapshot` takes SQLite's online
backup of the source (`storage.sqlite_backup`) into a working directory and opens it once
with `SqliteStore`, which migrates the copy to this release's schema, so a store from any
earlier release is copied from the same tables, and the source file is left as it was.

Every table of the SQLite schema is copied row for row, in the order its references need
(`TABLE_ORDER`), each value as stored: event envelopes are the exact text their hash-chain
links were computed over, sealed values stay sealed (the ciphertext text and the
conversations' keys as their 32 bytes), projections, pending answers, timers, outbox items
with their leases, tickets, policies and adapter state included. Global orders are kept:
the log's `position`, the outbox's, inbounds' and streams' ids are SQLite's values, and
the ids PostgreSQL keeps where SQLite has only a rowid (tickets, lease owners) are that
rowid. The identity sequences are then moved past the copied ids, so the next row a
replica writes comes after them.

All of it is one transaction on one connection, under the schema migrations' advisory lock
(`storage.postgres_schema.MIGRATION_LOCK`), with every table locked against writers: the
schema is created in that transaction too, so a failure anywhere — a value PostgreSQL
refuses, the server going away, an interrupt — leaves the target exactly as it was. The
target must be empty: no tables at all, or salesbot's schema with no rows (a database
another salesbot already wrote to is refused, never merged into). Before it commits, the
row count of every table is checked against the snapshot's.

Rows go over PostgreSQL's COPY protocol (asyncpg's `copy_records_to_table`) in pages of
`PAGE` rows read from SQLite with one cursor, so memory stays flat on a large log.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from storage.errors import StorageError
from storage.postgres_pool import CONNECT_TIMEOUT_S, redacted, wrap
from storage.postgres_schema import MIGRATION_LOCK, migrate, schema_version

PAGE = 5000
"""Rows per COPY: large enough that the protocol's per-command cost vanishes, small enough
that a page of envelopes (a few KB each) stays a few MB."""

TABLE_ORDER: tuple[str, ...] = (
    "policies",
    "streams",
    "events",
    "deliveries",
    "inbounds",
    "outbox",
    "outbox_owners",
    "tickets",
    "adapter_state",
    "projection_streams",
    "quote_index",
    "projection_counters",
    "projection_times",
    "pending_answers",
    "timers",
    "conversation_keys",
)
"""Every table of the SQLite schema, parents before the rows that reference them (events
name their stream; inbounds and pending answers their delivery)."""

KEYED = {
    "projection_counters": "installation, kind, name, shard",
    "projection_times": "installation, level, bucket",
}
"""Tables stored `WITHOUT ROWID` (clustered on their key: the metrics read walks them in
key order), by their primary key; their order carries no meaning."""

ROWID_IDS = frozenset({"tickets", "outbox_owners"})
"""Tables whose PostgreSQL `id` (their creation order) is SQLite's implicit rowid."""

_INTERNAL = "sqlite_"  # sqlite_sequence and the like: SQLite's own bookkeeping

_PG_TABLES = """
SELECT c.table_name, c.column_name, c.is_identity = 'YES'
FROM information_schema.columns AS c
JOIN information_schema.tables AS t
  ON t.table_schema = c.table_schema AND t.table_name = c.table_name
WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'
ORDER BY c.table_name, c.ordinal_position
"""

_OTHER_TABLES = """
SELECT tablename FROM pg_catalog.pg_tables
WHERE schemaname = current_schema() AND tablename != 'schema_version' ORDER BY tablename
"""


class TargetNotEmptyError(StorageError):
    """The target database already holds data: migrate copies into an empty one only."""


@dataclass(frozen=True, slots=True)
class TablePlan:
    """One table's copy: the SQLite expressions read, the PostgreSQL columns written (in
    the same order), and how many rows the snapshot holds."""

    table: str
    select: tuple[str, ...]
    columns: tuple[str, ...]
    rows: int


@dataclass(frozen=True, slots=True)
class ImportSummary:
    """What was copied: rows per table (in copy order), checked equal on both sides."""

    tables: Mapping[str, int]

    @property
    def rows(self) -> int:
        return sum(self.tables.values())


Progress = Callable[[int], None]
"""Told the number of rows of each page as it is written."""


async def snapshot(source: Path, directory: Path) -> Path:
    """A consistent copy of the store at `source` in `directory`, migrated to this
    release's schema; the source is only read. One-line `StorageError`s for a missing file,
    a file that is not a salesbot store, or one from a newer salesbot."""
    from storage.sqlite import SqliteStore
    from storage.sqlite_backup import backup

    copy = directory / "snapshot.db"
    backup(source, copy)
    store = await SqliteStore.open(copy)
    await store.close()
    return copy


def plan(snapshot_path: Path, target_columns: Mapping[str, tuple[str, ...]]) -> list[TablePlan]:
    """Which SQLite columns go to which PostgreSQL columns, table by table.

    Every SQLite table must have a PostgreSQL table holding each of its columns (else
    `StorageError`: this release's PostgreSQL schema cannot hold the store, and nothing is
    copied); a PostgreSQL column SQLite lacks is left to its default, except the `id` of
    `ROWID_IDS`, which takes the rowid. Tables only PostgreSQL has stay empty."""
    with contextlib.closing(_read_only(snapshot_path)) as conn:
        names = [
            row[0]
            for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if not row[0].startswith(_INTERNAL)
        ]
        unknown = sorted(set(names) - set(TABLE_ORDER))
        if unknown:
            raise StorageError(
                f"this salesbot does not know how to copy the table {unknown[0]} of "
                f"{snapshot_path.name}; upgrade salesbot first"
            )
        plans = []
        for table in (name for name in TABLE_ORDER if name in names):
            columns = tuple(row[1] for row in conn.execute(f'PRAGMA table_info("{table}")'))
            target = target_columns.get(table, ())
            missing = [column for column in columns if column not in target]
            if missing:
                raise StorageError(
                    f"the PostgreSQL schema has no column {table}.{missing[0]} for the SQLite "
                    "store's; upgrade salesbot first"
                )
            select, written = list(columns), list(columns)
            if table in ROWID_IDS and "id" in target and "id" not in columns:
                select.insert(0, "rowid")
                written.insert(0, "id")
            (count,) = conn.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()
            plans.append(TablePlan(table, tuple(select), tuple(written), int(count)))
    return plans


def source_counts(snapshot_path: Path) -> dict[str, int]:
    """Rows per table of the snapshot (the tables `TABLE_ORDER` names that it has)."""
    with contextlib.closing(_read_only(snapshot_path)) as conn:
        present = {
            row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        return {
            table: int(conn.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0])
            for table in TABLE_ORDER
            if table in present
        }


def stored_heads(snapshot_path: Path) -> dict[str, tuple[int, str | None]]:
    """Each conversation's chain head as the snapshot stores it: its last event's seq and
    link. Equal heads recomputed from the copied bytes mean equal logs (`domain.chain`)."""
    with contextlib.closing(_read_only(snapshot_path)) as conn:
        rows = conn.execute(
            "SELECT e.conversation_id, e.seq, e.chain_hash FROM streams AS s "
            "JOIN events AS e ON e.conversation_id = s.conversation_id AND e.seq = s.version"
        ).fetchall()
    return {str(cid): (int(seq), chain) for cid, seq, chain in rows}


async def target_counts(dsn: str, tables: tuple[str, ...] = TABLE_ORDER) -> dict[str, int]:
    """Rows per table of the PostgreSQL database at `dsn`, read afresh (after the commit)."""
    conn = await connect(dsn)
    try:
        return {
            table: int(await conn.fetchval(f'SELECT COUNT(*) FROM "{table}"')) for table in tables
        }
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
        raise wrap(exc, _where(dsn)) from None
    finally:
        await conn.close()


async def connect(dsn: str) -> asyncpg.Connection[Any]:
    """One connection to `dsn`, or a one-line `StorageError` naming it (without its
    password) when the address is unusable or the server unreachable or refusing."""
    try:
        return await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT_S)
    except OverflowError as exc:  # a port out of range, found while connecting
        raise StorageError(
            f"{_where(dsn)} is not a usable PostgreSQL address: {str(exc).rstrip('.')}."
        ) from None
    except Exception as exc:
        raise wrap(exc, _where(dsn)) from None


async def copy_store(
    snapshot_path: Path, dsn: str, progress: Progress | None = None, *, page: int = PAGE
) -> ImportSummary:
    """Copy the snapshot into the empty database at `dsn` in one transaction (see the
    module); return the rows copied per table. Nothing is written unless all of it is."""
    where = _where(dsn)
    conn = await connect(dsn)
    try:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
            await _refuse_foreign_tables(conn, where)
            await migrate(conn, where)  # creates salesbot's schema in this transaction
            columns, identities = await _target_tables(conn)
            await conn.execute(
                "LOCK TABLE "
                + ", ".join(f'"{table}"' for table in sorted(columns))
                + " IN EXCLUSIVE MODE"
            )
            await _refuse_rows(conn, where, tuple(sorted(columns)))
            plans = plan(snapshot_path, columns)
            for table_plan in plans:
                try:
                    await _copy_table(conn, snapshot_path, table_plan, progress, page)
                except asyncpg.PostgresError as exc:
                    raise StorageError(
                        f"{where} refused a row of {table_plan.table}: "
                        f"{str(exc).rstrip('.')}. Nothing was written."
                    ) from None
            await _restart_identities(conn, identities)
            copied = {
                p.table: int(await conn.fetchval(f'SELECT COUNT(*) FROM "{p.table}"'))
                for p in plans
            }
            wrong = [p for p in plans if copied[p.table] != p.rows]
            if wrong:
                first = wrong[0]
                raise StorageError(
                    f"{where}: {first.table} holds {copied[first.table]} rows after the copy, "
                    f"the store {first.rows}; nothing was written"
                )
    except StorageError:
        raise
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
        raise StorageError(f"{wrap(exc, where)} Nothing was written.") from None
    finally:
        with contextlib.suppress(Exception):
            await conn.close()
    return ImportSummary(tables=copied)


def _where(dsn: str) -> str:
    return redacted(dsn)


def _read_only(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None)


async def _refuse_foreign_tables(conn: asyncpg.Connection[Any], where: str) -> None:
    """Tables without salesbot's `schema_version` are someone else's data."""
    if await schema_version(conn) == 0:
        tables = [row[0] for row in await conn.fetch(_OTHER_TABLES)]
        if tables:
            raise TargetNotEmptyError(
                f"{where} is not empty: it holds {len(tables)} tables that are not "
                f"salesbot's ({', '.join(tables[:3])}); migrate into an empty database or schema"
            )


async def _refuse_rows(conn: asyncpg.Connection[Any], where: str, tables: tuple[str, ...]) -> None:
    """salesbot's schema with rows in it: another salesbot wrote here; never merged into."""
    held = []
    for table in tables:
        if await conn.fetchval(f'SELECT EXISTS (SELECT 1 FROM "{table}")'):
            held.append(table)
    if held:
        conversations = int(await conn.fetchval('SELECT COUNT(*) FROM "streams"'))
        raise TargetNotEmptyError(
            f"{where} is not empty: a salesbot store with {conversations} conversations "
            f"(rows in {', '.join(held[:3])}); migrate into an empty database or schema, "
            "before any salesbot serves from it"
        )


async def _target_tables(
    conn: asyncpg.Connection[Any],
) -> tuple[dict[str, tuple[str, ...]], list[tuple[str, str]]]:
    """The PostgreSQL tables' columns in order, and the identity columns (table, column)."""
    columns: dict[str, list[str]] = {}
    identities: list[tuple[str, str]] = []
    for table, column, is_identity in await conn.fetch(_PG_TABLES):
        if table == "schema_version":
            continue
        columns.setdefault(table, []).append(column)
        if is_identity:
            identities.append((table, column))
    return {table: tuple(names) for table, names in columns.items()}, identities


async def _copy_table(
    conn: asyncpg.Connection[Any],
    snapshot_path: Path,
    table_plan: TablePlan,
    progress: Progress | None,
    page: int,
) -> None:
    for rows in _pages(snapshot_path, table_plan, page):
        # COPY writes the given values into identity columns (GENERATED ALWAYS applies to
        # INSERT only), so SQLite's ids and positions are kept as they are.
        await conn.copy_records_to_table(
            table_plan.table, records=rows, columns=list(table_plan.columns)
        )
        if progress is not None:
            progress(len(rows))


def _pages(
    snapshot_path: Path, table_plan: TablePlan, page: int
) -> Iterator[list[tuple[Any, ...]]]:
    """The table's rows in their rowid order (SQLite's insertion order for every table
    here: the log's position, the outbox's id…), or in primary key order for the tables
    without a rowid (`KEYED`), a page at a time from one cursor."""
    select = ", ".join(table_plan.select)
    order = KEYED.get(table_plan.table, "rowid")
    with contextlib.closing(_read_only(snapshot_path)) as conn:
        cursor = conn.execute(f'SELECT {select} FROM "{table_plan.table}" ORDER BY {order}')
        while rows := cursor.fetchmany(page):
            yield rows


async def _restart_identities(
    conn: asyncpg.Connection[Any], identities: list[tuple[str, str]]
) -> None:
    """Move each identity sequence past the highest id copied: the next row written by a
    replica continues the order instead of colliding with a copied id."""
    for table, column in identities:
        highest = await conn.fetchval(f'SELECT MAX("{column}") FROM "{table}"')
        if highest is not None:
            await conn.execute(
                "SELECT setval(pg_get_serial_sequence($1, $2), $3)",
                f'"{table}"',
                column,
                int(highest),
            )
