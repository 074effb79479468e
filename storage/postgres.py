"""`PostgresStore`: the `Store` ports on PostgreSQL, for several replicas sharing one store.

Selected by `SALESBOT_DB=postgresql://…` (`bot.bootstrap.open_store`); SQLite stays the
default for a path. The same contract suite as `MemoryStore` and `SqliteStore` runs against
it, and the rules every store shares come from the same modules (`storage._rules`,
`storage.sealing`, `storage.projections`, and the row conversions of `storage.sql_rows`).

The store is composed of parts named for what they hold: `storage.postgres_pool` (the pool,
transactions, lanes, errors), `storage.postgres_outbox` (claimed with `FOR UPDATE SKIP
LOCKED`), `storage.postgres_tickets`, `storage.postgres_projections` and
`storage.postgres_schema` (migrations) and `storage.postgres_turns` (which replica runs a
sweep now). This module holds the event log and what commits with it.

A commit with events is written by `storage.postgres_commit`'s statements, grouped with
the other commits under way in this process (`storage.postgres_group`).

Across processes: the expected-version check is the stream row's update:
`UPDATE streams SET version = $new WHERE conversation_id = $1 AND version = $expected`, or
the insert of a new stream's first row. A concurrent writer of the same stream holds that
row until it commits, then the check finds the version moved and raises `ConcurrencyError`:
never a lost update, and the chain link read after it is the committed last one. Dedupe is
the deliveries table's primary key, inserted first: the same delivery committed twice at
once waits for the first and then answers `duplicate`, as SQLite does.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from typing import Any

import asyncpg

from domain import GENERATOR
from domain.chain import Link
from domain.events import EventEnvelope
from domain.personal import erased as erased_record
from domain.personal import paths_of_inbound
from storage import postgres_commit, sealing
from storage._rules import (
    check_events,
    check_limit,
    check_state_key,
    dumps,
    state_json,
)
from storage.errors import ConcurrencyError, StorageError
from storage.ports import (
    REPLAY_BATCH,
    STATE_SCHEMA_VERSION,
    Commit,
    CommitResult,
    ConversationLog,
    MetricsProjection,
    OutboxItem,
    PendingAnswer,
    RebuildSummary,
    StoredInbound,
    VerifyLog,
)
from storage.postgres_group import GroupWriter
from storage.postgres_outbox import INSERT_OUTBOX, PostgresOutbox
from storage.postgres_pool import Conn, Row, affected, execute_many
from storage.postgres_projections import (
    METRICS_READ,
    QUALIFICATION_TIMES_READ,
    fold_log,
    replace_all,
    stored_counters,
    stored_projection,
)
from storage.postgres_tickets import PostgresTickets, apply_ticket_change
from storage.postgres_turns import PostgresTurns
from storage.projections import NO_FACTS, counter_differences, differences, is_projected
from storage.sql_rows import (
    event_rows,
    links,
    metrics_projection,
    outbox_row,
    pending_answers,
    qualification_times,
    rebuild_summary,
    replay_logs,
    replay_read,
    stored_inbound,
    verify_logs,
)

_PAGE = 500  # rows per read when iterating the whole log

_INBOUND_KEYED = (
    "i.conversation_id, i.position, i.delivery_id, i.received_at_ms, i.policy_version, "
    "i.inbound, i.generator, (SELECT json_object_agg(k.key_id, encode(k.key, 'hex'))::text "
    "FROM conversation_keys AS k WHERE k.conversation_id = i.conversation_id) "
    "FROM inbounds AS i"
)
"""A stored inbound's columns and its conversation's keys (to open what is sealed), as a
JSON object of key id → hex, the form `storage.sqlite._stored_inbound` reads."""

_REPLAY_READ, _VERIFY_READ = (
    replay_read(
        "= ANY($1::text[])",
        verify=verify,
        text="NULL::text",
        integer="NULL::bigint",
        blob="NULL::bytea",
    )
    for verify in (False, True)
)


def is_postgres_url(database: str) -> bool:
    """True for a `SALESBOT_DB` that names a PostgreSQL database (`postgresql://…` or
    `postgres://…`) rather than a SQLite file's path."""
    return database.strip().lower().startswith(("postgresql://", "postgres://"))


