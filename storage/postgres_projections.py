"""The projections (`storage.projections`) as PostgreSQL tables, kept as SQLite keeps them
(`storage.sqlite_projections`): one accumulator row per conversation and the quote index,
updated in the transaction that appends the events they fold, and summed by one read.

Across processes: a commit reads its conversation's row `FOR UPDATE` before folding into
it, and a rebuild locks `projection_streams` in EXCLUSIVE mode before it reads the log, so a
commit either finished before the rebuild read (its events are folded by the rebuild) or
waits for the rebuild and then folds into the rebuilt row — never into a row the rebuild
is replacing.
"""

from __future__ import annotations

from collections.abc import Sequence

from domain import GENERATOR
from domain.events import EventEnvelope
from storage.postgres_pool import Conn, execute_many
from storage.projections import (
    NO_FACTS,
    PROJECTED_TYPES,
    PROJECTION_SCHEMA_VERSION,
    Projection,
    fold_events,
    is_projected,
)
from storage.sql_rows import fact_values, facts_from_row

FACT_COLUMNS = (
    "started_at_ms, prospect_messages, qualified_at_ms, ending, first_from_state, "
    "current_state, reached, quotes_issued, quotes_revised, quotes_superseded"
)
_VERSIONS = (PROJECTION_SCHEMA_VERSION, GENERATOR)
_TYPES = sorted(PROJECTED_TYPES)

_INSERT_FACTS = (
    f"INSERT INTO projection_streams (conversation_id, {FACT_COLUMNS}, schema_version, "
    "generator) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
)
_PUT_FACTS = (
    f"{_INSERT_FACTS} ON CONFLICT (conversation_id) DO UPDATE SET "
    "started_at_ms = excluded.started_at_ms, prospect_messages = excluded.prospect_messages, "
    "qualified_at_ms = excluded.qualified_at_ms, ending = excluded.ending, "
    "first_from_state = excluded.first_from_state, current_state = excluded.current_state, "
    "reached = excluded.reached, quotes_issued = excluded.quotes_issued, "
    "quotes_revised = excluded.quotes_revised, quotes_superseded = excluded.quotes_superseded, "
    "schema_version = excluded.schema_version, generator = excluded.generator"
)
_INSERT_QUOTE = (
    "INSERT INTO quote_index (quote_id, conversation_id, schema_version, generator) "
    "VALUES ($1, $2, $3, $4) ON CONFLICT (quote_id) DO NOTHING"
)

METRICS_READ = """
SELECT 'profile', schema_version, (prospect_messages > 0)::int::bigint, ending,
       first_from_state, current_state, reached, COUNT(*)
FROM projection_streams WHERE started_at_ms IS NOT NULL
GROUP BY 2, 3, 4, 5, 6, 7
UNION ALL
SELECT 'time', schema_version, NULL, NULL, NULL, NULL, NULL, qualified_at_ms - started_at_ms
FROM projection_streams WHERE started_at_ms IS NOT NULL AND qualified_at_ms IS NOT NULL
UNION ALL
SELECT 'quotes', schema_version, SUM(quotes_issued)::bigint, SUM(quotes_revised)::text,
       SUM(quotes_superseded)::text, NULL, NULL, NULL
FROM projection_streams WHERE started_at_ms IS NOT NULL GROUP BY 2
"""
"""`storage.sqlite_projections.METRICS_READ` in PostgreSQL's types (a UNION's columns
share one type: the quote sums in text columns come back as text, which
`storage.sql_rows.metrics_rows` reads with `int`); one statement, one snapshot."""


async def apply_events(conn: Conn, conversation_id: str, events: Sequence[EventEnvelope]) -> None:
    """Fold one conversation's new events into the stored projections, inside the
    transaction that appends them."""
    relevant = [envelope for envelope in events if is_projected(envelope)]
    if not relevant:
        return
    row = await conn.fetchrow(
        f"SELECT {FACT_COLUMNS} FROM projection_streams WHERE conversation_id = $1 FOR UPDATE",
        conversation_id,
    )
    before = NO_FACTS if row is None else facts_from_row(tuple(row))
    after, quotes = fold_events(before, relevant)
    if after != before:
        await conn.execute(_PUT_FACTS, conversation_id, *fact_values(after), *_VERSIONS)
    await execute_many(
        conn, _INSERT_QUOTE, [(quote_id, conversation_id, *_VERSIONS) for quote_id in quotes]
    )


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
    """Swap the stored projections for `projection` (in the caller's transaction)."""
    await conn.execute("DELETE FROM projection_streams")
    await conn.execute("DELETE FROM quote_index")
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
