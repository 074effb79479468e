"""The projections (`storage.projections`) as PostgreSQL tables, kept as SQLite keeps them
(`storage.sqlite_projections`): one accumulator row per conversation, the quote index, the
counters and the counted qualification times, updated in the transaction that appends the
events they fold, and read by one statement whose cost does not grow with the log.

The counters are sharded (`storage.projections.SHARDS`): replicas committing different
conversations rarely update the same counter row, and when they do (same shard, same
counter) the second waits for the first's commit, never deadlocks — every transaction (a
commit, or a group of them: `storage.postgres_group`) takes its counter rows in key
order, then its counted times' rows in key order.

A commit folds its events into these rows in its own statements
(`storage.postgres_commit`: the row read with its link and key, written with its events).

Across processes: a commit reads its conversation's row `FOR UPDATE` before folding into
it, and a rebuild locks `projection_streams` in EXCLUSIVE mode before it reads the log, so a
commit either finished before the rebuild read (its events are folded by the rebuild) or
waits for the rebuild and then folds into the rebuilt row — never into a row the rebuild
is replacing.
"""

from __future__ import annotations

from domain import GENERATOR
from domain.events import EventEnvelope
from storage.postgres_pool import Conn, execute_many
from storage.postgres_schema import insert_totals
from storage.projections import (
    PROJECTED_TYPES,
    PROJECTION_SCHEMA_VERSION,
    Projection,
)
from storage.sql_rows import (
    FACT_COLUMNS,
    fact_values,
    facts_from_row,
    metrics_read,
    qualification_times_read,
)

_VERSIONS = (PROJECTION_SCHEMA_VERSION, GENERATOR)
_TYPES = sorted(PROJECTED_TYPES)

_INSERT_FACTS = (
    f"INSERT INTO projection_streams (conversation_id, {FACT_COLUMNS}, schema_version, "
    "generator) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
)
_INSERT_QUOTE = (
    "INSERT INTO quote_index (quote_id, conversation_id, schema_version, generator) "
    "VALUES ($1, $2, $3, $4) ON CONFLICT (quote_id) DO NOTHING"
)
METRICS_READ = metrics_read(lateral=True, param="$1")
"""`storage.sqlite_projections.METRICS_READ`, each level's children read by a LATERAL
subquery (`storage.sql_rows.metrics_read`)."""
QUALIFICATION_TIMES_READ = qualification_times_read("$1")


async def stored_projection(conn: Conn) -> Projection:
    """The stored rows as a `Projection` (facts and quotes; its counters are not kept)."""
    projection = Projection()
    for row in await conn.fetch(f"SELECT conversation_id, {FACT_COLUMNS} FROM projection_streams"):
        projection.facts[row[0]] = facts_from_row(tuple(row)[1:])
    for quote_id, conversation_id in await conn.fetch(
        "SELECT quote_id, conversation_id FROM quote_index"
    ):
        projection.quotes[quote_id] = conversation_id
    return projection


async def stored_counters(
    conn: Conn,
) -> tuple[dict[tuple[str, str, str, int], int], dict[tuple[str, int, int], int]]:
    """The stored counter rows and counted-time rows, keyed as `sharded_rows` keys them."""
    counts = {
        (row[0], row[1], row[2], int(row[3])): int(row[4])
        for row in await conn.fetch(
            "SELECT installation, kind, name, shard, value FROM projection_counters"
        )
    }
    times = {
        (row[0], int(row[1]), int(row[2])): int(row[3])
        for row in await conn.fetch("SELECT installation, level, bucket, n FROM projection_times")
    }
    return counts, times


async def fold_log(conn: Conn, page: int = 2000) -> Projection:
    """The projection of every projected event in the log, in append order, read a page
    at a time (keyset on the position)."""
    projection = Projection()
    after = 0
    while True:
        rows = await conn.fetch(
            "SELECT position, envelope FROM events WHERE position > $1 "
            "AND type = ANY($2::text[]) ORDER BY position LIMIT $3",
            after,
            _TYPES,
            page,
        )
        for _position, text in rows:
            envelope = EventEnvelope.model_validate_json(text)
            projection.apply(envelope.conversation_id, (envelope,))
        if len(rows) < page:
            return projection
        after = rows[-1][0]


async def replace_all(conn: Conn, projection: Projection) -> None:
    """Swap the stored projections for `projection`, counters and times included (in the
    caller's transaction)."""
    await conn.execute("DELETE FROM projection_streams")
    await conn.execute("DELETE FROM quote_index")
    await conn.execute("DELETE FROM projection_counters")
    await conn.execute("DELETE FROM projection_times")
    await insert_totals(conn, projection.facts)
    await execute_many(
        conn,
        _INSERT_FACTS,
        [(cid, *fact_values(facts), *_VERSIONS) for cid, facts in projection.facts.items()],
    )
    await execute_many(
        conn,
        _INSERT_QUOTE,
        [(qid, cid, *_VERSIONS) for qid, cid in projection.quotes.items()],
    )