class PostgresStore(PostgresOutbox, PostgresTickets, PostgresTurns):
    """The `Store` ports on PostgreSQL. Create with `await PostgresStore.open(dsn)`."""

    def __init__(self, dsn: str, pool: asyncpg.Pool[Row]) -> None:
        super().__init__(dsn, pool)
        self._group = GroupWriter(self._commit_alone, self._transaction)
        """Commits with events, grouped across conversations (`storage.postgres_group`)."""

    async def close(self) -> None:
        await self._group.idle()  # the commits queued are written first
        await super().close()

    # -- events -------------------------------------------------------------------------

    async def append(
        self, conversation_id: str, expected_version: int, events: Sequence[EventEnvelope]
    ) -> int:
        check_events(conversation_id, expected_version, events)

        async def run(conn: Conn) -> int:
            await _advance(conn, conversation_id, expected_version, events)
            return await _append_rows(conn, conversation_id, expected_version, events)

        async with self._lane(conversation_id):
            return await self._transaction(run)

    async def _keys(self, conversation_id: str) -> dict[int, bytes]:
        rows = await self._fetch(
            "SELECT key_id, key FROM conversation_keys WHERE conversation_id = $1",
            conversation_id,
        )
        return {int(key_id): bytes(key) for key_id, key in rows}

    async def load(self, conversation_id: str) -> list[EventEnvelope]:
        rows = await self._fetch(
            "SELECT envelope FROM events WHERE conversation_id = $1 ORDER BY seq",
            conversation_id,
        )
        keys = await self._keys(conversation_id) if rows else {}
        return sealing.open_events((row[0] for row in rows), keys)

    async def stored_events(self, conversation_id: str) -> list[Link]:
        rows = await self._fetch(
            "SELECT seq, envelope, chain_hash FROM events WHERE conversation_id = $1 ORDER BY seq",
            conversation_id,
        )
        keys = await self._keys(conversation_id) if rows else {}
        return links(rows, keys)

    async def version(self, conversation_id: str) -> int:
        rows = await self._fetch(
            "SELECT version FROM streams WHERE conversation_id = $1", conversation_id
        )
        return int(rows[0][0]) if rows else 0

    async def iterate_all(self) -> AsyncIterator[EventEnvelope]:
        after = 0
        while True:
            rows = await self._fetch(
                "SELECT position, envelope, conversation_id FROM events WHERE position > $1 "
                "ORDER BY position LIMIT $2",
                after,
                _PAGE,
            )
            keys: dict[str, dict[int, bytes]] = {}
            for row in rows:
                if row[2] not in keys and '"sealed":' in row[1]:
                    keys[row[2]] = await self._keys(row[2])
                yield sealing.open_event(row[1], keys.get(row[2], {}))
            if len(rows) < _PAGE:
                return
            after = rows[-1][0]

    async def conversation_ids(self) -> list[str]:
        rows = await self._fetch("SELECT conversation_id FROM streams ORDER BY id")
        return [row[0] for row in rows]

    # -- the atomic commit --------------------------------------------------------------

    async def commit(self, commit: Commit) -> CommitResult:
        prepared = postgres_commit.prepare(commit)
        async with self._lane(commit.conversation_id):
            if commit.events:
                return await self._group.commit(prepared)
            return await self._commit_alone(prepared)

    async def _commit_alone(self, prepared: postgres_commit.Prepared) -> CommitResult:
        """One commit in a transaction of its own (`storage.postgres_commit`)."""
        commit = prepared.commit
        conversation_id = commit.conversation_id

        async def run(conn: Conn) -> CommitResult:
            taken = await (_take_stream if commit.events else _take_delivery)(conn, prepared)
            if not taken:
                return CommitResult(
                    status="duplicate", version=await _version(conn, conversation_id)
                )
            if commit.events:
                (before,) = await postgres_commit.read_before(
                    conn, [(conversation_id, commit.expected_version)]
                )
            else:  # nothing appended: a key is read only for a personal inbound to seal
                personal = commit.inbound is not None and sealing.has_personal_inbound(
                    commit.inbound
                )
                read = await _newest_key(conn, conversation_id) if personal else None
                before = postgres_commit.Before(previous=None, key=read, facts=NO_FACTS)
            key = postgres_commit.CommitKey(conversation_id, before.key)
            rows = postgres_commit.rows_after(prepared, before, key)
            await postgres_commit.write(conn, [rows], postgres_commit.made(key))
            for change in prepared.tickets:
                await apply_ticket_change(conn, change)
            return CommitResult(status="committed", version=prepared.new_version)

        try:
            return await self._transaction(run)
        except StorageError as exc:
            if isinstance(exc.__cause__, asyncpg.UniqueViolationError):
                # Another process wrote this conversation's inbound position or key
                # first (a commit without events holds no stream row): decide again.
                actual = await self.version(conversation_id)
                raise ConcurrencyError(conversation_id, commit.expected_version, actual) from None
            raise

    # -- deliveries and inbounds --------------------------------------------------------

    async def seen(self, delivery_id: str) -> bool:
        rows = await self._fetch("SELECT 1 FROM deliveries WHERE delivery_id = $1", delivery_id)
        return bool(rows)

    async def recent(self, since_ms: int) -> set[str]:
        rows = await self._fetch(
            "SELECT delivery_id FROM deliveries WHERE received_at_ms >= $1", since_ms
        )
        return {row[0] for row in rows}

    async def inbound(self, delivery_id: str) -> StoredInbound | None:
        rows = await self._fetch(f"SELECT {_INBOUND_KEYED} WHERE i.delivery_id = $1", delivery_id)
        return stored_inbound(tuple(rows[0])) if rows else None

    async def inbounds(self, conversation_id: str) -> list[StoredInbound]:
        rows = await self._fetch(
            f"SELECT {_INBOUND_KEYED} WHERE i.conversation_id = $1 ORDER BY i.position",
            conversation_id,
        )
        return [stored_inbound(tuple(row)) for row in rows]

    async def all_inbounds(self) -> AsyncIterator[StoredInbound]:
        after = 0
        while True:
            rows = await self._fetch(
                f"SELECT i.id, {_INBOUND_KEYED} WHERE i.id > $1 ORDER BY i.id LIMIT $2",
                after,
                _PAGE,
            )
            for row in rows:
                yield stored_inbound(tuple(row)[1:])
            if len(rows) < _PAGE:
                return
            after = rows[-1][0]

    async def replay_logs(
        self,
        conversation_ids: Sequence[str],
        *,
        decode: Collection[str] | None = None,
        batch: int = REPLAY_BATCH,
    ) -> AsyncIterator[ConversationLog]:
        check_limit(batch)
        for start in range(0, len(conversation_ids), batch):
            ids = list(conversation_ids[start : start + batch])
            rows = await self._fetch(_REPLAY_READ, ids)
            for log in replay_logs(ids, (tuple(row) for row in rows), decode):
                yield log

    async def verify_logs(
        self, conversation_ids: Sequence[str], *, batch: int = REPLAY_BATCH
    ) -> AsyncIterator[VerifyLog]:
        check_limit(batch)
        for start in range(0, len(conversation_ids), batch):
            ids = list(conversation_ids[start : start + batch])
            rows = await self._fetch(_VERIFY_READ, ids)
            for log in verify_logs(ids, (tuple(row) for row in rows)):
                yield log

    # -- policies -----------------------------------------------------------------------

    async def put_policy(self, version: str, canonical_json: str) -> None:
        async def run(conn: Conn) -> None:
            await conn.execute(
                "INSERT INTO policies (version, canonical_json) VALUES ($1, $2) "
                "ON CONFLICT (version) DO NOTHING",
                version,
                canonical_json,
            )
            stored = await conn.fetchval(
                "SELECT canonical_json FROM policies WHERE version = $1", version
            )
            if stored != canonical_json:
                raise ValueError(f"Policy {version} is stored already with a different text.")

        await self._transaction(run)

    async def get_policy(self, version: str) -> str | None:
        rows = await self._fetch("SELECT canonical_json FROM policies WHERE version = $1", version)
        return str(rows[0][0]) if rows else None

    # -- adapter state ------------------------------------------------------------------

    async def put_state(self, key: str, value: Mapping[str, Any], at_ms: int) -> None:
        text = state_json(key, value)

        async def run(conn: Conn) -> None:
            await conn.execute(
                "INSERT INTO adapter_state (key, value, updated_at_ms, schema_version, "
                "generator) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (key) DO UPDATE SET "
                "value = excluded.value, updated_at_ms = excluded.updated_at_ms, "
                "schema_version = excluded.schema_version, generator = excluded.generator",
                key,
                text,
                at_ms,
                STATE_SCHEMA_VERSION,
                GENERATOR,
            )

        await self._transaction(run)

    async def put_state_if_absent(
        self, key: str, value: Mapping[str, Any], at_ms: int
    ) -> dict[str, Any]:
        text = state_json(key, value)

        async def run(conn: Conn) -> str:
            await conn.execute(
                "INSERT INTO adapter_state (key, value, updated_at_ms, schema_version, "
                "generator) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (key) DO NOTHING",
                key,
                text,
                at_ms,
                STATE_SCHEMA_VERSION,
                GENERATOR,
            )
            return str(await conn.fetchval("SELECT value FROM adapter_state WHERE key = $1", key))

        kept: dict[str, Any] = json.loads(await self._transaction(run))
        return kept

    async def get_state(self, key: str) -> dict[str, Any] | None:
        check_state_key(key)
        rows = await self._fetch("SELECT value FROM adapter_state WHERE key = $1", key)
        if not rows:
            return None
        value: dict[str, Any] = json.loads(rows[0][0])
        return value

    async def delete_state(self, key: str) -> bool:
        check_state_key(key)

        async def run(conn: Conn) -> bool:
            return (
                affected(await conn.execute("DELETE FROM adapter_state WHERE key = $1", key)) == 1
            )

        return await self._transaction(run)

    async def delete_states_before(self, prefix: str, before_ms: int, limit: int) -> int:
        check_state_key(prefix)

        # `starts_with`, not a key range: under a database's linguistic collation the keys
        # of one prefix need not sort together. Callers sweep rarely and in batches.
        async def run(conn: Conn) -> int:
            return affected(
                await conn.execute(
                    "DELETE FROM adapter_state WHERE key IN (SELECT key FROM adapter_state "
                    "WHERE starts_with(key, $1) AND updated_at_ms < $2 LIMIT $3)",
                    prefix,
                    before_ms,
                    max(0, limit),
                )
            )

        return await self._transaction(run)

    # -- projections --------------------------------------------------------------------

    async def metrics_projection(self, installation: str = "") -> MetricsProjection:
        return metrics_projection(await self._fetch(METRICS_READ, installation))

    async def qualification_times(self, installation: str = "") -> tuple[int, ...]:
        return qualification_times(await self._fetch(QUALIFICATION_TIMES_READ, installation))

    async def quote_conversation(self, quote_id: str) -> str | None:
        rows = await self._fetch(
            "SELECT conversation_id FROM quote_index WHERE quote_id = $1", quote_id
        )
        return str(rows[0][0]) if rows else None

    async def rebuild_projections(self) -> RebuildSummary:
        async def run(conn: Conn) -> RebuildSummary:
            # Commits that fold into the projections wait for this lock; those holding it
            # already are committed before the log is read (see postgres_projections).
            await conn.execute("LOCK TABLE projection_streams IN EXCLUSIVE MODE")
            projection = await fold_log(conn)
            events = int(await conn.fetchval("SELECT COUNT(*) FROM events"))
            changed = differences(await stored_projection(conn), projection)
            changed += counter_differences(*await stored_counters(conn), projection.facts)
            await replace_all(conn, projection)
            return rebuild_summary(events, projection, changed)

        return await self._transaction(run)

    # -- deferred answers -----------------------------------------------------------------

    async def pending_answers(self) -> list[PendingAnswer]:
        rows = await self._fetch(
            "SELECT key, conversation_id, delivery_id, payload, created_at_ms "
            "FROM pending_answers ORDER BY id"
        )
        return pending_answers(rows)

    async def settle_answer(self, key: str, items: Sequence[OutboxItem]) -> bool:
        rows = [outbox_row(item) for item in items]

        async def run(conn: Conn) -> bool:
            status = await conn.execute("DELETE FROM pending_answers WHERE key = $1", key)
            if affected(status) != 1:
                return False
            await execute_many(conn, INSERT_OUTBOX, rows)
            return True

        return await self._transaction(run)

    # -- timers -------------------------------------------------------------------------

    async def schedule_timer(
        self, conversation_id: str, due_at_ms: int | None, version: int
    ) -> bool:
        return await self._transaction(
            lambda conn: _schedule(conn, conversation_id, due_at_ms, version)
        )

    async def due_timers(self, now_ms: int, limit: int) -> list[str]:
        check_limit(limit)
        rows = await self._fetch(
            "SELECT conversation_id FROM timers WHERE due_at_ms IS NOT NULL "
            "AND due_at_ms <= $1 ORDER BY due_at_ms, conversation_id LIMIT $2",
            now_ms,
            limit,
        )
        return [row[0] for row in rows]

    # -- erasure ------------------------------------------------------------------------

    async def erase(self, conversation_id: str, expected_version: int, event: EventEnvelope) -> int:
        check_events(conversation_id, expected_version, (event,))

        async def run(conn: Conn) -> int:
            await _advance(conn, conversation_id, expected_version, (event,))
            await conn.execute(
                "DELETE FROM conversation_keys WHERE conversation_id = $1", conversation_id
            )
            await _redact_copies(conn, conversation_id)
            return await _append_rows(conn, conversation_id, expected_version, (event,))

        async with self._lane(conversation_id):
            return await self._transaction(run)

    async def idle_conversations(self, before_ms: int, limit: int) -> list[str]:
        check_limit(limit)
        rows = await self._fetch(
            "SELECT s.conversation_id FROM streams AS s "
            "JOIN events AS e ON e.conversation_id = s.conversation_id AND e.seq = s.version "
            "WHERE s.updated_at_ms < $1 AND e.type != 'erased' "
            "ORDER BY s.updated_at_ms, s.conversation_id LIMIT $2",
            before_ms,
            limit,
        )
        return [row[0] for row in rows]


