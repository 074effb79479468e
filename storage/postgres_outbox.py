"""The outbox of `PostgresStore` (`storage.ports.Outbox`): replies and other side effects
waiting to be sent, claimed per channel in order with leases that carry their owner, by
several processes at once.

A claim (`_claim_rows`) reads each channel's first unsent items without locking, then locks
those rows with `FOR UPDATE SKIP LOCKED`, and hands out of each channel only the unbroken
run from its first unsent item: a row another claimer holds locked (or that changed since
the read) ends its channel's run. So two claimers never get the same item (the lock), and
neither ever takes a channel's second item while the first is being claimed by the other
(the run starts at the channel's first unsent item or not at all) — the same order rule
SQLite keeps with its single writer. The rest is `sqlite_outbox`'s semantics: due means
pending and available, or in flight under an expired lease or a gone owner; round-robin
across channels; at most `per_channel` of one channel.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from storage._rules import check_limit
from storage.ports import LEASE_EXPIRED, LeaseOwner, OutboxItem, OutboxStats
from storage.postgres_pool import Conn, PostgresConnections, Row, affected, execute_many
from storage.sql_rows import OUTBOX_COLUMNS, claimed_items, outbox_item, outbox_row

_MARKS = ", ".join(f"${i}" for i in range(1, 14))

INSERT_OUTBOX = (
    f"INSERT INTO outbox ({OUTBOX_COLUMNS}) VALUES ({_MARKS}) ON CONFLICT (key) DO NOTHING"
)

_UNSENT_RUNS = """
SELECT id, channel, status, available_at_ms, lease_until_ms, lease_owner FROM (
    SELECT id, channel, status, available_at_ms, lease_until_ms, lease_owner,
           row_number() OVER (PARTITION BY channel ORDER BY id) AS rank
    FROM outbox WHERE status IN ('pending', 'in_flight')
) AS unsent WHERE rank <= $1 ORDER BY channel, id
"""
"""The first `$1` unsent items of every channel, read through the partial index
`outbox_unsent (channel, id)` (no lock: `_claim_rows` locks what it takes)."""

_LOCK_ROWS = (
    f"SELECT id, {OUTBOX_COLUMNS} FROM outbox "
    "WHERE id = ANY($1::bigint[]) AND status IN ('pending', 'in_flight') "
    "ORDER BY id FOR UPDATE SKIP LOCKED"
)

_PLATFORM = "split_part(channel, ':', 1)"

_OUTBOX_STATS = f"""
SELECT platform, SUM(pending)::bigint, MIN(oldest), SUM(dead)::bigint FROM (
    SELECT {_PLATFORM} AS platform, COUNT(*) AS pending, MIN(created_at_ms) AS oldest,
           0 AS dead
    FROM outbox WHERE status IN ('pending', 'in_flight') GROUP BY 1
    UNION ALL
    SELECT {_PLATFORM} AS platform, 0, NULL, COUNT(*)
    FROM outbox WHERE status = 'dead' GROUP BY 1
) AS counted
GROUP BY platform ORDER BY platform COLLATE "C"
"""


class PostgresOutbox(PostgresConnections):
    """`storage.ports.Outbox` on PostgreSQL."""

    async def enqueue(self, items: Sequence[OutboxItem]) -> None:
        rows = [outbox_row(item) for item in items]

        async def run(conn: Conn) -> None:
            await execute_many(conn, INSERT_OUTBOX, rows)

        await self._transaction(run)

    async def claim_due(
        self,
        now_ms: int,
        limit: int,
        lease_ms: int,
        *,
        owner: str | None = None,
        prefixes: Sequence[str] | None = None,
        exclude: Collection[str] = (),
        per_channel: int | None = None,
    ) -> list[OutboxItem]:
        lease_until = now_ms + lease_ms
        scope = (tuple(prefixes) if prefixes is not None else None, frozenset(exclude))
        per_channel_limit = limit if per_channel is None else per_channel
        if limit <= 0:
            self._check_open()
            return []

        async def run(conn: Conn) -> list[OutboxItem]:
            rows = await _claim_rows(conn, now_ms, limit, per_channel_limit, *scope)
            await conn.execute(
                "UPDATE outbox SET lease_until_ms = $1, lease_owner = $2, "
                "last_error = CASE WHEN status = 'in_flight' THEN $3 ELSE last_error END, "
                "status = 'in_flight' WHERE id = ANY($4::bigint[])",
                lease_until,
                owner,
                LEASE_EXPIRED,
                [row[0] for row in rows],
            )
            return claimed_items(rows, lease_until, owner)

        return await self._transaction(run)

    async def heartbeat(
        self, owner: str, now_ms: int, alive_until_ms: int, *, identity: str | None = None
    ) -> list[str]:
        async def run(conn: Conn) -> list[str]:
            previous: list[str] = []
            if identity is not None:
                gone = await conn.fetch(
                    "DELETE FROM outbox_owners WHERE identity = $1 AND owner != $2 "
                    "RETURNING owner, started_at_ms, id",
                    identity,
                    owner,
                )
                previous = [row[0] for row in sorted(gone, key=lambda row: (row[1], row[2]))]
            await conn.execute(
                "DELETE FROM outbox_owners WHERE alive_until_ms <= $1 AND owner != $2",
                now_ms,
                owner,
            )
            await conn.execute(
                "INSERT INTO outbox_owners (owner, identity, started_at_ms, alive_until_ms) "
                "VALUES ($1, $2, $3, $4) ON CONFLICT (owner) DO UPDATE SET "
                "alive_until_ms = excluded.alive_until_ms, "
                "identity = COALESCE(excluded.identity, outbox_owners.identity)",
                owner,
                identity,
                now_ms,
                alive_until_ms,
            )
            return previous

        return await self._transaction(run)

    async def release_owner(self, owner: str, now_ms: int) -> int:
        async def run(conn: Conn) -> int:
            status = await conn.execute(
                "UPDATE outbox SET status = 'pending', available_at_ms = $1, "
                "lease_until_ms = NULL, lease_owner = NULL, last_error = $2 "
                "WHERE status = 'in_flight' AND lease_owner = $3",
                now_ms,
                LEASE_EXPIRED,
                owner,
            )
            await conn.execute("DELETE FROM outbox_owners WHERE owner = $1", owner)
            return affected(status)

        return await self._transaction(run)

    async def lease_owners(self) -> list[LeaseOwner]:
        rows = await self._fetch(
            "SELECT owner, identity, started_at_ms, alive_until_ms FROM outbox_owners "
            "ORDER BY started_at_ms, id"
        )
        return [
            LeaseOwner(owner=row[0], identity=row[1], started_at_ms=row[2], alive_until_ms=row[3])
            for row in rows
        ]

    async def release(
        self, keys: Sequence[str], available_at_ms: int, *, owner: str | None = None
    ) -> int:
        async def run(conn: Conn) -> int:
            status = await conn.execute(
                "UPDATE outbox SET status = 'pending', available_at_ms = $1, "
                "lease_until_ms = NULL, lease_owner = NULL "
                "WHERE key = ANY($2::text[]) AND status = 'in_flight' "
                "AND ($3::text IS NULL OR lease_owner = $3)",
                available_at_ms,
                list(dict.fromkeys(keys)),
                owner,
            )
            return affected(status)

        return await self._transaction(run)

    async def _update_unsent(self, key: str, assignments: str, *args: object) -> bool:
        async def run(conn: Conn) -> bool:
            status = await conn.execute(
                f"UPDATE outbox SET {assignments}, lease_until_ms = NULL, lease_owner = NULL "
                f"WHERE key = ${len(args) + 1} AND status IN ('pending', 'in_flight')",
                *args,
                key,
            )
            return affected(status) == 1

        return await self._transaction(run)

    async def mark_sent(self, key: str, at_ms: int, remote_id: str | None = None) -> bool:
        return await self._update_unsent(
            key, "status = 'sent', sent_at_ms = $1, remote_id = $2", at_ms, remote_id
        )

    async def fail(self, key: str, next_attempt_ms: int, error: str) -> bool:
        return await self._update_unsent(
            key,
            "status = 'pending', attempts = attempts + 1, available_at_ms = $1, last_error = $2",
            next_attempt_ms,
            error,
        )

    async def dead_letter(self, key: str, error: str) -> bool:
        return await self._update_unsent(key, "status = 'dead', last_error = $1", error)

    async def dead_letters(self) -> list[OutboxItem]:
        rows = await self._fetch(
            f"SELECT {OUTBOX_COLUMNS} FROM outbox WHERE status = 'dead' ORDER BY id"
        )
        return [outbox_item(tuple(row)) for row in rows]

    async def outbox_item(self, key: str) -> OutboxItem | None:
        rows = await self._fetch(f"SELECT {OUTBOX_COLUMNS} FROM outbox WHERE key = $1", key)
        return outbox_item(tuple(rows[0])) if rows else None

    async def sent_items(self, channel_prefix: str, limit: int) -> list[OutboxItem]:
        check_limit(limit)
        # `left` rather than LIKE, so a "%" or "_" in the prefix is only itself.
        rows = await self._fetch(
            f"SELECT {OUTBOX_COLUMNS} FROM outbox WHERE status = 'sent' "
            "AND left(channel, $1) = $2 ORDER BY id DESC LIMIT $3",
            len(channel_prefix),
            channel_prefix,
            limit,
        )
        return [outbox_item(tuple(row)) for row in reversed(rows)]

    async def pending_count(self) -> int:
        rows = await self._fetch(
            "SELECT (SELECT COUNT(*) FROM outbox WHERE status IN ('pending', 'in_flight')) "
            "+ (SELECT COUNT(*) FROM pending_answers)"
        )
        return int(rows[0][0])

    async def outbox_stats(self) -> list[OutboxStats]:
        rows = await self._fetch(_OUTBOX_STATS)
        return [
            OutboxStats(
                platform=platform,
                pending=int(pending),
                oldest_pending_created_at_ms=oldest,
                dead=int(dead),
            )
            for platform, pending, oldest, dead in rows
        ]


async def _claim_rows(
    conn: Conn,
    now_ms: int,
    limit: int,
    per_channel: int,
    prefixes: tuple[str, ...] | None,
    exclude: frozenset[str],
) -> list[Row]:
    """The rows `Outbox.claim_due` hands out, as `(id, *OUTBOX_COLUMNS)`, in claim order,
    locked in the caller's transaction.

    The choice is made on an unlocked read, as SQLite makes it; then exactly the chosen
    rows are locked (`SKIP LOCKED`) and checked again: a channel's run ends at its first
    row that another claimer holds or that is no longer due."""
    alive = {
        row[0]
        for row in await conn.fetch(
            "SELECT owner FROM outbox_owners WHERE alive_until_ms > $1", now_ms
        )
    }

    def due(status: str, available: int, lease_until: int | None, owner: str | None) -> bool:
        if status == "pending":
            return available <= now_ms
        expired = lease_until is not None and lease_until <= now_ms
        return expired or (owner is not None and owner not in alive)

    runs: dict[str, list[Row]] = {}
    for row in await conn.fetch(_UNSENT_RUNS, per_channel):
        channel = row[1]
        if channel in exclude or (prefixes is not None and not channel.startswith(prefixes)):
            continue
        runs.setdefault(channel, []).append(row)
    queues: list[list[int]] = []
    for run in sorted(runs.values(), key=lambda rows: int(rows[0][0])):
        if len(queues) >= limit:
            break  # the first items of `limit` channels already fill the claim
        queue = []
        for item_id, _channel, status, available, lease_until, owner in run:
            if not due(status, available, lease_until, owner):
                break  # nothing newer in this channel may overtake it
            queue.append(item_id)
        if queue:
            queues.append(queue)
    ranked = sorted((rank, item_id) for queue in queues for rank, item_id in enumerate(queue))
    chosen = {item_id for _rank, item_id in ranked[:limit]}
    if not chosen:
        return []
    locked = {row[0]: row for row in await conn.fetch(_LOCK_ROWS, sorted(chosen))}
    kept: set[int] = set()
    for queue in queues:
        for item_id in queue:
            held = locked.get(item_id)
            if item_id not in chosen or held is None or not due(*_lease(held)):
                break  # held by another claimer or changed meanwhile: nothing may overtake
            kept.add(item_id)
    return [locked[item_id] for _rank, item_id in ranked if item_id in kept]


def _lease(row: Row) -> tuple[str, int, int | None, str | None]:
    """A locked row's status, availability, lease end and lease owner."""
    return row[8], row[6], row[11], row[13]
