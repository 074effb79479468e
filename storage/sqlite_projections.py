"""The projections (`storage.projections`) and pending answers as SQLite tables.

What is stored is the per-conversation accumulator (`projection_streams`, one row per
conversation with a projected event), the quote index, and what `/metrics` reads: the
counters (`projection_counters`, (kind, name, shard) → value) and the qualification times
counted in a radix tree (`projection_times`, (level, bucket) → how many). A commit
moves the counters by its conversation's change of contribution (`storage.projections.
advance_steps`) — a few upserts, only when the conversation's facts change — so the read
(`METRICS_READ`, one statement) costs the same at 1k events as at 1M. Until schema version
11 the read summed one row per conversation instead (0.7 s at 1M events,
docs/benchmarks.md).

Written only by the store's one writer, inside the transaction that appends the events they
fold (`apply_steps`, called for every append), so a crash can never leave them behind or
ahead of the log. The tables are created and filled from the existing log by the migration
`_V_PROJECTIONS` (`storage.sqlite_schema`), so an upgraded store answers `/metrics` at once.

Every row carries `schema_version` (`PROJECTION_SCHEMA_VERSION`, or
`PENDING_ANSWER_SCHEMA_VERSION`) and `generator` (the salesbot that last wrote it).

Rebuilding (`salesbot projections rebuild`) folds the log from a read snapshot on a
connection of its own, off the writer (`fold_snapshot`, seconds for a large log), then in
one short write job folds whatever was committed since the snapshot and replaces the rows
(`replace_all`): a running bot's commits wait for the swap only, not for the fold.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path

from domain import GENERATOR
from domain.events import EventEnvelope
from storage.projections import (
    NO_FACTS,
    PROJECTED_TYPES,
    PROJECTION_SCHEMA_VERSION,
    Projection,
    Step,
    StreamFacts,
    advance_steps,
)
from storage.sql_rows import (
    COUNTER_COLUMNS,
    TIME_COLUMNS,
    change_rows,
    facts_from_row,
    metrics_read,
    qualification_times_read,
    total_rows,
)
from storage.sql_rows import fact_values as _fact_values

Conn = sqlite3.Connection

DDL: tuple[str, ...] = (
    # One row per conversation that has a projected event: `domain.analytics`' accumulator.
    # `reached` is a JSON array of state names, sorted.
    """
    CREATE TABLE projection_streams (
        conversation_id   TEXT    PRIMARY KEY,
        started_at_ms     INTEGER,
        prospect_messages INTEGER NOT NULL CHECK (prospect_messages >= 0),
        qualified_at_ms   INTEGER,
        ending            TEXT    CHECK (ending IN ('won', 'lost', 'abandoned')),
        first_from_state  TEXT,
        current_state     TEXT,
        reached           TEXT    NOT NULL,
        schema_version    INTEGER NOT NULL,
        generator         TEXT    NOT NULL
    ) STRICT
    """,
    # `/audit <quote id>`: which conversation issued the quote, without scanning the log.
    """
    CREATE TABLE quote_index (
        quote_id        TEXT    PRIMARY KEY,
        conversation_id TEXT    NOT NULL,
        schema_version  INTEGER NOT NULL,
        generator       TEXT    NOT NULL
    ) STRICT
    """,
    # Queries a commit asked for, answered after it (`storage.ports.DeferredAnswers`).
    """
    CREATE TABLE pending_answers (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        key             TEXT    NOT NULL UNIQUE,
        conversation_id TEXT    NOT NULL,
        delivery_id     TEXT    NOT NULL REFERENCES deliveries (delivery_id),
        payload         TEXT    NOT NULL,
        created_at_ms   INTEGER NOT NULL,
        schema_version  INTEGER NOT NULL,
        generator       TEXT    NOT NULL
    ) STRICT
    """,
)

_TYPES = tuple(sorted(PROJECTED_TYPES))
_TYPE_MARKS = ", ".join("?" for _ in _TYPES)
_V4_FACT_COLUMNS = (
    "started_at_ms, prospect_messages, qualified_at_ms, ending, first_from_state, "
    "current_state, reached"
)
"""The columns the projections migration created (schema version 1 of the rows)."""
_FACT_COLUMNS = f"{_V4_FACT_COLUMNS}, quotes_issued, quotes_revised, quotes_superseded"
_VERSIONS = (PROJECTION_SCHEMA_VERSION, GENERATOR)
_VERSION_COLUMNS = ("schema_version", "generator")

QUOTE_COUNT_COLUMNS: tuple[str, ...] = (
    # Row schema version 2: the quotes of each conversation (`storage.projections`).
    "ALTER TABLE projection_streams ADD COLUMN quotes_issued INTEGER NOT NULL DEFAULT 0 "
    "CHECK (quotes_issued >= 0)",
    "ALTER TABLE projection_streams ADD COLUMN quotes_revised INTEGER NOT NULL DEFAULT 0 "
    "CHECK (quotes_revised >= 0)",
    "ALTER TABLE projection_streams ADD COLUMN quotes_superseded INTEGER NOT NULL DEFAULT 0 "
    "CHECK (quotes_superseded >= 0)",
)

COUNTER_DDL: tuple[str, ...] = (
    # Row schema version 4: the counters and counted times the commit keeps, clustered on
    # their keys (WITHOUT ROWID): the read walks key ranges, one B-tree instead of an index
    # and a table, and an upsert writes one B-tree.
    """
    CREATE TABLE IF NOT EXISTS projection_counters (
        installation   TEXT    NOT NULL,
        kind           TEXT    NOT NULL,
        name           TEXT    NOT NULL,
        shard          INTEGER NOT NULL CHECK (shard >= 0),
        value          INTEGER NOT NULL,
        schema_version INTEGER NOT NULL,
        generator      TEXT    NOT NULL,
        PRIMARY KEY (installation, kind, name, shard)
    ) STRICT, WITHOUT ROWID
    """,
    # No CHECK (n >= 0) on the counts: SQLite checks an upsert's inserted values before it
    # finds the conflict, and a commit's -1 (a time that moved) goes to an existing row.
    """
    CREATE TABLE IF NOT EXISTS projection_times (
        installation   TEXT    NOT NULL,
        level          INTEGER NOT NULL CHECK (level >= 0),
        bucket         INTEGER NOT NULL,
        n              INTEGER NOT NULL,
        schema_version INTEGER NOT NULL,
        generator      TEXT    NOT NULL,
        PRIMARY KEY (installation, level, bucket)
    ) STRICT, WITHOUT ROWID
    """,
    # The read checks the rows' versions with two look-ups, not a scan.
    "CREATE INDEX IF NOT EXISTS projection_streams_by_schema ON projection_streams (schema_version)",
)

_ADD_COUNTERS = (
    f"INSERT INTO projection_counters ({COUNTER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (installation, kind, name, shard) DO UPDATE SET "
    "value = projection_counters.value + excluded.value, generator = excluded.generator"
)
_ADD_TIMES = (
    f"INSERT INTO projection_times ({TIME_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (installation, level, bucket) DO UPDATE SET "
    "n = projection_times.n + excluded.n, generator = excluded.generator"
)

METRICS_READ = metrics_read(lateral=False, param="?1")
"""The counters, the rows' versions and the qualification percentiles' order statistics in
one statement (`storage.sql_rows.metrics_read`), of the installation bound to `?1`."""
QUALIFICATION_TIMES_READ = qualification_times_read("?1")


def create_and_fill(conn: Conn) -> None:
    """The projections migration: the tables, filled from the events already stored, as
    that release wrote them (row schema version 1, without the quote counts: the next
    migration, `add_quote_counts`, adds them and writes every row again)."""
    for statement in DDL:
        conn.execute(statement)
    projection = Projection()
    for envelope in projected_events(conn):
        projection.apply(envelope.conversation_id, (envelope,))
    conn.executemany(
        f"INSERT INTO projection_streams (conversation_id, {_V4_FACT_COLUMNS}, schema_version, "
        "generator) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(cid, *_fact_values(facts)[:7], 1, GENERATOR) for cid, facts in projection.facts.items()],
    )
    conn.executemany(
        "INSERT INTO quote_index (quote_id, conversation_id, schema_version, generator) "
        "VALUES (?, ?, ?, ?)",
        [(qid, cid, 1, GENERATOR) for qid, cid in projection.quotes.items()],
    )


def add_quote_counts(conn: Conn) -> None:
    """The quote counts migration: three columns, then every row folded again from the log
    (row schema version 2), so an upgraded store answers `/metrics` at once."""
    for statement in QUOTE_COUNT_COLUMNS:
        conn.execute(statement)
    projection = Projection()
    for envelope in projected_events(conn):
        projection.apply(envelope.conversation_id, (envelope,))
    replace_rows(conn, projection)


def refold(conn: Conn) -> None:
    """The segment marks migration (row schema version 3): every row folded again from the
    log, so an upgraded store draws conversion by persona and lead source at once."""
    projection = Projection()
    for envelope in projected_events(conn):
        projection.apply(envelope.conversation_id, (envelope,))
    replace_rows(conn, projection)


def add_counters(conn: Conn) -> None:
    """The counters migration (row schema version 4): the tables, filled from the stored
    per-conversation facts (their format is unchanged since version 3, so the log is not
    read again: seconds saved on a large store), and the rows stamped version 4. Rows of an
    older version are left as they are: the read refuses them until a rebuild."""
    for statement in COUNTER_DDL:
        conn.execute(statement)
    # Idempotent (IF NOT EXISTS, emptied first): a store whose user_version was set back by
    # hand, as the tests' downgrades do, is migrated again to the same rows.
    recount(conn)
    for table in ("projection_streams", "quote_index"):
        conn.execute(
            f"UPDATE {table} SET schema_version = ?, generator = ? "
            "WHERE schema_version IN (3, 4, 5)",
            _VERSIONS,
        )


def scope_counters(conn: Conn) -> None:
    """The installations migration (row schema version 5): the counters and counted times
    keyed by installation first, so each installation's `/metrics` reads its own rows. The
    tables are made again and filled from the stored per-conversation facts (every stored
    conversation is the first installation's: none was told apart before)."""
    conn.execute("DROP TABLE IF EXISTS projection_counters")
    conn.execute("DROP TABLE IF EXISTS projection_times")
    add_counters(conn)


def recount(conn: Conn) -> None:
    """The counters and counted times replaced by those of the stored per-conversation
    rows (of row version 3 or 4, whose facts have one format): the migration's fill, and
    what `bench.growth` runs after cloning conversations at the SQL level."""
    conn.execute("DELETE FROM projection_counters")
    conn.execute("DELETE FROM projection_times")
    facts = {
        row[0]: facts_from_row(row[1:])
        for row in conn.execute(
            f"SELECT conversation_id, {_FACT_COLUMNS} FROM projection_streams "
            "WHERE schema_version IN (3, 4, 5)"
        )
    }
    _insert_totals(conn, facts)


def _insert_totals(conn: Conn, facts: dict[str, StreamFacts]) -> None:
    counters, times = total_rows(facts)
    conn.executemany(
        f"INSERT INTO projection_counters ({COUNTER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
        counters,
    )
    conn.executemany(
        f"INSERT INTO projection_times ({TIME_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)", times
    )


# -- the commit path ------------------------------------------------------------------


def apply_steps(conn: Conn, conversation_id: str, steps: Sequence[Step]) -> None:
    """Fold one conversation's new events, as their steps (`fold_steps_of`), into the
    stored projections (writer thread or process, inside the transaction that appends
    them)."""
    if not steps:
        return
    row = conn.execute(
        f"SELECT {_FACT_COLUMNS} FROM projection_streams WHERE conversation_id = ?",
        (conversation_id,),
    ).fetchone()
    before = NO_FACTS if row is None else facts_from_row(row)
    change = advance_steps(before, steps)
    if change.changed:
        _put_facts(conn, conversation_id, change.after, exists=row is not None)
        counters, times = change_rows(conversation_id, change)
        if counters:
            conn.executemany(_ADD_COUNTERS, counters)
        if times:
            conn.executemany(_ADD_TIMES, times)
    if change.quotes:
        conn.executemany(
            "INSERT INTO quote_index (quote_id, conversation_id, schema_version, generator) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (quote_id) DO NOTHING",
            [(quote_id, conversation_id, *_VERSIONS) for quote_id in change.quotes],
        )


_UPDATE_FACTS = (
    "UPDATE projection_streams SET "
    + ", ".join(f"{column} = ?" for column in (*_FACT_COLUMNS.split(", "), *_VERSION_COLUMNS))
    + " WHERE conversation_id = ?"
)
"""The row's fact columns and versions (`_fact_values`, `_VERSIONS`) by its conversation."""


def _put_facts(conn: Conn, conversation_id: str, facts: StreamFacts, *, exists: bool) -> None:
    """The conversation's row, written: updated when the transaction has just read it (an
    update costs about three quarters of the upsert), else inserted or updated."""
    if exists:
        conn.execute(_UPDATE_FACTS, (*_fact_values(facts), *_VERSIONS, conversation_id))
        return
    conn.execute(
        f"INSERT INTO projection_streams (conversation_id, {_FACT_COLUMNS}, schema_version, "
        "generator) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT "
        "(conversation_id) DO UPDATE SET started_at_ms = excluded.started_at_ms, "
        "prospect_messages = excluded.prospect_messages, qualified_at_ms = "
        "excluded.qualified_at_ms, ending = excluded.ending, first_from_state = "
        "excluded.first_from_state, current_state = excluded.current_state, reached = "
        "excluded.reached, quotes_issued = excluded.quotes_issued, quotes_revised = "
        "excluded.quotes_revised, quotes_superseded = excluded.quotes_superseded, "
        "schema_version = excluded.schema_version, generator = excluded.generator",
        (conversation_id, *_fact_values(facts), *_VERSIONS),
    )


# -- reading ----------------------------------------------------------------------------


def stored_projection(conn: Conn) -> Projection:
    """The stored rows as a `Projection` (facts and quotes; its counters are not kept)."""
    projection = Projection()
    for row in conn.execute(f"SELECT conversation_id, {_FACT_COLUMNS} FROM projection_streams"):
        projection.facts[row[0]] = facts_from_row(row[1:])
    for quote_id, conversation_id in conn.execute(
        "SELECT quote_id, conversation_id FROM quote_index"
    ):
        projection.quotes[quote_id] = conversation_id
    return projection


def stored_counters(
    conn: Conn,
) -> tuple[dict[tuple[str, str, str, int], int], dict[tuple[str, int, int], int]]:
    """The stored counter rows and counted-time rows, keyed as `sharded_rows` keys them."""
    counts = {
        (installation, kind, name, shard): value
        for installation, kind, name, shard, value in conn.execute(
            "SELECT installation, kind, name, shard, value FROM projection_counters"
        )
    }
    times = {
        (installation, level, bucket): n
        for installation, level, bucket, n in conn.execute(
            "SELECT installation, level, bucket, n FROM projection_times"
        )
    }
    return counts, times


# -- rebuilding -------------------------------------------------------------------------


def projected_events(conn: Conn, after_position: int = 0) -> Iterator[EventEnvelope]:
    """The log's projected events after `after_position`, in append order."""
    cursor = conn.execute(
        f"SELECT envelope FROM events WHERE position > ? AND type IN ({_TYPE_MARKS}) "
        "ORDER BY position",
        (after_position, *_TYPES),
    )
    for (text,) in cursor:
        yield EventEnvelope.model_validate_json(text)


def log_position(conn: Conn) -> tuple[int, int]:
    """The last event's position and the number of events (0, 0 for an empty log)."""
    last, count = conn.execute("SELECT COALESCE(MAX(position), 0), COUNT(*) FROM events").fetchone()
    return int(last), int(count)


def fold_snapshot(path: Path, busy_timeout_ms: int) -> tuple[Projection, int]:
    """On a thread, on a read-only connection of its own: the projection of the log as
    one snapshot sees it, and that snapshot's last position."""
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None)
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        conn.execute("BEGIN")  # one snapshot for both statements (WAL readers never block)
        position, _ = log_position(conn)
        projection = Projection()
        for envelope in projected_events(conn):
            projection.apply(envelope.conversation_id, (envelope,))
        conn.execute("COMMIT")
    finally:
        conn.close()
    return projection, position


def replace_all(conn: Conn, projection: Projection) -> None:
    """Swap the stored projections for `projection`, counters and times included (in the
    caller's transaction): `salesbot projections rebuild`."""
    replace_rows(conn, projection)
    conn.execute("DELETE FROM projection_counters")
    conn.execute("DELETE FROM projection_times")
    _insert_totals(conn, projection.facts)


def replace_rows(conn: Conn, projection: Projection) -> None:
    """Swap the per-conversation rows and the quote index for `projection`'s: what the
    migrations before the counters (schema version 11) wrote; they run on stores without
    the counters' tables."""
    conn.execute("DELETE FROM projection_streams")
    conn.execute("DELETE FROM quote_index")
    conn.executemany(
        f"INSERT INTO projection_streams (conversation_id, {_FACT_COLUMNS}, schema_version, "
        "generator) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(cid, *_fact_values(facts), *_VERSIONS) for cid, facts in projection.facts.items()],
    )
    conn.executemany(
        "INSERT INTO quote_index (quote_id, conversation_id, schema_version, generator) "
        "VALUES (?, ?, ?, ?)",
        [(qid, cid, *_VERSIONS) for qid, cid in projection.quotes.items()],
    )