# -- SQL helpers ------------------------------------------------------------------------


async def _version(conn: Conn, conversation_id: str) -> int:
    found = await conn.fetchval(
        "SELECT version FROM streams WHERE conversation_id = $1", conversation_id
    )
    return int(found or 0)


async def _take_stream(conn: Conn, prepared: postgres_commit.Prepared) -> bool:
    """A commit with events: its delivery and its stream moved in one statement
    (`postgres_commit.claim`); False for a delivery stored already."""
    commit = prepared.commit
    recorded, moved = await postgres_commit.claim(
        conn,
        commit.delivery_id,
        commit.conversation_id,
        commit.received_at_ms,
        commit.expected_version,
        prepared.new_version,
        commit.events[0].at_ms,
        commit.events[-1].at_ms,
    )
    if recorded and not moved:
        actual = await _version(conn, commit.conversation_id)
        raise ConcurrencyError(commit.conversation_id, commit.expected_version, actual)
    return recorded


async def _take_delivery(conn: Conn, prepared: postgres_commit.Prepared) -> bool:
    """A commit without events: its delivery (the dedupe: a concurrent commit of the same
    delivery waits here for this one's outcome), then its stream's version held
    (`_advance`); False for a delivery stored already."""
    commit = prepared.commit
    recorded = await conn.fetchval(
        "INSERT INTO deliveries (delivery_id, conversation_id, received_at_ms, "
        "committed_version) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT (delivery_id) DO NOTHING RETURNING 1",
        commit.delivery_id,
        commit.conversation_id,
        commit.received_at_ms,
        prepared.new_version,
    )
    if recorded is None:
        return False
    await _advance(conn, commit.conversation_id, commit.expected_version, commit.events)
    return True


