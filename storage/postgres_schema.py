"""The PostgreSQL schema and its migrations, versioned in the table `schema_version`.

`MIGRATIONS[i]` takes a database from schema version `i` to `i + 1`; each applied version
is one row of `schema_version` (the version, when, and which salesbot applied it), so the
database's version is the highest row. Opening a store runs every migration it lacks in one
transaction under a transaction-level advisory lock (`MIGRATION_LOCK`): two replicas
starting together on a new database cannot both migrate it, and a crash mid-upgrade
leaves the old version (PostgreSQL's DDL is transactional). Migrations are append-only:
never edit a released one; add the next. A database with a higher version than
`SCHEMA_VERSION` is refused (`SchemaTooNewError`), never "downgraded"; a database that
holds tables but no `schema_version` is refused too (`CorruptDatabaseError`), instead of
being migrated on top of another application's data.

The tables are those of the SQLite store (`storage.sqlite_schema`, at its schema version 9),
with PostgreSQL's types: times and money are `bigint` (integer epoch milliseconds, integer
minor units), keys `bytea`, and every JSON document is `text`. An event's envelope is kept
as the exact text its hash-chain link (`domain.chain`) was computed over: `jsonb` would
re-serialise it (key order, whitespace, number forms) and break the chain. Global orders
(the log's `position`, the outbox's and inbounds' `id`, the order streams, tickets and
lease owners were created in) are identity columns, as SQLite's rowids are.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import asyncpg
import asyncpg.pool

from domain import GENERATOR
from storage.errors import CorruptDatabaseError, SchemaTooNewError
from storage.projections import PROJECTION_SCHEMA_VERSION, StreamFacts
from storage.sql_rows import COUNTER_COLUMNS, FACT_COLUMNS, TIME_COLUMNS, facts_from_row, total_rows

if TYPE_CHECKING:  # generic in asyncpg-stubs only
    AnyConn = asyncpg.Connection[Any] | asyncpg.pool.PoolConnectionProxy[Any]
else:
    AnyConn = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy

MIGRATION_LOCK = 0x53424F54_0001
"""The advisory lock key migrations run under ("SBOT", 1)."""

_V1: tuple[str, ...] = (
    """
    CREATE TABLE streams (
        id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        conversation_id text   NOT NULL UNIQUE,
        version         bigint NOT NULL CHECK (version >= 1),
        created_at_ms   bigint NOT NULL,
        updated_at_ms   bigint NOT NULL
    )
    """,
    "CREATE INDEX streams_by_activity ON streams (updated_at_ms)",
    """
    CREATE TABLE events (
        position        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        conversation_id text   NOT NULL REFERENCES streams (conversation_id),
        seq             bigint NOT NULL CHECK (seq >= 1),
        at_ms           bigint NOT NULL,
        policy_version  text   NOT NULL,
        type            text   NOT NULL,
        delivery_id     text   NOT NULL,
        envelope        text   NOT NULL,
        chain_hash      text,
        UNIQUE (conversation_id, seq)
    )
    """,
    "CREATE INDEX events_by_delivery ON events (delivery_id)",
    "CREATE INDEX events_by_type ON events (type, at_ms)",
    """
    CREATE TABLE deliveries (
        delivery_id       text   PRIMARY KEY,
        conversation_id   text   NOT NULL,
        received_at_ms    bigint NOT NULL,
        committed_version bigint NOT NULL
    )
    """,
    "CREATE INDEX deliveries_by_time ON deliveries (received_at_ms)",
    """
    CREATE TABLE inbounds (
        id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        conversation_id text   NOT NULL,
        position        bigint NOT NULL CHECK (position >= 1),
        delivery_id     text   NOT NULL UNIQUE REFERENCES deliveries (delivery_id),
        received_at_ms  bigint NOT NULL,
        policy_version  text   NOT NULL,
        inbound         text   NOT NULL,
        generator       text,
        UNIQUE (conversation_id, position)
    )
    """,
    """
    CREATE TABLE outbox (
        id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        key             text   NOT NULL UNIQUE,
        conversation_id text   NOT NULL,
        channel         text   NOT NULL,
        payload         text   NOT NULL,
        created_at_ms   bigint NOT NULL,
        available_at_ms bigint NOT NULL,
        attempts        bigint NOT NULL DEFAULT 0 CHECK (attempts >= 0),
        status          text   NOT NULL DEFAULT 'pending'
                        CHECK (status IN ('pending', 'in_flight', 'sent', 'dead')),
        last_error      text,
        remote_id       text,
        lease_until_ms  bigint,
        sent_at_ms      bigint,
        lease_owner     text
    )
    """,
    """
    CREATE INDEX outbox_unsent ON outbox (channel, id)
        WHERE status IN ('pending', 'in_flight')
    """,
    "CREATE INDEX outbox_dead ON outbox (id) WHERE status = 'dead'",
    "CREATE INDEX outbox_sent ON outbox (id) WHERE status = 'sent'",
    "CREATE INDEX outbox_by_lease_owner ON outbox (lease_owner) WHERE status = 'in_flight'",
    "CREATE INDEX outbox_by_conversation ON outbox (conversation_id)",
    """
    CREATE TABLE outbox_owners (
        id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        owner          text   NOT NULL UNIQUE,
        identity       text,
        started_at_ms  bigint NOT NULL,
        alive_until_ms bigint NOT NULL
    )
    """,
    "CREATE INDEX outbox_owners_by_identity ON outbox_owners (identity)",
    """
    CREATE TABLE tickets (
        id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        key             text   NOT NULL UNIQUE,
        conversation_id text   NOT NULL,
        kind            text   NOT NULL CHECK (kind IN ('handoff', 'approval')),
        reason          text   NOT NULL,
        status          text   NOT NULL CHECK (status IN ('open', 'claimed', 'resolved')),
        claimed_by      text,
        resolved_by     text,
        quote_id        text,
        opened_at_ms    bigint NOT NULL,
        updated_at_ms   bigint NOT NULL,
        schema_version  bigint NOT NULL DEFAULT 1,
        generator       text
    )
    """,
    "CREATE INDEX tickets_unresolved ON tickets (opened_at_ms, id) WHERE status != 'resolved'",
    "CREATE INDEX tickets_by_conversation ON tickets (conversation_id)",
    """
    CREATE TABLE policies (
        version        text PRIMARY KEY,
        canonical_json text NOT NULL
    )
    """,
    """
    CREATE TABLE adapter_state (
        key            text   PRIMARY KEY CHECK (char_length(key) BETWEEN 1 AND 1024),
        value          text   NOT NULL,
        updated_at_ms  bigint NOT NULL,
        schema_version bigint NOT NULL,
        generator      text   NOT NULL
    )
    """,
    # The projections (`storage.postgres_projections`), at row schema version 2.
    """
    CREATE TABLE projection_streams (
        conversation_id   text   PRIMARY KEY,
        started_at_ms     bigint,
        prospect_messages bigint NOT NULL CHECK (prospect_messages >= 0),
        qualified_at_ms   bigint,
        ending            text   CHECK (ending IN ('won', 'lost', 'abandoned')),
        first_from_state  text,
        current_state     text,
        reached           text   NOT NULL,
        quotes_issued     bigint NOT NULL DEFAULT 0 CHECK (quotes_issued >= 0),
        quotes_revised    bigint NOT NULL DEFAULT 0 CHECK (quotes_revised >= 0),
        quotes_superseded bigint NOT NULL DEFAULT 0 CHECK (quotes_superseded >= 0),
        schema_version    bigint NOT NULL,
        generator         text   NOT NULL
    )
    """,
    """
    CREATE TABLE quote_index (
        quote_id        text   PRIMARY KEY,
        conversation_id text   NOT NULL,
        schema_version  bigint NOT NULL,
        generator       text   NOT NULL
    )
    """,
    """
    CREATE TABLE pending_answers (
        id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        key             text   NOT NULL UNIQUE,
        conversation_id text   NOT NULL,
        delivery_id     text   NOT NULL REFERENCES deliveries (delivery_id),
        payload         text   NOT NULL,
        created_at_ms   bigint NOT NULL,
        schema_version  bigint NOT NULL,
        generator       text   NOT NULL
    )
    """,
    """
    CREATE TABLE timers (
        conversation_id text   PRIMARY KEY,
        due_at_ms       bigint,
        version         bigint NOT NULL CHECK (version >= 0)
    )
    """,
    """
    CREATE INDEX timers_due ON timers (due_at_ms, conversation_id)
        WHERE due_at_ms IS NOT NULL
    """,
    """
    CREATE TABLE conversation_keys (
        conversation_id text   NOT NULL,
        key_id          bigint NOT NULL CHECK (key_id >= 0),
        key             bytea  NOT NULL CHECK (octet_length(key) = 32),
        created_at_ms   bigint NOT NULL,
        PRIMARY KEY (conversation_id, key_id)
    )
    """,
)
"""Everything the SQLite store holds at its schema version 9, in one step: PostgreSQL
support starts there, so there is no earlier PostgreSQL schema to upgrade from."""

COUNTER_DDL: tuple[str, ...] = (
    """
    CREATE TABLE IF NOT EXISTS projection_counters (
        installation   text   NOT NULL,
        kind           text   NOT NULL,
        name           text   NOT NULL,
        shard          bigint NOT NULL CHECK (shard >= 0),
        value          bigint NOT NULL,
        schema_version bigint NOT NULL,
        generator      text   NOT NULL,
        PRIMARY KEY (installation, kind, name, shard)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS projection_times (
        installation   text   NOT NULL,
        level          bigint NOT NULL CHECK (level >= 0),
        bucket         bigint NOT NULL,
        n              bigint NOT NULL,
        schema_version bigint NOT NULL,
        generator      text   NOT NULL,
        PRIMARY KEY (installation, level, bucket)
    )
    """,
    "CREATE INDEX IF NOT EXISTS projection_streams_by_schema ON projection_streams (schema_version)",
)
"""`storage.sqlite_projections.COUNTER_DDL` in PostgreSQL's types (schema version 2)."""

_INSERT_COUNTERS = (
    f"INSERT INTO projection_counters ({COUNTER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
)
_INSERT_TIMES = f"INSERT INTO projection_times ({TIME_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"


async def add_counters(conn: asyncpg.Connection[Any]) -> None:
    """The counters migration (schema version 2, row schema version 4): the tables, filled
    from the stored per-conversation facts, the rows stamped version 4 (as SQLite's
    `add_counters`)."""
    await conn.execute(";\n".join(COUNTER_DDL))
    await conn.execute("DELETE FROM projection_counters")  # idempotent, as SQLite's
    await conn.execute("DELETE FROM projection_times")
    rows = await conn.fetch(
        f"SELECT conversation_id, {FACT_COLUMNS} FROM projection_streams "
        "WHERE schema_version IN (3, 4, 5)"
    )
    await insert_totals(conn, {row[0]: facts_from_row(tuple(row)[1:]) for row in rows})
    for table in ("projection_streams", "quote_index"):
        await conn.execute(
            f"UPDATE {table} SET schema_version = $1, generator = $2 "
            "WHERE schema_version IN (3, 4, 5)",
            PROJECTION_SCHEMA_VERSION,
            GENERATOR,
        )


async def scope_counters(conn: asyncpg.Connection[Any]) -> None:
    """The installations migration (schema version 3, row schema version 5), as SQLite's
    `scope_counters`: the counters and counted times keyed by installation first, made again
    and filled from the stored per-conversation facts."""
    await conn.execute("DROP TABLE IF EXISTS projection_counters")
    await conn.execute("DROP TABLE IF EXISTS projection_times")
    await add_counters(conn)


async def insert_totals(conn: AnyConn, facts: dict[str, StreamFacts]) -> None:
    """Insert the counters and counted times of `facts` (into emptied tables)."""
    counters, times = total_rows(facts)
    for sql, rows in ((_INSERT_COUNTERS, counters), (_INSERT_TIMES, times)):
        if rows:
            await conn.executemany(sql, rows)


Migration = tuple[str, ...] | Callable[["asyncpg.Connection[Any]"], Awaitable[None]]
"""A script of statements, or a function run in the migration's transaction (for a step
that computes rows in Python, as SQLite's migrations do)."""

_V_COUNTERS: Migration = add_counters
"""The metrics' counters and counted qualification times, kept by the commit from now on
(row schema version 4; `storage.postgres_projections.add_counters`), filled from the
stored per-conversation rows: SQLite's schema version 11."""

_V_INSTALLATIONS: Migration = scope_counters
"""The counters and counted times keyed by installation (row schema version 5): SQLite's
schema version 12."""

_V_LEAN_EVENTS: Migration = (
    "DROP INDEX IF EXISTS events_by_type",
    "DROP INDEX IF EXISTS events_by_delivery",
)
"""Two indexes of the events no statement reads, dropped (each appended event wrote an
entry in both): SQLite's schema version 13."""

MIGRATIONS: tuple[Migration, ...] = (_V1, _V_COUNTERS, _V_INSTALLATIONS, _V_LEAN_EVENTS)
SCHEMA_VERSION = len(MIGRATIONS)

_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS schema_version (
    version       integer PRIMARY KEY CHECK (version >= 1),
    applied_at_ms bigint  NOT NULL,
    generator     text    NOT NULL
)
"""

_FOUND = "SELECT COALESCE(MAX(version), 0) FROM schema_version"

_OTHER_TABLES = """
SELECT COUNT(*) FROM pg_catalog.pg_tables
WHERE schemaname = current_schema() AND tablename != 'schema_version'
"""

_STAMP = (
    "INSERT INTO schema_version (version, applied_at_ms, generator) "
    "VALUES ($1, (extract(epoch FROM clock_timestamp()) * 1000)::bigint, $2)"
)


async def schema_version(conn: asyncpg.Connection[Any]) -> int:
    """The database's schema version (0 for a database salesbot never migrated)."""
    exists = await conn.fetchval("SELECT to_regclass('schema_version') IS NOT NULL")
    if not exists:
        return 0
    return int(await conn.fetchval(_FOUND))


async def migrate(conn: asyncpg.Connection[Any], where: str, target: int = SCHEMA_VERSION) -> int:
    """Bring the database to schema version `target` in one transaction; return the
    version found. `where` names the database in errors (the DSN without its password)."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        found = await schema_version(conn)  # read again under the lock
        if found > SCHEMA_VERSION:
            raise SchemaTooNewError(where, found, SCHEMA_VERSION)
        if found == 0 and await conn.fetchval(_OTHER_TABLES):
            raise CorruptDatabaseError(where, "it holds tables but no salesbot schema")
        if found < target:
            await conn.execute(_VERSION_TABLE)
            for version in range(found + 1, target + 1):
                migration = MIGRATIONS[version - 1]
                if isinstance(migration, tuple):
                    # One round trip (the simple query protocol runs a script).
                    await conn.execute(";\n".join(migration))
                else:
                    await migration(conn)
                await conn.execute(_STAMP, version, GENERATOR)
    return found