async def _advance(
    conn: Conn, conversation_id: str, expected: int, events: Sequence[EventEnvelope]
) -> None:
    """The expected-version check, made by taking the stream's row: move it from
    `expected` to its new version (a first row for a new stream), or hold it unchanged when
    there are no events. A concurrent writer's row is waited for, then found moved:
    `ConcurrencyError`, and the caller's transaction rolls back."""
    if events:
        if expected == 0:
            moved = await conn.fetchval(
                "INSERT INTO streams (conversation_id, version, created_at_ms, updated_at_ms) "
                "VALUES ($1, $2, $3, $4) ON CONFLICT (conversation_id) DO NOTHING RETURNING 1",
                conversation_id,
                len(events),
                events[0].at_ms,
                events[-1].at_ms,
            )
        else:
            moved = await conn.fetchval(
                "UPDATE streams SET version = $3, updated_at_ms = $4 "
                "WHERE conversation_id = $1 AND version = $2 RETURNING 1",
                conversation_id,
                expected,
                expected + len(events),
                events[-1].at_ms,
            )
        if moved is None:
            raise ConcurrencyError(conversation_id, expected, await _version(conn, conversation_id))
        return
    held = await conn.fetchval(
        "SELECT version FROM streams WHERE conversation_id = $1 FOR UPDATE", conversation_id
    )
    if int(held or 0) != expected:
        raise ConcurrencyError(conversation_id, expected, int(held or 0))


async def _schedule(conn: Conn, conversation_id: str, due_at_ms: int | None, version: int) -> bool:
    """Set the conversation's next timer unless the row holds a later version's."""
    status = await conn.execute(
        "INSERT INTO timers (conversation_id, due_at_ms, version) VALUES ($1, $2, $3) "
        "ON CONFLICT (conversation_id) DO UPDATE SET due_at_ms = excluded.due_at_ms, "
        "version = excluded.version WHERE excluded.version >= timers.version",
        conversation_id,
        due_at_ms,
        version,
    )
    return affected(status) == 1


async def _append_rows(
    conn: Conn, conversation_id: str, version: int, events: Sequence[EventEnvelope]
) -> int:
    """Append checked events after `version` (the stream row already advanced by
    `_advance`, so this transaction holds it), with what they change in the projections,
    as a commit appends its own (`storage.postgres_commit`); return the new version."""
    if not events:
        return version
    (before,) = await postgres_commit.read_before(conn, [(conversation_id, version)])
    key = postgres_commit.CommitKey(conversation_id, before.key)
    projected = [envelope for envelope in events if is_projected(envelope)]
    rows = postgres_commit.appended(
        conversation_id, events, event_rows(events), projected, before, key
    )
    await postgres_commit.write(conn, [rows], postgres_commit.made(key))
    return version + len(events)


async def _newest_key(conn: Conn, conversation_id: str) -> tuple[int, bytes] | None:
    """The conversation's newest sealing key and its id; None when it has none."""
    found = await conn.fetchrow(
        "SELECT key_id, key FROM conversation_keys WHERE conversation_id = $1 "
        "ORDER BY key_id DESC LIMIT 1",
        conversation_id,
    )
    return None if found is None else (int(found[0]), bytes(found[1]))


async def _redact_copies(conn: Conn, conversation_id: str) -> None:
    """An erased conversation's copies outside the hash chain, rewritten in place (as
    `storage.sqlite._redact_copies`): unsealed inbounds read `[erased]` where their
    personal values were, outbox payloads are redacted, unsent replies dead-lettered."""
    updates = []
    for row_id, text in await conn.fetch(
        "SELECT id, inbound FROM inbounds WHERE conversation_id = $1", conversation_id
    ):
        data = json.loads(text)
        if isinstance(data, dict) and sealing.SEALED_FIELD not in data:
            updates.append((dumps(erased_record(data, paths_of_inbound(data))), row_id))
    await execute_many(conn, "UPDATE inbounds SET inbound = $1 WHERE id = $2", updates)
    payloads = await conn.fetch(
        "SELECT id, payload FROM outbox WHERE conversation_id = $1", conversation_id
    )
    await execute_many(
        conn,
        "UPDATE outbox SET payload = $1 WHERE id = $2",
        [(dumps(sealing.redacted_payload(json.loads(text))), row_id) for row_id, text in payloads],
    )
    await conn.execute(
        "UPDATE outbox SET status = 'dead', last_error = 'erased before it was sent', "
        "lease_owner = NULL, lease_until_ms = NULL "
        "WHERE conversation_id = $1 AND status IN ('pending', 'in_flight')",
        conversation_id,
    )
